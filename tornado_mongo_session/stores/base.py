"""The SessionStore protocol and the records that cross it.

A store persists session records and turns a cookie value into a record. It does not decide
policy: the mixin decides when to rotate, when to push expiry forward and what changed, and
passes the result in a :class:`SaveRequest`. Stores never import tornado.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from tornado_mongo_session.tokens import new_session_id, new_token

__all__ = ["SaveRequest", "SaveResult", "SessionRecord", "SessionStore"]


@dataclass
class SessionRecord:
    """A live session as loaded from a store.

    ``token`` is the raw token the client presented (kept in memory for this request only, never
    stored); ``token_hashes`` the stored SHA-256 hashes, newest first. ``origin`` names the store
    that produced the record, for stores that compose others.
    """

    id: str
    data: dict[str, Any]
    created_at: datetime
    accessed_at: datetime
    rotated_at: datetime
    expires_at: datetime
    token: str | None = None
    token_hashes: list[str] = field(default_factory=list)
    origin: str = ""


@dataclass
class SaveRequest:
    """What the mixin asks a store to persist at the end of a request.

    - ``loaded``: the record this request loaded, or ``None`` for a session new in this request
      (including one that replaced a loaded session through regenerate/invalidate).
    - ``session_id``: the id to write under (a new one for new sessions).
    - ``data``: all the session's data; ``changed``/``removed``: the top-level delta against
      ``loaded`` (stores that write deltas use these, the others ``data``).
    - ``new_token``: the raw token to issue (rotation, or a new session); ``None`` keeps the
      current one. ``tokens_kept``: how many newest token hashes to keep.
    - ``expires_at``/``accessed_at``: the new deadline and access time, or ``None`` to leave the
      stored ones.
    - ``promote``: the session is being regenerated (login): a store that composes a cheap tier
      with a protected one moves it to the protected one.
    """

    session_id: str
    loaded: SessionRecord | None
    data: Mapping[str, Any]
    changed: Mapping[str, Any]
    removed: list[str]
    now: datetime
    created_at: datetime
    new_token: str | None = None
    tokens_kept: int = 3
    expires_at: datetime | None = None
    accessed_at: datetime | None = None
    promote: bool = False

    @classmethod
    def new_session(
        cls,
        data: Mapping[str, Any],
        *,
        now: datetime,
        expires_at: datetime,
        session_id: str | None = None,
        created_at: datetime | None = None,
        tokens_kept: int = 3,
        promote: bool = False,
    ) -> SaveRequest:
        """The request that inserts a new session holding ``data``, with a fresh token.

        ``session_id`` defaults to a fresh one; ``created_at`` to ``now`` (a session moved from
        one store to another keeps its own, so its absolute deadline still counts from there).
        """
        return cls(
            session_id=session_id or new_session_id(),
            loaded=None,
            data=data,
            changed=dict(data),
            removed=[],
            now=now,
            created_at=created_at or now,
            new_token=new_token(),
            tokens_kept=tokens_kept,
            expires_at=expires_at,
            accessed_at=now,
            promote=promote,
        )


@dataclass
class SaveResult:
    """What a save did: the new cookie value to send, whether the token was rotated, and the
    session id now in use.

    ``cookie_value`` is ``None`` when the client's cookie still opens the session unchanged. A
    server-side store must not answer a save that did not change the token with the client's own
    (possibly older) token: under concurrency that response can arrive after the one that
    carried a rotated token and take the browser back to a token that is about to be evicted.
    """

    cookie_value: str | None
    rotated: bool = False
    session_id: str | None = None


@runtime_checkable
class SessionStore(Protocol):
    """Persistence for sessions. Implemented by MongoSessionStore, MemorySessionStore, ….

    All methods may raise :class:`~tornado_mongo_session.errors.SessionStoreUnavailable` (the
    mixin answers 503) or another :class:`~tornado_mongo_session.errors.SessionStoreError`.
    """

    async def load(self, cookie_value: str, *, now: datetime) -> SessionRecord | None:
        """Return the live session the cookie value names, or ``None``.

        ``None`` covers every cookie that does not open a live session: malformed, unknown id,
        wrong or evicted token, tampered signature, expired at ``now``. Never raises for those.
        """
        ...

    async def save(self, request: SaveRequest) -> SaveResult:
        """Persist the request's changes in as few commands as the store allows.

        A new session is inserted with ``request.data``; a loaded one gets only its delta. A
        rotation is a compare-and-set on the loaded ``rotated_at``: if another request rotated
        first, the data is still written and ``SaveResult.rotated`` is False. Writes nothing
        partial on error.
        """
        ...

    async def delete(self, record: SessionRecord) -> None:
        """Delete a stored session (logout, or the old id after regenerate)."""
        ...
