"""MemorySessionStore: sessions in this process's memory, for tests and local development.

It behaves like :class:`~tornado_mongo_session.stores.mongo.MongoSessionStore` where a handler
could tell the difference: what is written goes through BSON once, so values come back exactly
as they would from MongoDB (tuples as lists, datetimes cut to milliseconds and aware UTC); saves
apply the same delta (``$set``/``$unset`` of top-level keys) and the same compare-and-set
rotation on the loaded ``rotated_at``, evicting the oldest token; reads skip expired records; a
document over MongoDB's 16 MiB is refused. Each operation runs without awaiting anything, so it
is atomic on the event loop, as one MongoDB command is atomic on its document.

A load costs no decoding: a record shares the stored values, which nothing changes in place
(a save replaces them; :class:`~tornado_mongo_session.session.Session` copies a value before
handing it out). Sessions live as long as the process and are not shared between processes: not
for production with more than one process. The store is bounded: past ``max_sessions`` the least
recently used session is evicted.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tornado_mongo_session._bson import copy_value, decode, encode_for_store
from tornado_mongo_session.clock import utc_now
from tornado_mongo_session.errors import SessionStoreError
from tornado_mongo_session.stores._as_stored import (
    NEAR_LIMIT,
    apply_delta,
    check_size,
    stored_retired,
    stored_time,
)
from tornado_mongo_session.stores._document import DocumentStore
from tornado_mongo_session.stores._document_layout import Document, DocumentWrite, StoredSession
from tornado_mongo_session.stores.base import SessionRecord

__all__ = ["MemorySessionStore"]

log = logging.getLogger("tornado_mongo_session.memory")


@dataclass(slots=True, kw_only=True)
class _Held(StoredSession):
    """One session's document, as values MongoDB would return: tokens as a tuple, times as BSON
    stores them, ``data`` as BSON decodes it (a save replaces it; a load shares its values).
    ``size`` bounds the data's BSON size from above (exact once near MongoDB's limit), so a
    save need not encode what it does not change."""

    size: int = 0


class MemorySessionStore(DocumentStore):
    """Sessions in a bounded in-process map: ``session id -> document``.

    ``max_sessions`` bounds the map; inserting past it evicts the least recently used session
    (loads and saves count as use). ``clock`` is the default ``now`` of :meth:`purge_expired`.

    Round trips: none; every operation is a few dictionary operations, and a save a BSON encode
    and decode of what it writes. Listing and revoking a user's sessions scan the map.
    """

    waits_for_io = False
    """Its methods never wait for I/O: the mixin saves within ``finish()``, without a task."""
    _serialize_writes = False  # each save runs whole without yielding: nothing to lock

    def __init__(
        self, *, max_sessions: int = 10000, clock: Callable[[], datetime] | None = None
    ) -> None:
        if max_sessions < 1:
            raise ValueError(f"MemorySessionStore: max_sessions must be >= 1, got {max_sessions!r}")
        super().__init__()
        self.max_sessions = max_sessions
        self._clock = clock or utc_now
        self._records: OrderedDict[str, _Held] = OrderedDict()

    @property
    def session_count(self) -> int:
        """How many sessions are held, expired ones not yet purged included.

        (Not ``__len__``: an empty store must stay truthy where code writes ``store or default``.)
        """
        return len(self._records)

    def document(self, session_id: str) -> dict[str, Any] | None:
        """Return a decoded copy of the stored document for ``session_id`` (for inspection).

        Does not count as use for eviction and ignores expiry.
        """
        held = self._records.get(session_id)
        return None if held is None else copy_value(_document(session_id, held))

    # -- the SessionStore protocol (load and save: DocumentStore) -----------------------------

    async def delete(self, record: SessionRecord) -> None:
        self._records.pop(record.id, None)

    # -- maintenance -------------------------------------------------------------------------

    async def purge_expired(self, *, now: datetime | None = None) -> int:
        """Delete every session whose deadline has passed; return how many were deleted."""
        deadline = now or self._clock()
        expired = [key for key, held in self._records.items() if held.expires_at <= deadline]
        for session_id in expired:
            del self._records[session_id]
        return len(expired)

    # -- DocumentStore's primitives, on a dict -------------------------------------------------

    def _now(self) -> datetime:
        return self._clock()

    async def _bound_sessions(self, user_id: str, now: datetime) -> list[StoredSession]:
        return [
            held
            for held in self._records.values()
            if held.user_id == user_id and held.expires_at > now
        ]

    async def _delete_bound(
        self, *, user_id: str | None, handle: str | None, keep: str | None
    ) -> int:
        doomed = [
            session_id
            for session_id, held in self._records.items()
            if held.handle is not None
            and (user_id is None or held.user_id == user_id)
            and (held.handle == handle if handle is not None else held.handle != keep)
        ]
        for session_id in doomed:
            del self._records[session_id]
        return len(doomed)

    async def _find(self, session_id: str) -> StoredSession | None:
        held = self._records.get(session_id)
        if held is not None:
            self._records.move_to_end(session_id)
        return held

    async def _insert_document(self, doc: Document) -> None:
        session_id = doc["_id"]
        if session_id in self._records:
            raise SessionStoreError("session id collision during insert")
        raw = encode_for_store(doc["data"], what="insert")
        held = _Held(
            tokens=tuple(doc["tokens"]),
            created_at=stored_time(doc["created_at"]),
            accessed_at=stored_time(doc["accessed_at"]),
            rotated_at=stored_time(doc["rotated_at"]),
            expires_at=stored_time(doc["expires_at"]),
            data=decode(raw),
            size=len(raw),
        )
        if "user_id" in doc:
            held.user_id, held.handle = doc["user_id"], doc["handle"]
            held.ip, held.user_agent = doc.get("ip"), doc.get("ua")
        if held.size >= NEAR_LIMIT:
            check_size(_document(session_id, held, data={}), held.size, "insert")
        self._records[session_id] = held
        while len(self._records) > self.max_sessions:
            evicted, _held = self._records.popitem(last=False)
            log.debug(
                "session …%s evicted: max_sessions=%d reached", evicted[-4:], self.max_sessions
            )

    async def _update_document(
        self, session_id: str, rotated_at: datetime | None, write: DocumentWrite
    ) -> bool:
        held = self._records.get(session_id)
        if held is None or (rotated_at is not None and held.rotated_at != rotated_at):
            return False
        data, size = held.data, held.size
        if write.set_data or write.unset_data:
            data, size = apply_delta(data, size, write.set_data, write.unset_data)
        accessed_at = stored_time(write.accessed_at)
        expires_at = stored_time(write.expires_at)
        tokens, rotated, retired = held.tokens, held.rotated_at, held.retired
        if write.tokens is not None:
            tokens = tuple(write.tokens)
            rotated = stored_time(write.rotated_at or held.rotated_at)
        if write.retired is not None:
            retired = stored_retired(write.retired)
        if size >= NEAR_LIMIT:
            beside = _document(session_id, held, data={})
            beside.update(
                tokens=tokens, accessed_at=accessed_at, rotated_at=rotated, expires_at=expires_at
            )
            if retired:
                beside["retired"] = retired
            check_size(beside, size, "update")
        # Nothing is written until everything above succeeded.
        held.data, held.size, held.tokens, held.retired = data, size, tokens, retired
        held.accessed_at, held.expires_at, held.rotated_at = accessed_at, expires_at, rotated
        self._records.move_to_end(session_id)
        return True


def _document(session_id: str, held: _Held, data: dict[str, Any] | None = None) -> dict[str, Any]:
    """The document as MongoDB would return it (with ``data`` in place of the data, if given)."""
    doc = {
        "_id": session_id,
        "tokens": list(held.tokens),
        "created_at": held.created_at,
        "accessed_at": held.accessed_at,
        "rotated_at": held.rotated_at,
        "expires_at": held.expires_at,
        "data": held.data if data is None else data,
    }
    if held.user_id is not None:
        doc.update(user_id=held.user_id, handle=held.handle)
        for name, value in (("ip", held.ip), ("ua", held.user_agent)):
            if value is not None:
                doc[name] = value
    if held.retired:  # the field exists from the first eviction on, as in MongoDB
        doc["retired"] = [dict(entry) for entry in held.retired]
    return doc
