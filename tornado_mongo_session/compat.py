"""The legacy path: AsyncMongo-Sessions' ``@asyncmongosession`` decorator on today's library.

For handlers written against AsyncMongo-Sessions: replace its import with this module's, drop
``@tornado.web.asynchronous`` (Tornado 6 removed it) and set a ``session_store`` in the
Application settings:

.. code-block:: python

    from tornado_mongo_session.compat import asyncmongosession, legacy_settings

    class Main(tornado.web.RequestHandler):
        @asyncmongosession
        def get(self):
            if self.session.has_key("test"):
                self.session["test"] += 1
            else:
                self.session["test"] = 0
            self.render("index.html", session=self.session)

Everything else is :class:`~tornado_mongo_session.SessionMixin`'s request flow: hashed rotating
tokens, expiry, deltas, the save before the response. New code should use the mixin directly.
This is Tornado glue: it imports ``tornado.web``, as ``mixin.py`` does.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping
from typing import Any, cast

import tornado.web

from tornado_mongo_session.errors import SessionConfigError
from tornado_mongo_session.mixin import SessionMixin
from tornado_mongo_session.session import Session
from tornado_mongo_session.settings import SessionSettings

__all__ = ["LEGACY_SETTING_NAMES", "LegacySession", "asyncmongosession", "legacy_settings"]


class LegacySession(MutableMapping[str, Any]):
    """``self.session`` as AsyncMongo-Sessions offered it: a dict with ``has_key``,
    ``get_id`` and ``delete``.

    It wraps the request's :class:`~tornado_mongo_session.Session`: every other attribute
    (``regenerate()``, ``invalidate()``, ``id``, ``is_new``, ``rotated_at``, …) is the
    session's own. ``session`` is the wrapped object, for code moving to the new API.
    """

    __slots__ = ("_session",)

    def __init__(self, session: Session) -> None:
        self._session = session

    @property
    def session(self) -> Session:
        """The wrapped :class:`~tornado_mongo_session.Session`."""
        return self._session

    def __getitem__(self, key: str) -> Any:
        return self._session[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._session[key] = value

    def __delitem__(self, key: str) -> None:
        del self._session[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._session)

    def __len__(self) -> int:
        return len(self._session)

    def __contains__(self, key: object) -> bool:
        return key in self._session

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._session, name)

    def __repr__(self) -> str:
        return f"<LegacySession of {self._session!r}>"

    def has_key(self, key: str) -> bool:
        """``key in session``, under the original's Python 2 name."""
        return key in self._session

    def get_id(self) -> str:
        """The session id (the original returned a BSON ObjectId; this is a random string)."""
        return self._session.id

    def delete(self) -> None:
        """Log out: :meth:`~tornado_mongo_session.Session.invalidate`. The stored session is
        deleted and the cookie expired when the response is saved."""
        self._session.invalidate()


class _PrepareDone:
    """Ends the ``super().prepare()`` chain of ``SessionMixin.prepare``: by the time a
    decorated method runs, Tornado has already called the handler's own ``prepare()``."""

    def prepare(self) -> None:
        return None


class _LegacySessionHandler(SessionMixin):
    """What a decorated handler becomes for the rest of its request: the mixin, with
    ``self.session`` wrapped in :class:`LegacySession`."""

    _legacy_session: LegacySession | None = None

    @property
    def session(self) -> LegacySession:  # type: ignore[override]
        legacy = self._legacy_session
        if legacy is None:
            legacy = self._legacy_session = LegacySession(super().session)
        return legacy


_LEGACY_CLASS = "_tornado_mongo_session_legacy_class"


def _legacy_class(cls: type[tornado.web.RequestHandler]) -> type[_LegacySessionHandler]:
    """The subclass of ``cls`` that a decorated handler becomes, built once per class.

    Its MRO is ``(_LegacySessionHandler, SessionMixin, _PrepareDone, cls, …)``: the mixin's
    ``finish`` runs first and then ``cls``'s own, if it overrides it.
    """
    legacy = cls.__dict__.get(_LEGACY_CLASS)
    if legacy is None:
        legacy = type(
            cls.__name__,
            (_LegacySessionHandler, _PrepareDone, cls),
            {
                "__module__": cls.__module__,
                "__qualname__": cls.__qualname__,
                "__doc__": cls.__doc__,
            },
        )
        setattr(cls, _LEGACY_CLASS, legacy)
    return cast("type[_LegacySessionHandler]", legacy)


