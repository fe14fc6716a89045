"""TieredSessionStore: anonymous sessions in a signed cookie, protected ones on the server.

A session starts in the cookie tier (:class:`CookieSessionStore`: zero database commands). It
moves to the server tier (a :class:`~tornado_mongo_session.stores.mongo.MongoSessionStore`, or
any other store) when:

- ``session.regenerate()`` or ``session.bind_user()`` is called (login: the mixin sends
  ``NewSession.promote``; a session bound to a user is never kept in the cookie tier, so it can
  be listed and revoked), or
- its encoded data outgrows the cookie (the cookie tier raises ``SessionTooLarge``).

The move writes the full data under a new id and token, in one insert, and answers with the
server tier's cookie value: the handler sees the same keys and values, and since both tiers use
the same cookie name, the new cookie replaces the signed copy in the browser. From then on it is
a server session with rotating tokens; it never moves back. Which tier a cookie belongs to is
told by its form (``c2.…`` is the cookie tier's, see :meth:`CookieSessionStore.owns`).
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime
from typing import TYPE_CHECKING

from tornado_mongo_session.errors import SessionConfigError, SessionTooLarge
from tornado_mongo_session.stores._user_sessions import UserSessionStore
from tornado_mongo_session.stores.base import NewSession, SessionUpdate
from tornado_mongo_session.stores.cookie import CookieSessionStore

if TYPE_CHECKING:  # in annotations only
    from tornado_mongo_session.stores._user_sessions import UserSession
    from tornado_mongo_session.stores.base import SaveResult, SessionRecord, SessionStore

__all__ = ["TieredSessionStore"]

log = logging.getLogger("tornado_mongo_session.tiered")


class TieredSessionStore:
    """Cookie tier for anonymous sessions, server tier from login (or from 4 KB of data) on.

    ``TieredSessionStore(cookie=CookieSessionStore(...), server=MongoSessionStore(...))``.

    Round trips: a cookie-tier session costs none; a server-tier session what the server store
    costs; the move is one insert. A cookie-tier cookie cannot be revoked (see
    :class:`CookieSessionStore`): after login the old anonymous cookie still opens the anonymous
    session it held, never the logged-in one.
    """

    def __init__(self, *, cookie: CookieSessionStore, server: SessionStore) -> None:
        if not isinstance(cookie, CookieSessionStore):
            raise TypeError(f"cookie must be a CookieSessionStore, not {type(cookie).__name__}")
        self.cookie = cookie
        self.server = server

    @property
    def waits_for_io(self) -> bool:
        """Whether the server tier waits for I/O (the cookie tier never does)."""
        return bool(getattr(self.server, "waits_for_io", True))

    # -- the SessionStore protocol -----------------------------------------------------------

    async def load(self, cookie_value: str, *, now: datetime) -> SessionRecord | None:
        if self.cookie.owns(cookie_value):
            return await self.cookie.load(cookie_value, now=now)
        return await self.server.load(cookie_value, now=now)

    async def save(self, request: NewSession | SessionUpdate) -> SaveResult:
        if isinstance(request, SessionUpdate) and not request.loaded.in_cookie:
            return await self.server.save(request)
        if isinstance(request, NewSession) and (request.promote or request.user_id is not None):
            return await self._promote(request, "regenerate")
        try:
            return await self.cookie.save(request)
        except SessionTooLarge as exc:
            log.debug("session outgrew the cookie (%d bytes): moving it to the server", exc.size)
            return await self._promote(request, "size")

    async def delete(self, record: SessionRecord) -> None:
        await (self.cookie if record.in_cookie else self.server).delete(record)

    # -- the sessions of a user (bound sessions live in the server tier) ----------------------

    def _users(self) -> UserSessionStore:
        if not isinstance(self.server, UserSessionStore):
            raise SessionConfigError(
                f"the server tier ({type(self.server).__name__}) cannot list or revoke the "
                "sessions of a user"
            )
        return self.server

    async def list_user_sessions(
        self, user_id: str, *, current: str | None = None
    ) -> list[UserSession]:
        """The server tier's :meth:`~UserSessionStore.list_user_sessions`."""
        return await self._users().list_user_sessions(user_id, current=current)

    async def revoke_session(self, handle: str, *, user_id: str | None = None) -> bool:
        """The server tier's :meth:`~UserSessionStore.revoke_session`."""
        return await self._users().revoke_session(handle, user_id=user_id)

    async def revoke_user(self, user_id: str, *, keep: str | None = None) -> int:
        """The server tier's :meth:`~UserSessionStore.revoke_user`."""
        return await self._users().revoke_user(user_id, keep=keep)

    async def session_alive(self, session_id: str, *, now: datetime) -> bool:
        """Whether a server-tier session is still stored and live (one find); see
        :meth:`~tornado_mongo_session.stores._document.DocumentStore.session_alive`."""
        alive = getattr(self.server, "session_alive", None)
        if alive is None:
            raise SessionConfigError(
                f"the server tier ({type(self.server).__name__}) has no session_alive()"
            )
        return bool(await alive(session_id, now=now))

    # -- internals ---------------------------------------------------------------------------

    async def _promote(self, request: NewSession | SessionUpdate, why: str) -> SaveResult:
        """Insert the whole session into the server tier under a new id and token."""
        if isinstance(request, NewSession):
            # Already a new session (new id, new token) from the mixin: insert it as it is.
            move = dataclasses.replace(request, promote=True)
        else:
            move = NewSession(
                data=request.data,
                created_at=request.created_at,  # the absolute deadline still counts from here
                now=request.now,
                expires_at=request.expires_at,
                promote=True,
                user_id=request.user_id,
            )
        result = await self.server.save(move)
        log.debug("session moved to the server tier (%s)", why)
        return result
