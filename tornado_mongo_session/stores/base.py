"""The SessionStore protocol and the records that cross it.

A store persists session records and turns a cookie value into a record. It does not decide
policy: the save policy (:mod:`tornado_mongo_session.policy`) decides when to rotate, when to
push the expiry forward and what changed, and hands the store a :class:`NewSession` or a
:class:`SessionUpdate`. Stores never import tornado.

Both records read alike where a store needs the session's state after the save
(``session_id``, ``data``, ``created_at``, ``now``, ``rotated_at``, ``expires_at``), so a
store that rewrites a session whole (the cookie store) treats them the same.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from tornado_mongo_session.tokens import new_session_id, new_token

__all__ = [
    "NewSession",
    "Rotation",
    "SaveResult",
    "SessionRecord",
    "SessionStore",
    "SessionUpdate",
]


@dataclass(kw_only=True, slots=True)
class SessionRecord:
    """A live session as loaded from a store.

    ``data`` is a dict of the load's own (a :class:`~tornado_mongo_session.Session` takes it
    over), though its values may be shared with the store: never change one in place.
    ``token`` is the raw token the client presented (kept in memory for this request only, never
    stored); ``token_hashes`` the stored SHA-256 hashes, newest first. ``in_cookie``: the data
    lives in the cookie itself (:class:`~tornado_mongo_session.stores.cookie.CookieSessionStore`),
    so its save can only travel in the response, and no server holds anything to delete.

    ``token_newest``: the client presented the newest token (only such a request may rotate).
    ``token_retired_at``: set when the client presented a token that is no longer kept but
    was retired (evicted by a rotation) at that time; the save policy judges it against when the
    request arrived (:func:`~tornado_mongo_session.policy.judge_token`), and the session must
    not be used before it did. ``retired``: the stored ``{h, at}`` entries of retired token
    hashes, newest first, as the next rotation extends them.

    ``size``: an upper bound of ``data``'s BSON size as stored, when the store knows one
    without encoding it (the memory and cookie stores); it spares a save the encoding of the
    whole session to check ``max_session_bytes``.
    """

    id: str
    data: dict[str, Any]
    created_at: datetime
    accessed_at: datetime
    rotated_at: datetime
    expires_at: datetime
    token: str | None = field(default=None, repr=False)
    token_hashes: list[str] = field(default_factory=list)
    in_cookie: bool = False
    user_id: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    token_newest: bool = True
    token_retired_at: datetime | None = None
    retired: Sequence[Mapping[str, Any]] = ()
    size: int | None = field(default=None, compare=False)  # a hint, not what the session is


@dataclass(frozen=True, kw_only=True)
class NewSession:
    """A session to store for the first time, under a fresh token.

    ``created_at`` is ``now`` for a session born in this request; a session moved from one store
    to another keeps its own, so its absolute deadline still counts from there. ``promote``: the
    session is being regenerated (login): a store that composes a cheap tier with a protected
    one puts it in the protected one. ``session_id`` and ``token`` default to fresh ones.
    ``user_id``: the user the session is bound to (``Session.bind_user``), with the client's
    ``ip`` and ``user_agent`` as they were at login (``None`` when not recorded).
    """

    data: Mapping[str, Any]
    created_at: datetime
    now: datetime
    expires_at: datetime
    session_id: str = field(default_factory=new_session_id)
    token: str = field(default_factory=new_token, repr=False)
    promote: bool = False
    user_id: str | None = None
    ip: str | None = None
    user_agent: str | None = None

    @property
    def rotated_at(self) -> datetime:
        """When the session's token was issued: now."""
        return self.now


# The records a save builds on every request that writes are frozen dataclasses whose
# ``__init__`` is written out: the generated one of a frozen dataclass sets each field through
# ``object.__setattr__``, which costs more than the rest of building them. Written here, the
# fields go into the instance's ``__dict__`` at once; frozen as before (assignment raises
# ``FrozenInstanceError``), and ``dataclasses.replace``, ``==`` and ``repr`` work as before.


@dataclass(frozen=True, kw_only=True, init=False)
class Rotation:
    """Replace the token: issue ``token`` (a fresh one when omitted) and keep the ``keep``
    newest token hashes."""

    keep: int
    token: str = field(repr=False)

    def __init__(self, *, keep: int, token: str | None = None) -> None:
        self.__dict__.update(keep=keep, token=new_token() if token is None else token)


@dataclass(frozen=True, kw_only=True, init=False)
class SessionUpdate:
    """A change to a session this request loaded: always a touch, possibly more.

    ``changed`` maps each new or modified top-level key to its value and ``removed`` lists the
    deleted keys (stores that write deltas use these). The access time becomes ``now`` and the
    deadline ``expires_at``. ``rotation``, when given, replaces the token as a compare-and-set
    on the loaded ``rotated_at``.
    """

    loaded: SessionRecord
    now: datetime
    expires_at: datetime
    changed: Mapping[str, Any] = field(default_factory=dict)
    removed: tuple[str, ...] = ()
    rotation: Rotation | None = None

    def __init__(
        self,
        *,
        loaded: SessionRecord,
        now: datetime,
        expires_at: datetime,
        changed: Mapping[str, Any] | None = None,
        removed: tuple[str, ...] = (),
        rotation: Rotation | None = None,
    ) -> None:
        self.__dict__.update(
            loaded=loaded,
            now=now,
            expires_at=expires_at,
            changed={} if changed is None else changed,
            removed=removed,
            rotation=rotation,
        )

    @property
    def session_id(self) -> str:
        return self.loaded.id

    @property
    def created_at(self) -> datetime:
        return self.loaded.created_at

    @property
    def user_id(self) -> str | None:
        """The user the session is bound to: an update never changes it (binding regenerates)."""
        return self.loaded.user_id

    @property
    def rotated_at(self) -> datetime:
        """When the token in use after this save was issued (now, if this save rotates)."""
        return self.loaded.rotated_at if self.rotation is None else self.now

    @property
    def data(self) -> dict[str, Any]:
        """All the session's data after the change (for stores that write it whole)."""
        data = {k: v for k, v in self.loaded.data.items() if k not in self.removed}
        data.update(self.changed)
        return data


@dataclass(frozen=True, kw_only=True, init=False)
class SaveResult:
    """What a save did: the session id now in use, the cookie value to send, and whether the
    token was replaced (always, for a :class:`NewSession`).

    ``cookie_value`` is ``None`` when the client's cookie still opens the session unchanged. A
    server-side store must not answer a save that did not change the token with the client's own
    (possibly older) token: under concurrency that response can arrive after the one that
    carried a rotated token and take the browser back to a token that is about to be evicted.
    """

    session_id: str
    cookie_value: str | None = None
    rotated: bool = False

    def __init__(
        self, *, session_id: str, cookie_value: str | None = None, rotated: bool = False
    ) -> None:
        self.__dict__.update(session_id=session_id, cookie_value=cookie_value, rotated=rotated)


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

    async def save(self, request: NewSession | SessionUpdate) -> SaveResult:
        """Persist a new session or an update, in as few commands as the store allows.

        A new session is inserted whole; an update writes only its delta. A rotation is a
        compare-and-set on the loaded ``rotated_at``: if another request rotated first, the data
        is still written and ``SaveResult.rotated`` is False. Writes nothing partial on error.
        """
        ...

    async def delete(self, record: SessionRecord) -> None:
        """Delete a stored session (logout, or the old id after regenerate)."""
        ...