def asyncmongosession(
    method: Callable[..., Awaitable[None] | None],
) -> Callable[..., Awaitable[None]]:
    """Give a handler method ``self.session``, as AsyncMongo-Sessions' decorator did.

    Decorate the HTTP methods (``get``, ``post``, …) of a plain ``tornado.web.RequestHandler``
    that need the session; the method may be a plain function or a coroutine. Before it runs,
    the session is loaded (one store command when the request has a cookie, none without),
    and from then on the request is :class:`~tornado_mongo_session.SessionMixin`'s: the session
    is saved when the response is finished, before it is sent (set ``write_mode=
    "after_response"`` for the original's timing), with the rotation, expiry and errors
    described there. The store and settings come from the Application settings
    ``session_store`` and ``session_settings`` (see :func:`legacy_settings`).

    ``self.session`` is a :class:`LegacySession`. On a handler that already inherits
    ``SessionMixin`` the decorator does nothing: the mixin has loaded the session.
    Raises :class:`~tornado_mongo_session.SessionConfigError` (a 500) when no store is set.
    """

    @functools.wraps(method)
    async def wrapper(self: tornado.web.RequestHandler, *args: Any, **kwargs: Any) -> None:
        if not isinstance(self, SessionMixin):
            legacy = _legacy_class(type(self))
            # The handler becomes its session-aware subclass for the rest of this request, so
            # that every finish() (render, redirect, errors, Tornado's own) saves the session.
            self.__class__ = legacy
            await legacy.prepare(cast("_LegacySessionHandler", self))
        result = method(self, *args, **kwargs)
        if inspect.isawaitable(result):
            await result

    return wrapper


LEGACY_SETTING_NAMES: Mapping[str, str | None] = {
    "COOKIE_NAME": "cookie_name",
    "DEFAULT_COOKIE_PATH": "cookie_path",
    "SESSION_EXPIRE_TIME": "idle_timeout",
    "SET_COOKIE_EXPIRES": "persistent_cookie",
    "SESSION_TOKEN_TTL": "token_ttl",
    "UPDATE_LAST_ACTIVITY": "touch_interval",
    "MONGO_COLLECTION": "collection",
    "MONGO_COLLECTION_SIZE": None,
}
"""Each setting of AsyncMongo-Sessions' ``settings.session`` and the
:class:`~tornado_mongo_session.SessionSettings` field it becomes (``None``: no equivalent;
``MONGO_COLLECTION_SIZE`` sized a capped collection, which expiry and the TTL index replace)."""


def legacy_settings(legacy: Mapping[str, Any], **overrides: Any) -> SessionSettings:
    """Build :class:`~tornado_mongo_session.SessionSettings` from AsyncMongo-Sessions'
    ``settings.session`` dict, then ``overrides`` (new field names) on top.

    Names are translated by :data:`LEGACY_SETTING_NAMES`; fields it leaves unset come from
    ``TORNADO_SESSION_*`` variables or the defaults, as with ``SessionSettings()``, so the
    cookie is ``Secure`` unless ``cookie_secure=False`` is passed. Raises
    :class:`~tornado_mongo_session.SessionConfigError` naming an unknown legacy setting, and
    pydantic's ``ValidationError`` naming the field for an invalid value.
    """
    values: dict[str, Any] = {}
    for name, value in legacy.items():
        if name not in LEGACY_SETTING_NAMES:
            known = ", ".join(LEGACY_SETTING_NAMES)
            raise SessionConfigError(
                f"unknown AsyncMongo-Sessions setting {name!r} (known: {known})"
            )
        field = LEGACY_SETTING_NAMES[name]
        if field is not None:
            values[field] = value
    return SessionSettings(**{**values, **overrides})
