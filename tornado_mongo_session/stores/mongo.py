"""MongoSessionStore: sessions as MongoDB documents, found by id, verified by token hash.

Works with a PyMongo ``AsyncCollection`` (the default driver) and with a Motor collection alike:
it only awaits the collection methods both share (find_one, insert_one, update_one, delete_one,
delete_many, create_index). It uses only what MongoDB >= 5.0 and FerretDB 1.24 both do.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TypeVar

from bson.errors import InvalidDocument
from pymongo.errors import (
    ConnectionFailure,
    DocumentTooLarge,
    DuplicateKeyError,
    ExecutionTimeout,
    OperationFailure,
    PyMongoError,
    WTimeoutError,
)

from tornado_mongo_session.errors import (
    SessionDataError,
    SessionStoreError,
    SessionStoreUnavailable,
)
from tornado_mongo_session.stores._locks import KeyedLocks
from tornado_mongo_session.stores.base import SaveRequest, SaveResult, SessionRecord
from tornado_mongo_session.tokens import encode_cookie, hash_token, parse_cookie, token_matches

if TYPE_CHECKING:
    from tornado_mongo_session.settings import SessionSettings

__all__ = ["MongoSessionStore"]

log = logging.getLogger("tornado_mongo_session.mongo")

_T = TypeVar("_T")
_UNAVAILABLE = (ConnectionFailure, ExecutionTimeout, WTimeoutError)
# Server error codes meaning "this server cannot make that index": NotImplemented (FerretDB),
# CommandNotSupported, Unauthorized.
_INDEX_UNSUPPORTED = {238, 115, 13}


def _utc(value: datetime) -> datetime:
    """Return ``value`` as an aware UTC datetime (drivers return naive UTC unless tz_aware)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


