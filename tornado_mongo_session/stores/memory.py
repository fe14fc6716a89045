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
from datetime import datetime, timezone
from typing import Any

import bson
from bson.codec_options import CodecOptions
from bson.errors import InvalidDocument

from tornado_mongo_session.errors import SessionDataError, SessionStoreError
from tornado_mongo_session.stores.base import SaveRequest, SaveResult, SessionRecord
from tornado_mongo_session.tokens import encode_cookie, hash_token, parse_cookie, token_matches

__all__ = ["MemorySessionStore"]

log = logging.getLogger("tornado_mongo_session.memory")

# What a tz_aware PyMongo client returns (MongoSessionStore.from_settings builds one so).
_CODEC: CodecOptions[dict[str, Any]] = CodecOptions(
    document_class=dict, tz_aware=True, tzinfo=timezone.utc
)
_MAX_DOCUMENT_BYTES = 16 * 1024 * 1024  # MongoDB's document limit


def _utc_now() -> datetime:
    now = datetime.now(timezone.utc)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class MemorySessionStore:
    """Sessions in a bounded in-process map: ``session id -> BSON document``.

    ``max_sessions`` bounds the map; inserting past it evicts the least recently used session
    (loads and saves count as use). ``clock`` is the default ``now`` of :meth:`purge_expired`.

    Round trips: none; every operation is a few dictionary operations and a BSON encode/decode.
    """

    origin = "memory"

    def __init__(
        self, *, max_sessions: int = 10000, clock: Callable[[], datetime] | None = None
    ) -> None:
        if max_sessions < 1:
            raise ValueError(f"MemorySessionStore: max_sessions must be >= 1, got {max_sessions!r}")
        self.max_sessions = max_sessions
        self._clock = clock or _utc_now
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
        return None if raw is None else bson.decode(raw, codec_options=_CODEC)

    # -- the SessionStore protocol -----------------------------------------------------------

    async def load(self, cookie_value: str, *, now: datetime) -> SessionRecord | None:
        parsed = parse_cookie(cookie_value)
        if parsed is None:
            return None
        session_id, token = parsed
        raw = self._records.get(session_id)
        if raw is None:
            return None
        doc = bson.decode(raw, codec_options=_CODEC)
        if not doc["expires_at"] > now:
            return None
        self._records.move_to_end(session_id)
        hashes = doc["tokens"]
        if not token_matches(token, hashes):
            return None
        return SessionRecord(
            id=session_id,
            data=dict(doc["data"]),
            created_at=doc["created_at"],
            accessed_at=doc["accessed_at"],
            rotated_at=doc["rotated_at"],
            expires_at=doc["expires_at"],
            token=token,
            token_hashes=list(hashes),
            origin=self.origin,
        )

    async def save(self, request: SaveRequest) -> SaveResult:
        if request.loaded is None:
            return self._insert(request)
        return self._update(request, request.loaded)

    async def delete(self, record: SessionRecord) -> None:
        self._records.pop(record.id, None)

    # -- maintenance -------------------------------------------------------------------------

    async def purge_expired(self, *, now: datetime | None = None) -> int:
        """Delete every session whose deadline has passed; return how many were deleted."""
        deadline = now or self._clock()
        expired = [
            session_id
            for session_id, raw in self._records.items()
            if bson.decode(raw, codec_options=_CODEC)["expires_at"] <= deadline
        ]
        for session_id in expired:
            del self._records[session_id]
        return len(expired)

    # -- internals: the same steps as MongoSessionStore, on a dict ----------------------------

    def _insert(self, request: SaveRequest) -> SaveResult:
        token = request.new_token
        if token is None:
            raise SessionStoreError("a new session needs a token: SaveRequest.new_token is None")
        expires_at = request.expires_at
        if expires_at is None:
            raise SessionStoreError("a new session needs SaveRequest.expires_at")
        if request.session_id in self._records:
            raise SessionStoreError("session id collision during insert")
        doc = {
            "_id": request.session_id,
            "tokens": [hash_token(token)],
            "created_at": request.created_at,
            "accessed_at": request.accessed_at or request.now,
            "rotated_at": request.now,
            "expires_at": expires_at,
            "data": dict(request.data),
        }
        self._records[request.session_id] = self._encode(doc, "insert")
        while len(self._records) > self.max_sessions:
            evicted, _raw = self._records.popitem(last=False)
            log.debug(
                "session …%s evicted: max_sessions=%d reached", evicted[-4:], self.max_sessions
            )
        return SaveResult(encode_cookie(request.session_id, token), True, request.session_id)

    def _update(self, request: SaveRequest, loaded: SessionRecord) -> SaveResult:
        fields: dict[str, Any] = {f"data.{k}": v for k, v in request.changed.items()}
        if request.expires_at is not None:
            fields["expires_at"] = request.expires_at
            fields["accessed_at"] = request.accessed_at or request.now
        removed = [f"data.{k}" for k in request.removed]
        token = loaded.token
        if request.new_token is None:
            if not fields and not removed:
                return SaveResult(None, False, loaded.id)
            self._update_one(loaded.id, None, fields, removed)
            return SaveResult(self._cookie(loaded.id, token), False, loaded.id)

        rotation = {
            "tokens": [hash_token(request.new_token), *loaded.token_hashes][
                : max(1, request.tokens_kept)
            ],
            "rotated_at": request.now,
        }
        # Compare-and-set: only the request that loaded the current rotated_at may rotate.
        if self._update_one(loaded.id, loaded.rotated_at, {**fields, **rotation}, removed):
            return SaveResult(encode_cookie(loaded.id, request.new_token), True, loaded.id)
        # Another request rotated first: our token is still kept; write the data without rotating.
        if fields or removed:
            self._update_one(loaded.id, None, fields, removed)
            return SaveResult(self._cookie(loaded.id, token), False, loaded.id)
        return SaveResult(None, False, loaded.id)

    @staticmethod
    def _cookie(session_id: str, token: str | None) -> str | None:
        return encode_cookie(session_id, token) if token else None

    def _update_one(
        self,
        session_id: str,
        rotated_at: datetime | None,
        fields: dict[str, Any],
        removed: list[str],
    ) -> bool:
        """``update_one({_id[, rotated_at]}, {$set: fields, $unset: removed})``; True if matched."""
        raw = self._records.get(session_id)
        if raw is None:
            return False
        doc = bson.decode(raw, codec_options=_CODEC)
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
        try:
            raw = bson.encode(doc, codec_options=_CODEC)
        except (InvalidDocument, TypeError, ValueError, OverflowError) as exc:
            raise SessionDataError(f"session data refused during {what}: {exc}") from exc
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
