"""DocumentStore: the session document and its updates, for stores that keep one per session.

MongoSessionStore and MemorySessionStore differ only in where a document lives; what goes into
it, how a save becomes one ``$set``/``$unset`` update, and how rotation is a compare-and-set on
the loaded ``rotated_at`` are decided here once.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias

from tornado_mongo_session.clock import as_utc, utc_now
from tornado_mongo_session.errors import SessionEnded
from tornado_mongo_session.stores._locks import KeyedLocks
from tornado_mongo_session.stores.base import (
    NewSession,
    SaveResult,
    SessionRecord,
    SessionUpdate,
    UserSession,
)
from tornado_mongo_session.tokens import (
    encode_cookie,
    hash_token,
    parse_cookie,
    session_handle,
    token_rank,
)

__all__ = ["Document", "DocumentStore", "StoredSession"]

Document: TypeAlias = "dict[str, Any]"
"""A MongoDB document, a query or an update's fields, as PyMongo takes and returns them."""

log = logging.getLogger("tornado_mongo_session.stores")


RETIRED_KEPT = 16
"""How many retired token hashes a document remembers, with when each was retired: a request
whose token was evicted while it was under way (a slow upload) is still recognised, and the
reuse of a token retired long before is told from an unknown one (theft), for this many
rotations after its eviction."""


@dataclass(slots=True, kw_only=True)
class StoredSession:
    """A session document, read: token hashes newest first, aware UTC times, the data, the
    retired token hashes (``{h, at}``, newest first; times as stored), and an upper bound of the
    data's BSON size when the store knows one without encoding it."""

    tokens: Sequence[str]
    created_at: datetime
    accessed_at: datetime
    rotated_at: datetime
    expires_at: datetime
    data: dict[str, Any]
    user_id: str | None = None
    handle: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    retired: Sequence[Mapping[str, Any]] = ()
    size: int | None = None

    @classmethod
    def read(cls, doc: Mapping[str, Any]) -> StoredSession | None:
        """The session a document holds; ``None``, and a warning, for a malformed one."""
        try:
            tokens = doc["tokens"]
            found = cls(
                tokens=tokens if isinstance(tokens, list) else [],
                created_at=as_utc(doc["created_at"]),
                accessed_at=as_utc(doc["accessed_at"]),
                rotated_at=as_utc(doc["rotated_at"]),
                expires_at=as_utc(doc["expires_at"]),
                data=dict(doc.get("data") or {}),
                retired=doc.get("retired") or (),
            )
            user_id = doc.get("user_id")
            if user_id is not None:  # only bound sessions pay for the fields of a device
                found.user_id = str(user_id)
                found.handle = doc.get("handle")
                found.ip = doc.get("ip")
                found.user_agent = doc.get("ua")
            return found
        except (KeyError, TypeError, AttributeError, ValueError):
            log.warning("session document …%s is malformed; treated as absent", doc["_id"][-4:])
            return None


