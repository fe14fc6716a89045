"""What a handler with the session mixin keeps about its request's session, shared by the
parts of the mixin (loading in ``_loading.py``, WebSocket saves in ``_socket.py``, the rest in
``mixin.py``)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from tornado_mongo_session.config import SessionConfig, config_of

if TYPE_CHECKING:
    import tornado.web

    from tornado_mongo_session.session import Session
    from tornado_mongo_session.stores.base import SessionRecord, SessionStore

    _Base = tornado.web.RequestHandler
else:
    _Base = object

__all__ = ["HandlerState"]


class HandlerState(_Base):
    """The per-request session state of a handler (class defaults, set per instance)."""

    session_store: SessionStore | None = None
    session_autoload: bool = True

    _session: Session | None = None
    _session_record: SessionRecord | None = None
    _session_cookie_in: str | None = None
    _session_pending: asyncio.Future[None] | None = None
    _session_load_error: tuple[int, BaseException] | None = None
    _session_config_of_app: SessionConfig | None = None
    _session_cookie_stale: bool = False
    _session_cookie_late: bool = False

    @property
    def _session_config(self) -> SessionConfig:
        config = self._session_config_of_app
        if config is None:  # looked up once per request (functools.cached_property locks)
            config = self._session_config_of_app = config_of(self.application)
        return config
