"""MongoSessionStore: sessions as MongoDB documents, found by id, verified by token hash.

Works with a PyMongo ``AsyncCollection`` (the default driver) and with a Motor collection alike:
it only awaits the collection methods both share (find_one, find(...).to_list, insert_one,
update_one, delete_one, delete_many, create_indexes; for maintenance also count_documents, find
and aggregate). Requests use only what MongoDB >= 5.0 and FerretDB 1.24 both do;
:meth:`MongoSessionStore.stats` needs MongoDB >= 4.4 or FerretDB 2.

Whatever the application's client says, the store reads from the primary and writes with its own
write concern (``majority`` by default): see :class:`MongoSessionStore` and docs/deployment.md.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from bson.errors import InvalidDocument
from pymongo import ASCENDING, IndexModel, ReadPreference
from pymongo.errors import (
    ConnectionFailure,
    DocumentTooLarge,
    DuplicateKeyError,
    ExecutionTimeout,
    OperationFailure,
    PyMongoError,
    WriteConcernError,
    WTimeoutError,
)
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from tornado_mongo_session.clock import utc_now
from tornado_mongo_session.errors import (
    SessionConfigError,
    SessionDataError,
    SessionStoreError,
    SessionStoreUnavailable,
)
from tornado_mongo_session.stores._document import DocumentStore, StoredSession
from tornado_mongo_session.stores._stats import SessionStats, read_stats, stats_pipeline
from tornado_mongo_session.stores.base import SessionRecord

if TYPE_CHECKING:
    from tornado_mongo_session.settings import SessionSettings

__all__ = ["MongoSessionStore"]

log = logging.getLogger("tornado_mongo_session.mongo")

_T = TypeVar("_T")
_UNAVAILABLE = (ConnectionFailure, ExecutionTimeout, WTimeoutError)
# The same as SessionSettings' write_concern and write_concern_timeout_ms defaults.
_DEFAULT_W = "majority"
_DEFAULT_WTIMEOUT_MS = 5000


@dataclass(frozen=True)
class _Indexes:
    """Indexes made together, in one command: what they are called in the log, what goes
    without them."""

    name: str
    models: tuple[IndexModel, ...]
    without: str


_TTL_INDEX = _Indexes(
    "TTL index on expires_at",
    (IndexModel("expires_at", expireAfterSeconds=0, name="expires_at_ttl"),),
    "expired sessions are never loaded, but call purge_expired() to delete them",
)
_USER_INDEXES = _Indexes(
    "user indexes on user_id and handle",
    # Sparse: only the sessions bound to a user are in them; anonymous ones cost nothing.
    (
        IndexModel([("user_id", ASCENDING)], sparse=True, name="user_id"),
        IndexModel([("handle", ASCENDING)], sparse=True, name="handle"),
    ),
    "listing and revoking a user's sessions scans the collection",
)


def _pinned(collection: Any, write_concern: WriteConcern) -> Any:
    """``collection`` as the store must use it, whatever its client's defaults.

    Reads go to the primary: a secondary may not have applied the last rotation yet, and a
    session read from it would find the client's new token unknown (a logout) or an invalidated
    session alive. The read concern is the server's default (``local`` on a primary; "available"
    on a sharded cluster could return a migrating chunk's stale copy). Raises
    :class:`SessionConfigError` for an unacknowledged write concern (``w=0``).
    """
    if not write_concern.acknowledged:
        raise SessionConfigError(
            f"MongoSessionStore needs acknowledged writes, not write_concern="
            f"{write_concern.document!r}: a rotation is a compare-and-set that reads its result"
        )
    return collection.with_options(
        read_preference=ReadPreference.PRIMARY,
        read_concern=ReadConcern(),
        write_concern=write_concern,
    )


class MongoSessionStore(DocumentStore):
    """Sessions in a MongoDB collection: ``{_id, tokens, created_at, …, data}``.

    Build it from a collection (``MongoSessionStore(client[db][coll])``, PyMongo async or Motor)
    or from settings (:meth:`from_settings`, which owns its client: call :meth:`close`).

    Round trips: a read is one ``find``; a save is one ``update`` (two when a concurrent request
    rotated first and the data must be written again without rotating); a new session is one
    ``insert``. Indexes are made once, on the first insert, or by :meth:`ensure_indexes`.

    Replica sets and sharded clusters: the store uses ``collection.with_options(...)``, so it
    reads from the primary (not causal consistency: that would need the last write's cluster
    time carried from request to request, across processes, through the cookie) and writes with
    ``write_concern``, whatever the client was created with (``readPreference=secondaryPreferred``,
    ``w=1``: the application's own queries keep those). The default,
    ``WriteConcern("majority", wtimeout=5000)``, applies to every write of the store, so no
    acknowledged logout, regenerate or rotation can be rolled back by a failover; ``wtimeout``
    bounds the wait when a majority is not reachable (ignored where the client uses
    ``timeoutMS``, which bounds it instead). A write that was sent but not confirmed within it
    raises :class:`SessionStoreUnavailable` saying that it may have been applied. ``w=0`` raises
    :class:`SessionConfigError`. ``store.collection`` is the pinned collection.
    """

    def __init__(
        self, collection: Any, *, client: Any = None, write_concern: WriteConcern | None = None
    ) -> None:
        super().__init__()
        if write_concern is None:
            write_concern = WriteConcern(_DEFAULT_W, wtimeout=_DEFAULT_WTIMEOUT_MS)
        self.collection = _pinned(collection, write_concern)
        self._client = client
        self._indexes_done: set[str] = set()
        self._indexes_lock: asyncio.Lock | None = None

    @classmethod
    def from_settings(cls, settings: SessionSettings) -> MongoSessionStore:
        """Create a store with its own PyMongo ``AsyncMongoClient`` from ``settings``.

        The write concern is ``settings.write_concern`` with ``settings.write_concern_timeout_ms``.
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
        write_concern = WriteConcern(
            settings.write_concern, wtimeout=settings.write_concern_timeout_ms
        )
        return cls(
            client[settings.database][settings.collection],
            client=client,
            write_concern=write_concern,
        )

    async def close(self) -> None:
        """Close the client this store created (from_settings); a no-op for a given collection."""
        if self._client is not None:
            result = self._client.close()
            if asyncio.iscoroutine(result):
                await result

    # -- the SessionStore protocol (load and save: DocumentStore) -----------------------------

    async def delete(self, record: SessionRecord) -> None:
        await self._call("delete", lambda: self.collection.delete_one({"_id": record.id}))

    # -- maintenance -------------------------------------------------------------------------

    async def ensure_indexes(self) -> None:
        """Create the store's indexes, where the server allows; idempotent.

        The TTL index on ``expires_at`` (made on the first insert too), and the sparse indexes
        on ``user_id`` and ``handle`` that find the sessions bound to a user (made on the first
        insert of a bound session too; anonymous sessions are not in them). Any refusal by the
        server (FerretDB 1.24 answers NotImplemented for TTL; a user without the privilege gets
        Unauthorized; an index already there with other options conflicts) is one warning in
        the log and is not retried; sessions keep working, since every read checks
        ``expires_at``: call :meth:`purge_expired` now and then to reclaim space. Raises
        :class:`SessionStoreUnavailable` when the server can't be reached.
        """
        await self._ensure(_TTL_INDEX)
        await self._ensure(_USER_INDEXES)

    async def _ensure(self, indexes: _Indexes) -> None:
        """Create ``indexes`` (one command) unless that was done or refused already."""
        if indexes.name in self._indexes_done:
            return
        if self._indexes_lock is None:
            self._indexes_lock = asyncio.Lock()
        async with self._indexes_lock:
            if indexes.name in self._indexes_done:
                return
            try:
                await self.collection.create_indexes(list(indexes.models))
            except OperationFailure as exc:
                # Whatever the refusal (NotImplemented on FerretDB, Unauthorized without the
                # privilege, a conflicting index someone made by hand), sessions work without
                # the index: say so once and never ask again.
                log.warning(
                    "the server refused the %s of collection %s (%s, code %s); %s",
                    indexes.name,
                    self.collection.name,
                    exc.details.get("errmsg", exc) if exc.details else exc,
                    exc.code,
                    indexes.without,
                )
            except _UNAVAILABLE as exc:
                raise SessionStoreUnavailable(f"session store unreachable: {exc}") from exc
            except PyMongoError as exc:
                raise SessionStoreError(f"creating the {indexes.name} failed: {exc}") from exc
            self._indexes_done.add(indexes.name)

    async def purge_expired(self, *, now: datetime | None = None) -> int:
        """Delete every session whose deadline has passed; return how many were deleted."""
        deadline = now or utc_now()
        result = await self._call(
            "purge", lambda: self.collection.delete_many({"expires_at": {"$lte": deadline}})
        )
        return int(result.deleted_count)

    async def count_expired(self, *, now: datetime | None = None) -> int:
        """How many stored sessions are dead at ``now`` (default: the current time)."""
        deadline = now or utc_now()
        return int(
            await self._call(
                "count", lambda: self.collection.count_documents({"expires_at": {"$lte": deadline}})
            )
        )

    async def purge_expired_batch(self, *, now: datetime, limit: int) -> int:
        """Delete at most ``limit`` sessions dead at ``now``; return how many were deleted.

        Two commands (a ``find`` of ids, a ``delete`` of those still dead), so a purge of
        millions can run in small steps beside the application's traffic: call it until it
        returns 0, with the same ``now``.
        """
        dead = {"expires_at": {"$lte": now}}
        found = await self._call(
            "purge", lambda: self.collection.find(dead, {"_id": 1}, limit=limit).to_list(None)
        )
        if not found:
            return 0
        ids = [doc["_id"] for doc in found]
        result = await self._call(
            "purge", lambda: self.collection.delete_many({"_id": {"$in": ids}, **dead})
        )
        return int(result.deleted_count)

    async def stats(self, *, now: datetime | None = None, limit: int | None = None) -> SessionStats:
        """Live sessions, bound users, and their age and size distribution (see
        :class:`~tornado_mongo_session.stores._stats.SessionStats`).

        Two commands: a ``count`` of the live sessions and one ``aggregate`` that reads every
        live session on the server (at most ``limit`` of them) and returns only the summary.
        """
        at = now or utc_now()
        live = {"expires_at": {"$gt": at}}
        count = await self._call("stats", lambda: self.collection.count_documents(live))
        answer = await self._call(
            "stats", lambda: _aggregate(self.collection, stats_pipeline(at, limit))
        )
        return read_stats(answer[0] if answer else {}, at=at, live=int(count))

    # -- internals ---------------------------------------------------------------------------

    async def _find(self, session_id: str) -> StoredSession | None:
        doc: dict[str, Any] | None = await self._call(
            "find", lambda: self.collection.find_one({"_id": session_id})
        )
        return None if doc is None else StoredSession.read(doc)

    async def _bound_sessions(self, user_id: str, now: datetime) -> list[StoredSession]:
        query = {"user_id": user_id, "expires_at": {"$gt": now}}

        async def find() -> list[dict[str, Any]]:
            cursor = self.collection.find(query, projection={"data": 0, "tokens": 0})
            docs: list[dict[str, Any]] = await cursor.to_list(length=None)
            return docs

        docs = await self._call("find", find)
        found = (StoredSession.read({**doc, "tokens": []}) for doc in docs)
        return [stored for stored in found if stored is not None]

    async def _delete_bound(
        self, *, user_id: str | None, handle: str | None, keep: str | None
    ) -> int:
        query: dict[str, Any] = {}
        if user_id is not None:
            query["user_id"] = user_id
        if handle is not None:
            query["handle"] = handle
        elif keep is not None:
            query["handle"] = {"$ne": keep}
        result = await self._call("revoke", lambda: self.collection.delete_many(query))
        return int(result.deleted_count)

    async def _insert_document(self, doc: dict[str, Any]) -> None:
        await self._ensure(_TTL_INDEX)
        if "user_id" in doc:
            await self._ensure(_USER_INDEXES)
        await self._call("insert", lambda: self.collection.insert_one(doc))

    async def _update_document(
        self,
        session_id: str,
        rotated_at: datetime | None,
        fields: dict[str, Any],
        removed: list[str],
    ) -> bool:
        query: dict[str, Any] = {"_id": session_id}
        if rotated_at is not None:
            query["rotated_at"] = rotated_at
        update: dict[str, Any] = {}
        if fields:
            update["$set"] = fields
        if removed:
            update["$unset"] = dict.fromkeys(removed, "")
        result = await self._call("update", lambda: self.collection.update_one(query, update))
        return bool(result.matched_count)

    async def _call(self, what: str, operation: Callable[[], Awaitable[_T]]) -> _T:
        try:
            return await operation()
        except WriteConcernError as exc:
            # Sent, maybe applied, not confirmed by enough members in time (WTimeoutError is one).
            raise SessionStoreUnavailable(
                f"session store did not confirm the {what} with write concern "
                f"{self.collection.write_concern.document}; the write may have been applied: {exc}"
            ) from exc
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


async def _aggregate(collection: Any, pipeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every document ``pipeline`` yields: PyMongo's ``aggregate`` is a coroutine that gives a
    cursor, Motor's gives the cursor at once."""
    cursor = collection.aggregate(pipeline)
    if inspect.isawaitable(cursor):
        cursor = await cursor
    found: list[dict[str, Any]] = await cursor.to_list(None)
    return found
