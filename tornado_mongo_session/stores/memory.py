"""MemorySessionStore: sessions in this process's memory, for tests and local development.

It behaves like :class:`~tornado_mongo_session.stores.mongo.MongoSessionStore` where a handler
could tell the difference: records are kept as BSON bytes, so values come back exactly as they
would from MongoDB (tuples as lists, datetimes cut to milliseconds and aware UTC); saves apply the
same delta (``$set``/``$unset`` of top-level keys) and the same compare-and-set rotation on the
loaded ``rotated_at``, evicting the oldest token; reads skip expired records. Each operation runs
without awaiting anything, so it is atomic on the event loop, as one MongoDB command is atomic on
its document.

Sessions live as long as the process and are not shared between processes: not for production
with more than one process. The store is bounded: past ``max_sessions`` the least recently used
session is evicted.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from typing import Any

from tornado_mongo_session._bson import decode, encode_for_store
from tornado_mongo_session.clock import utc_now
from tornado_mongo_session.errors import SessionDataError, SessionStoreError
from tornado_mongo_session.stores._document import DocumentStore
from tornado_mongo_session.stores.base import SessionRecord

__all__ = ["MemorySessionStore"]

log = logging.getLogger("tornado_mongo_session.memory")

_MAX_DOCUMENT_BYTES = 16 * 1024 * 1024  # MongoDB's document limit


class MemorySessionStore(DocumentStore):
    """Sessions in a bounded in-process map: ``session id -> BSON document``.

    ``max_sessions`` bounds the map; inserting past it evicts the least recently used session
    (loads and saves count as use). ``clock`` is the default ``now`` of :meth:`purge_expired`.

    Round trips: none; every operation is a few dictionary operations and a BSON encode/decode.
    """

    def __init__(
        self, *, max_sessions: int = 10000, clock: Callable[[], datetime] | None = None
    ) -> None:
        if max_sessions < 1:
            raise ValueError(f"MemorySessionStore: max_sessions must be >= 1, got {max_sessions!r}")
        super().__init__()
        self.max_sessions = max_sessions
        self._clock = clock or utc_now
        self._records: OrderedDict[str, bytes] = OrderedDict()

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
        raw = self._records.get(session_id)
        return None if raw is None else decode(raw)

    # -- the SessionStore protocol (load and save: DocumentStore) -----------------------------

    async def delete(self, record: SessionRecord) -> None:
        self._records.pop(record.id, None)

    # -- maintenance -------------------------------------------------------------------------

    async def purge_expired(self, *, now: datetime | None = None) -> int:
        """Delete every session whose deadline has passed; return how many were deleted."""
        deadline = now or self._clock()
        expired = [
            session_id
            for session_id, raw in self._records.items()
            if decode(raw)["expires_at"] <= deadline
        ]
        for session_id in expired:
            del self._records[session_id]
        return len(expired)

    # -- DocumentStore's primitives, on a dict -------------------------------------------------

    async def _find(self, session_id: str) -> dict[str, Any] | None:
        raw = self._records.get(session_id)
        if raw is None:
            return None
        self._records.move_to_end(session_id)
        return decode(raw)

    async def _insert_document(self, doc: dict[str, Any]) -> None:
        session_id = doc["_id"]
        if session_id in self._records:
            raise SessionStoreError("session id collision during insert")
        self._records[session_id] = self._encode(doc, "insert")
        while len(self._records) > self.max_sessions:
            evicted, _raw = self._records.popitem(last=False)
            log.debug(
                "session …%s evicted: max_sessions=%d reached", evicted[-4:], self.max_sessions
            )

    async def _update_document(
        self,
        session_id: str,
        rotated_at: datetime | None,
        fields: dict[str, Any],
        removed: list[str],
    ) -> bool:
        raw = self._records.get(session_id)
        if raw is None:
            return False
        doc = decode(raw)
        if rotated_at is not None and doc.get("rotated_at") != rotated_at:
            return False
        for path, value in fields.items():
            target, key = _parent(doc, path, create=True)
            if target is not None:
                target[key] = value
        for path in removed:
            target, key = _parent(doc, path, create=False)
            if target is not None:
                target.pop(key, None)
        self._records[session_id] = self._encode(doc, "update")
        self._records.move_to_end(session_id)
        return True

    @staticmethod
    def _encode(doc: dict[str, Any], what: str) -> bytes:
        raw = encode_for_store(doc, data_key="data", what=what)
        if len(raw) > _MAX_DOCUMENT_BYTES:
            raise SessionDataError(
                f"session data refused during {what}: the document is {len(raw)} bytes, over "
                f"MongoDB's limit of {_MAX_DOCUMENT_BYTES}"
            )
        return raw


def _parent(doc: dict[str, Any], path: str, *, create: bool) -> tuple[dict[str, Any] | None, str]:
    """Return the mapping that holds the last part of a dotted ``path``, and that part."""
    *parents, key = path.split(".")
    target: Any = doc
    for part in parents:
        child = target.get(part)
        if not isinstance(child, dict):
            if not create:
                return None, key
            child = target[part] = {}
        target = child
    return target, key
