"""TieredSessionStore: anonymous sessions in a signed cookie, protected ones on the server.

A session starts in the cookie tier (:class:`CookieSessionStore`: zero database commands). It
moves to the server tier (a :class:`~tornado_mongo_session.stores.mongo.MongoSessionStore`, or
any other store) when:

- ``session.regenerate()`` is called (login: the mixin sends ``SaveRequest.promote``), or
- its encoded data outgrows the cookie (the cookie tier raises ``SessionTooLarge``).

The move writes the full data under a new id and token, in one insert, and answers with the
server tier's cookie value: the handler sees the same keys and values, and since both tiers use
the same cookie name, the new cookie replaces the signed copy in the browser. From then on it is
a server session with rotating tokens; it never moves back. Which tier a cookie belongs to is
told by its form (``c1.…`` is the cookie tier's, see :meth:`CookieSessionStore.owns`).
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime

from tornado_mongo_session.errors import SessionTooLarge
from tornado_mongo_session.stores.base import SaveRequest, SaveResult, SessionRecord, SessionStore
from tornado_mongo_session.stores.cookie import CookieSessionStore

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

    # -- the SessionStore protocol -----------------------------------------------------------

    async def load(self, cookie_value: str, *, now: datetime) -> SessionRecord | None:
        if self.cookie.owns(cookie_value):
            return await self.cookie.load(cookie_value, now=now)
        return await self.server.load(cookie_value, now=now)

    async def save(self, request: SaveRequest) -> SaveResult:
        loaded = request.loaded
        if loaded is not None and loaded.origin != self.cookie.origin:
            return await self.server.save(request)
        if request.promote:
            return await self._promote(request, loaded, "regenerate")
        try:
            return await self.cookie.save(request)
        except SessionTooLarge as exc:
            log.debug("session outgrew the cookie (%d bytes): moving it to the server", exc.size)
            return await self._promote(request, loaded, "size")

    async def delete(self, record: SessionRecord) -> None:
        if record.origin == self.cookie.origin:
            await self.cookie.delete(record)
        else:
            await self.server.delete(record)

    # -- internals ---------------------------------------------------------------------------

    async def _promote(
        self, request: SaveRequest, loaded: SessionRecord | None, why: str
    ) -> SaveResult:
        """Insert the whole session into the server tier under a new id and token."""
        if loaded is None:
            # Already a new session (new id, new token) from the mixin: insert it as it is.
            move = dataclasses.replace(request, promote=True)
        else:
            move = SaveRequest.new_session(
                request.data,
                now=request.now,
                expires_at=request.expires_at or loaded.expires_at,
                created_at=loaded.created_at,  # the absolute deadline still counts from here
                tokens_kept=request.tokens_kept,
                promote=True,
            )
        result = await self.server.save(move)
        log.debug("session moved to the server tier (%s)", why)
        return SaveResult(result.cookie_value, result.rotated, result.session_id or move.session_id)
