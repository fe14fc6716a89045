"""MongoSessionStore: sessions as MongoDB documents, found by id, verified by token hash.

Works with a PyMongo ``AsyncCollection`` (the default driver) and with a Motor collection alike:
it only awaits the collection methods both share (find_one, find(...).to_list, insert_one,
update_one, delete_one, delete_many, create_indexes; for maintenance also count_documents, find
and aggregate). Requests use only what MongoDB >= 5.0 and FerretDB 1.24 both do;
:meth:`MongoSessionStore.stats` needs MongoDB >= 4.4 or FerretDB 2.

Whatever the application's client says, the store reads from the primary and writes with its own
write concern (``majority`` by default): see :class:`MongoSessionStore` and docs/deployment.md.

This module is the store and its request path; the commands' line to the server is
``_mongo_commands``, the indexes ``_mongo_indexes``, maintenance ``_mongo_maintenance``, the
queries on a user's sessions ``_mongo_users``.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pymongo.write_concern import WriteConcern

from tornado_mongo_session._bson import check_refused
from tornado_mongo_session.clock import utc_now
from tornado_mongo_session.stores import _mongo_maintenance, _mongo_users
from tornado_mongo_session.stores._document import DocumentStore
from tornado_mongo_session.stores._document_layout import Document, DocumentWrite, StoredSession
from tornado_mongo_session.stores._mongo_commands import MongoCommands
from tornado_mongo_session.stores._mongo_indexes import TTL_INDEX, USER_INDEXES, IndexMaker
from tornado_mongo_session.stores._stats import SessionStats
from tornado_mongo_session.stores.base import SessionRecord

if TYPE_CHECKING:
    from tornado_mongo_session.settings import SessionSettings

__all__ = ["MongoSessionStore"]


class MongoSessionStore(DocumentStore):
    """Sessions in a MongoDB collection: ``{_id, tokens, created_at, …, data}``.

    Build it from a collection (``MongoSessionStore(client[db][coll])``, PyMongo async or Motor)
    or from settings (:meth:`from_settings`, which owns its client: call :meth:`close`).

    Round trips: a read is one ``find``; a save is one ``update`` (two when a concurrent request
    rotated first and the data must be written again without rotating); a new session is one
    ``insert``. Indexes are made once, on the first insert, or by :meth:`ensure_indexes`; the
    server's ``buildInfo`` is read once, before the first write (to know which values it
    refuses: see below).

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

    Outages: the first call that cannot reach the server (a connection failure, after the
    driver's server-selection timeout) logs its traceback once and marks the server down; from
    then on every call raises :class:`SessionStoreUnavailable` at once (a 503 within
    milliseconds, one log line per request) while the store pings the server in the background,
    and the first ping answered (within about a second of the server's return) ends the outage.

    Values: on FerretDB 1.x, which drops the connection over NaN, MinKey, MaxKey, Code and
    Decimal128 (failing other users' requests with it), those values and infinite floats are
    refused before sending, a ``TypeError`` naming the session key. MongoDB and FerretDB 2 store
    them; nothing is checked there.
    """

    def __init__(
        self, collection: Any, *, client: Any = None, write_concern: WriteConcern | None = None
    ) -> None:
        super().__init__()
        self._commands = MongoCommands(collection, write_concern)
        self.collection = self._commands.collection
        self._client = client
        self._indexes = IndexMaker(self._commands)

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
        """Close the client this store created (from_settings; a given collection's client is
        the caller's), and stop probing an unreachable server."""
        self._commands.outage.close()
        if self._client is not None:
            result = self._client.close()
            if asyncio.iscoroutine(result):
                await result

    # -- the SessionStore protocol (load and save: DocumentStore) -----------------------------

    async def delete(self, record: SessionRecord) -> None:
        await self._commands.call("delete", lambda: self.collection.delete_one({"_id": record.id}))

    # -- maintenance (_mongo_indexes, _mongo_maintenance) ------------------------------------

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
        await self._indexes.ensure(TTL_INDEX)
        await self._indexes.ensure(USER_INDEXES)

    async def purge_expired(self, *, now: datetime | None = None) -> int:
        """Delete every session whose deadline has passed; return how many were deleted."""
        return await _mongo_maintenance.purge_expired(self._commands, now or utc_now())

    async def count_expired(self, *, now: datetime | None = None) -> int:
        """How many stored sessions are dead at ``now`` (default: the current time)."""
        return await _mongo_maintenance.count_expired(self._commands, now or utc_now())

    async def purge_expired_batch(self, *, now: datetime, limit: int) -> int:
        """Delete at most ``limit`` sessions dead at ``now``; return how many were deleted.

        Two commands (a ``find`` of ids, a ``delete`` of those still dead), so a purge of
        millions can run in small steps beside the application's traffic: call it until it
        returns 0, with the same ``now``.
        """
        return await _mongo_maintenance.purge_expired_batch(self._commands, now, limit)

    async def stats(self, *, now: datetime | None = None, limit: int | None = None) -> SessionStats:
        """Live sessions, bound users, and their age and size distribution (see
        :class:`~tornado_mongo_session.stores._stats.SessionStats`).

        Two commands: a ``count`` of the live sessions and one ``aggregate`` that reads every
        live session on the server (at most ``limit`` of them) and returns only the summary.
        """
        return await _mongo_maintenance.stats(self._commands, now or utc_now(), limit)

    # -- DocumentStore's primitives ----------------------------------------------------------

    async def _find(self, session_id: str) -> StoredSession | None:
        doc: dict[str, Any] | None = await self._commands.call(
            "find", lambda: self.collection.find_one({"_id": session_id})
        )
        return None if doc is None else StoredSession.read(doc)

    async def _bound_sessions(self, user_id: str, now: datetime) -> list[StoredSession]:
        return await _mongo_users.bound_sessions(self._commands, user_id, now)

    async def _delete_bound(
        self, *, user_id: str | None, handle: str | None, keep: str | None
    ) -> int:
        return await _mongo_users.delete_bound(
            self._commands, user_id=user_id, handle=handle, keep=keep
        )

    async def _insert_document(self, doc: Document) -> None:
        refused = await self._commands.refused_types()
        if refused:
            check_refused(doc["data"], refused)
        await self._indexes.ensure(TTL_INDEX)
        if "user_id" in doc:
            await self._indexes.ensure(USER_INDEXES)
        await self._commands.call("insert", lambda: self.collection.insert_one(doc))

    async def _update_document(
        self, session_id: str, rotated_at: datetime | None, write: DocumentWrite
    ) -> bool:
        refused = await self._commands.refused_types()
        if refused:
            check_refused(write.set_data, refused)
        query: Document = {"_id": session_id}
        if rotated_at is not None:
            query["rotated_at"] = rotated_at
        update = write.update()
        result = await self._commands.call(
            "update", lambda: self.collection.update_one(query, update)
        )
        return bool(result.matched_count)