class MongoSessionStore:
    """Sessions in a MongoDB collection: ``{_id, tokens, created_at, …, data}``.

    Build it from a collection (``MongoSessionStore(client[db][coll])``, PyMongo async or Motor)
    or from settings (:meth:`from_settings`, which owns its client: call :meth:`close`).

    Round trips: a read is one ``find``; a save is one ``update`` (two when a concurrent request
    rotated first and the data must be written again without rotating); a new session is one
    ``insert``. Indexes are made once, on the first insert, or by :meth:`ensure_indexes`.
    """

    origin = "mongo"

    def __init__(self, collection: Any, *, client: Any = None) -> None:
        self.collection = collection
        self._client = client
        self._indexes_done = False
        self._indexes_lock: asyncio.Lock | None = None
        self._writing = KeyedLocks()

    @classmethod
    def from_settings(cls, settings: SessionSettings) -> MongoSessionStore:
        """Create a store with its own PyMongo ``AsyncMongoClient`` from ``settings``.

        No I/O here: the client connects on first use.
        """
        from pymongo import AsyncMongoClient

        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            settings.mongodb_url,
            serverSelectionTimeoutMS=settings.server_selection_timeout_ms,
            connectTimeoutMS=settings.connect_timeout_ms,
            socketTimeoutMS=settings.socket_timeout_ms,
            tz_aware=True,
            appname="tornado_mongo_session",
        )
        return cls(client[settings.database][settings.collection], client=client)

    async def close(self) -> None:
        """Close the client this store created (from_settings); a no-op for a given collection."""
        if self._client is not None:
            result = self._client.close()
            if asyncio.iscoroutine(result):
                await result

    # -- the SessionStore protocol -----------------------------------------------------------

    async def load(self, cookie_value: str, *, now: datetime) -> SessionRecord | None:
        parsed = parse_cookie(cookie_value)
        if parsed is None:
            return None
        session_id, token = parsed
        doc = await self._call(
            "find",
            lambda: self.collection.find_one({"_id": session_id, "expires_at": {"$gt": now}}),
        )
        if doc is None:
            return None
        hashes = doc.get("tokens")
        if not isinstance(hashes, list) or not token_matches(token, hashes):
            return None
        try:
            return SessionRecord(
                id=session_id,
                data=dict(doc.get("data") or {}),
                created_at=_utc(doc["created_at"]),
                accessed_at=_utc(doc["accessed_at"]),
                rotated_at=_utc(doc["rotated_at"]),
                expires_at=_utc(doc["expires_at"]),
                token=token,
                token_hashes=list(hashes),
                origin=self.origin,
            )
        except (KeyError, TypeError, AttributeError):
            log.warning("session document %s is malformed; treated as absent", session_id[-4:])
            return None

    async def save(self, request: SaveRequest) -> SaveResult:
        if request.loaded is None:
            return await self._insert(request)
        async with self._writing.hold(request.loaded.id):
            return await self._update(request, request.loaded)

    async def delete(self, record: SessionRecord) -> None:
        await self._call("delete", lambda: self.collection.delete_one({"_id": record.id}))

    # -- maintenance -------------------------------------------------------------------------

    async def ensure_indexes(self) -> None:
        """Create the TTL index on ``expires_at``, where the server allows; idempotent.

        A server that cannot make TTL indexes (FerretDB answers NotImplemented) or a user without
        the privilege gets one warning in the log; sessions keep working, since every read
        filters on ``expires_at``: call :meth:`purge_expired` now and then to reclaim space.
        """
        if self._indexes_done:
            return
        if self._indexes_lock is None:
            self._indexes_lock = asyncio.Lock()
        async with self._indexes_lock:
            if self._indexes_done:
                return
            try:
                await self.collection.create_index(
                    "expires_at", expireAfterSeconds=0, name="expires_at_ttl"
                )
            except OperationFailure as exc:
                if exc.code not in _INDEX_UNSUPPORTED:
                    raise SessionStoreError(f"creating the TTL index failed: {exc}") from exc
                log.warning(
                    "the server refused the TTL index on %s.expires_at (%s, code %s); expired "
                    "sessions are never loaded, but call purge_expired() to delete them",
                    self.collection.name,
                    exc.details.get("errmsg", exc) if exc.details else exc,
                    exc.code,
                )
            except _UNAVAILABLE as exc:
                raise SessionStoreUnavailable(f"session store unreachable: {exc}") from exc
            except PyMongoError as exc:
                raise SessionStoreError(f"creating the TTL index failed: {exc}") from exc
            self._indexes_done = True

    async def purge_expired(self, *, now: datetime | None = None) -> int:
        """Delete every session whose deadline has passed; return how many were deleted."""
        deadline = now or datetime.now(timezone.utc)
        result = await self._call(
            "purge", lambda: self.collection.delete_many({"expires_at": {"$lte": deadline}})
        )
        return int(result.deleted_count)

    # -- internals ---------------------------------------------------------------------------

    async def _insert(self, request: SaveRequest) -> SaveResult:
        token = request.new_token
        if token is None:
            raise SessionStoreError("a new session needs a token: SaveRequest.new_token is None")
        expires_at = request.expires_at
        if expires_at is None:
            raise SessionStoreError("a new session needs SaveRequest.expires_at")
        await self.ensure_indexes()
        doc = {
            "_id": request.session_id,
            "tokens": [hash_token(token)],
            "created_at": request.created_at,
            "accessed_at": request.accessed_at or request.now,
            "rotated_at": request.now,
            "expires_at": expires_at,
            "data": dict(request.data),
        }
        await self._call("insert", lambda: self.collection.insert_one(doc))
        return SaveResult(encode_cookie(request.session_id, token), True, request.session_id)

    async def _update(self, request: SaveRequest, loaded: SessionRecord) -> SaveResult:
        fields: dict[str, Any] = {f"data.{k}": v for k, v in request.changed.items()}
        if request.expires_at is not None:
            fields["expires_at"] = request.expires_at
            fields["accessed_at"] = request.accessed_at or request.now
        removed = {f"data.{k}": "" for k in request.removed}
        token = loaded.token
        if request.new_token is None:
            if not fields and not removed:
                return SaveResult(None, False, loaded.id)
            await self._update_one({"_id": loaded.id}, fields, removed)
            return SaveResult(self._cookie(loaded.id, token), False, loaded.id)

        rotation = {
            "tokens": [hash_token(request.new_token), *loaded.token_hashes][
                : max(1, request.tokens_kept)
            ],
            "rotated_at": request.now,
        }
        # Compare-and-set: only the request that loaded the current rotated_at may rotate.
        matched = await self._update_one(
            {"_id": loaded.id, "rotated_at": loaded.rotated_at}, {**fields, **rotation}, removed
        )
        if matched:
            return SaveResult(encode_cookie(loaded.id, request.new_token), True, loaded.id)
        # Another request rotated first (and pushed the expiry): our token is still kept; write
        # the data, if any, without rotating.
        if request.changed or request.removed:
            await self._update_one({"_id": loaded.id}, fields, removed)
            return SaveResult(self._cookie(loaded.id, token), False, loaded.id)
        return SaveResult(None, False, loaded.id)

    @staticmethod
    def _cookie(session_id: str, token: str | None) -> str | None:
        return encode_cookie(session_id, token) if token else None

    async def _update_one(
        self, query: dict[str, Any], fields: dict[str, Any], removed: dict[str, str]
    ) -> bool:
        update: dict[str, Any] = {}
        if fields:
            update["$set"] = fields
        if removed:
            update["$unset"] = removed
        result = await self._call("update", lambda: self.collection.update_one(query, update))
        return bool(result.matched_count)

    async def _call(self, what: str, operation: Callable[[], Awaitable[_T]]) -> _T:
        try:
            return await operation()
        except _UNAVAILABLE as exc:
            raise SessionStoreUnavailable(
                f"session store unreachable during {what}: {exc}"
            ) from exc
        except (DocumentTooLarge, InvalidDocument) as exc:
            raise SessionDataError(f"session data refused during {what}: {exc}") from exc
        except DuplicateKeyError as exc:
            raise SessionStoreError(f"session id collision during {what}") from exc
        except PyMongoError as exc:
            raise SessionStoreError(f"session store failed during {what}: {exc}") from exc
