"""The Mongo store's indexes: the TTL index on ``expires_at`` and the sparse user indexes, each
set made once per store (on first need, or by ``ensure_indexes``), a refusal logged once."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from pymongo import ASCENDING, IndexModel
from pymongo.errors import OperationFailure, PyMongoError

from tornado_mongo_session.stores._mongo_commands import MongoCommands

__all__ = ["TTL_INDEX", "USER_INDEXES", "IndexMaker", "IndexSet"]

log = logging.getLogger("tornado_mongo_session.mongo")


@dataclass(frozen=True)
class IndexSet:
    """Indexes made together, in one command: what they are called in the log, what goes
    without them."""

    name: str
    models: tuple[IndexModel, ...]
    without: str


TTL_INDEX = IndexSet(
    "TTL index on expires_at",
    (IndexModel("expires_at", expireAfterSeconds=0, name="expires_at_ttl"),),
    "expired sessions are never loaded, but call purge_expired() to delete them",
)
USER_INDEXES = IndexSet(
    "user indexes on user_id and handle",
    # Sparse: only the sessions bound to a user are in them; anonymous ones cost nothing.
    (
        IndexModel([("user_id", ASCENDING)], sparse=True, name="user_id"),
        IndexModel([("handle", ASCENDING)], sparse=True, name="handle"),
    ),
    "listing and revoking a user's sessions scans the collection",
)


class IndexMaker:
    """Makes each :class:`IndexSet` at most once on the commands' collection."""

    def __init__(self, commands: MongoCommands) -> None:
        self._commands = commands
        self._done: set[str] = set()
        self._lock: asyncio.Lock | None = None

    async def ensure(self, indexes: IndexSet) -> None:
        """Create ``indexes`` (one command) unless that was done or refused already.

        Raises :class:`SessionStoreUnavailable` when the server can't be reached, and
        :class:`SessionStoreError` for a failure that is not a refusal.
        """
        if indexes.name in self._done:
            return
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if indexes.name in self._done:
                return
            collection = self._commands.collection
            self._commands.outage.check("createIndexes")
            try:
                await collection.create_indexes(list(indexes.models))
            except OperationFailure as exc:
                # Whatever the refusal (NotImplemented on FerretDB, Unauthorized without the
                # privilege, a conflicting index someone made by hand), sessions work without
                # the index: say so once and never ask again.
                log.warning(
                    "the server refused the %s of collection %s (%s, code %s); %s",
                    indexes.name,
                    collection.name,
                    exc.details.get("errmsg", exc) if exc.details else exc,
                    exc.code,
                    indexes.without,
                )
            except PyMongoError as exc:
                raise self._commands.failure(exc, f"creating the {indexes.name}") from exc
            self._done.add(indexes.name)