class DocumentStore(abc.ABC):
    """A store of ``{_id, tokens, created_at, accessed_at, rotated_at, expires_at, data}``.

    Subclasses provide three primitives: find a live document, insert one, and update one with
    an optional compare-and-set on ``rotated_at``; and two for the sessions bound to a user
    (:meth:`_bound_sessions`, :meth:`_delete_bound`). Writes to one session are serialized within
    the process (see :class:`~tornado_mongo_session.stores._locks.KeyedLocks`).

    A session bound to a user (``Session.bind_user``) also holds ``user_id``, ``handle`` (see
    :func:`~tornado_mongo_session.tokens.session_handle`) and, when recorded, ``ip`` and ``ua``
    (the client's at login); an anonymous session holds none of them.
    """

    _serialize_writes = True
    """Serialize the writes to one session within the process (:class:`KeyedLocks`). A store
    whose primitives never await (memory) sets it False: each save then runs whole without
    yielding to the loop, and a lock would guard nothing."""

    def __init__(self) -> None:
        self._writing = KeyedLocks()

    # -- what a subclass provides ------------------------------------------------------------

    @abc.abstractmethod
    async def _find(self, session_id: str) -> StoredSession | None:
        """The session ``session_id`` names, live or not (``load`` checks the deadline)."""

    @abc.abstractmethod
    async def _insert_document(self, doc: Document) -> None:
        """Insert a new document; raise SessionStoreError if its id exists."""

    @abc.abstractmethod
    async def _update_document(self, query: Document, fields: Document, removed: list[str]) -> bool:
        """``$set`` fields and ``$unset`` removed (dotted paths) on the document ``query``
        matches (``{_id}``, or ``{_id, rotated_at}`` for a compare-and-set); True if one did."""

    @abc.abstractmethod
    async def _bound_sessions(self, user_id: str, now: datetime) -> list[StoredSession]:
        """The sessions bound to ``user_id`` that are live at ``now`` (one query)."""

    @abc.abstractmethod
    async def _delete_bound(
        self, *, user_id: str | None, handle: str | None, keep: str | None
    ) -> int:
        """Delete the bound sessions matching ``user_id`` and ``handle`` (each when given),
        except the one whose handle is ``keep``; return how many (one delete)."""

    def _now(self) -> datetime:
        """The default ``now`` of :meth:`list_user_sessions`."""
        return utc_now()

    # -- the SessionStore protocol -----------------------------------------------------------

    async def load(self, cookie_value: str, *, now: datetime) -> SessionRecord | None:
        parsed = parse_cookie(cookie_value)
        if parsed is None:
            return None
        session_id, token = parsed
        found = await self._find(session_id)
        # The deadline is checked here rather than in the query: a filter on _id alone is the
        # one every server answers from its index (FerretDB scans the collection otherwise).
        if found is None or found.expires_at <= now:
            return None
        token_hash = hash_token(token)
        rank = token_rank(token_hash, found.tokens)
        retired_at = None
        if rank is None:
            retired_at = _retired_at(token_hash, found.retired)
            if retired_at is None:
                return None
        record = SessionRecord(
            id=session_id,
            data=dict(found.data),
            created_at=found.created_at,
            accessed_at=found.accessed_at,
            rotated_at=found.rotated_at,
            expires_at=found.expires_at,
            token=token,
            token_hashes=list(found.tokens),
            token_newest=rank == 0,
            token_retired_at=retired_at,
            retired=found.retired,
            size=found.size,
        )
        if found.user_id is not None:  # only a bound session pays for its user's fields
            record.user_id, record.ip = found.user_id, found.ip
            record.user_agent = found.user_agent
        return record

    async def save(self, request: NewSession | SessionUpdate) -> SaveResult:
        if isinstance(request, NewSession):
            return await self._insert(request)
        if not self._serialize_writes:
            return await self._update(request)
        async with self._writing.hold(request.session_id):
            return await self._update(request)

    async def session_alive(self, session_id: str, *, now: datetime) -> bool:
        """Tell whether the session ``session_id`` is still stored and live at ``now`` (one
        find): not revoked, not logged out, not expired. Its tokens are not checked."""
        found = await self._find(session_id)
        return found is not None and found.expires_at > now

    # -- the sessions of a user (UserSessionStore) -------------------------------------------

    async def list_user_sessions(
        self, user_id: str, *, current: str | None = None, now: datetime | None = None
    ) -> list[UserSession]:
        """The live sessions bound to ``user_id``, newest login first (one query); the one whose
        handle is ``current`` is marked. ``now`` defaults to the store's clock."""
        found = await self._bound_sessions(_user(user_id), now or self._now())
        sessions = [
            UserSession(
                handle=stored.handle,
                created_at=stored.created_at,
                accessed_at=stored.accessed_at,
                ip=stored.ip,
                user_agent=stored.user_agent,
                current=stored.handle == current,
            )
            for stored in found
            if stored.handle is not None
        ]
        sessions.sort(key=lambda session: session.created_at, reverse=True)
        return sessions

    async def revoke_session(self, handle: str, *, user_id: str | None = None) -> bool:
        """Delete the session ``handle`` names (of ``user_id`` only, when given); True if one
        was deleted. One delete. A handle from a request must come with the signed-in user's
        id: then another user's handle revokes nothing."""
        if not isinstance(handle, str):
            raise TypeError(f"handle must be a str, not {type(handle).__name__}")
        owner = None if user_id is None else _user(user_id)
        return await self._delete_bound(user_id=owner, handle=handle, keep=None) > 0

    async def revoke_user(self, user_id: str, *, keep: str | None = None) -> int:
        """Delete every session bound to ``user_id`` but the one whose handle is ``keep``;
        return how many. One delete."""
        return await self._delete_bound(user_id=_user(user_id), handle=None, keep=keep)

    # -- the steps ---------------------------------------------------------------------------

    async def _insert(self, new: NewSession) -> SaveResult:
        doc: dict[str, Any] = {
            "_id": new.session_id,
            "tokens": [hash_token(new.token)],
            "created_at": new.created_at,
            "accessed_at": new.now,
            "rotated_at": new.now,
            "expires_at": new.expires_at,
            "data": dict(new.data),
        }
        if new.user_id is not None:
            doc["user_id"] = new.user_id
            doc["handle"] = session_handle(new.session_id)
            if new.ip is not None:
                doc["ip"] = new.ip
            if new.user_agent is not None:
                doc["ua"] = new.user_agent
        await self._insert_document(doc)
        cookie = encode_cookie(new.session_id, new.token)
        return SaveResult(session_id=new.session_id, cookie_value=cookie, rotated=True)

    async def _update(self, update: SessionUpdate) -> SaveResult:
        loaded = update.loaded
        fields: dict[str, Any] = {f"data.{k}": v for k, v in update.changed.items()}
        fields["expires_at"] = update.expires_at
        fields["accessed_at"] = update.now
        removed = [f"data.{k}" for k in update.removed] if update.removed else []
        rotation = update.rotation
        if rotation is None:
            if not await self._update_document({"_id": loaded.id}, fields, removed):
                _ended(loaded, update)
            return SaveResult(session_id=loaded.id)

        keep = max(1, rotation.keep)
        rotated: Document = {
            **fields,
            "tokens": [hash_token(rotation.token), *loaded.token_hashes][:keep],
            "rotated_at": update.now,
        }
        evicted = loaded.token_hashes[keep - 1 :]
        if evicted:
            # Set whole, like the tokens: the compare-and-set makes the loaded list current.
            entries = [{"h": h, "at": update.now} for h in evicted]
            rotated["retired"] = [*entries, *loaded.retired][:RETIRED_KEPT]
        # Compare-and-set: only the request that loaded the current rotated_at may rotate.
        query = {"_id": loaded.id, "rotated_at": loaded.rotated_at}
        if await self._update_document(query, rotated, removed):
            cookie = encode_cookie(loaded.id, rotation.token)
            return SaveResult(session_id=loaded.id, cookie_value=cookie, rotated=True)
        # Another request rotated first (and pushed the deadline): our token is still kept, so
        # only data, if any, remains to be written.
        if (update.changed or update.removed) and not await self._update_document(
            {"_id": loaded.id}, fields, removed
        ):
            _ended(loaded, update)
        return SaveResult(session_id=loaded.id)


def _user(user_id: object) -> str:
    """``user_id`` checked: a non-empty str (a query for another type would match nothing)."""
    if not isinstance(user_id, str) or not user_id:
        raise TypeError(f"user_id must be a non-empty str, not {user_id!r}")
    return user_id


def _retired_at(token_hash: str, retired: Sequence[Mapping[str, Any]]) -> datetime | None:
    """When ``token_hash`` was retired, per the document's ``retired`` entries; ``None`` if it
    is not among them. Every entry is compared in constant time."""
    rank = token_rank(token_hash, [entry.get("h") for entry in retired])
    if rank is None:
        return None
    try:
        return as_utc(retired[rank]["at"])
    except (KeyError, TypeError, AttributeError, ValueError):
        return None


def _ended(loaded: SessionRecord, update: SessionUpdate) -> None:
    """Raise :class:`SessionEnded` for a write that matched no document; a touch that found
    none lost nothing and passes."""
    if update.changed or update.removed:
        raise SessionEnded(
            f"session …{loaded.id[-4:]} ended (login, logout or revocation elsewhere) while "
            "this request was writing to it; nothing was written"
        )
