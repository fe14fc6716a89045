"""The sessions of a user, an optional capability of a store: the :class:`UserSession` record a
"your devices" page shows, and the :class:`UserSessionStore` protocol that lists and revokes
them (MongoSessionStore, MemorySessionStore and TieredSessionStore have it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from tornado_mongo_session.stores.base import SessionStore

__all__ = ["UserSession", "UserSessionStore"]


@dataclass(frozen=True)
class UserSession:
    """One live session of a user, as a "your devices" page shows it.

    ``handle`` names the session to :meth:`UserSessionStore.revoke_session` and nothing else: it
    is a hash of the session id, so it opens nothing (a cookie needs the id and a token), and it
    cannot be guessed (the id has 128 random bits). ``created_at``: the login; ``accessed_at``:
    the last use, to within ``touch_interval``; ``ip`` and ``user_agent``: the client's at login
    (``None`` when not recorded); ``current``: the session of the request that asked.
    """

    handle: str
    created_at: datetime
    accessed_at: datetime
    ip: str | None
    user_agent: str | None
    current: bool = False


@runtime_checkable
class UserSessionStore(SessionStore, Protocol):
    """A store that can list and revoke the sessions bound to a user (an optional capability).

    MongoSessionStore, MemorySessionStore and TieredSessionStore (through its server tier) have
    it. A revoked session is deleted: its next request, on any process, opens nothing (a new,
    empty session; the stale cookie is left alone until a save replaces it).
    """

    async def list_user_sessions(
        self, user_id: str, *, current: str | None = None
    ) -> list[UserSession]:
        """The live sessions bound to ``user_id``, newest login first; the one whose handle is
        ``current`` is marked ``current``. One query."""
        ...

    async def revoke_session(self, handle: str, *, user_id: str | None = None) -> bool:
        """Delete the session ``handle`` names; True if there was one. One delete.

        Pass the signed-in user's ``user_id`` whenever the handle comes from a request: then a
        handle of another user's session revokes nothing. Only an operator's tool omits it.
        """
        ...

    async def revoke_user(self, user_id: str, *, keep: str | None = None) -> int:
        """Delete every session bound to ``user_id`` except the one whose handle is ``keep``
        ("log out everywhere else"; ``None``: everywhere); return how many. One delete."""
        ...
