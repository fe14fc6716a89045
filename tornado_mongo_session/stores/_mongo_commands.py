"""The Mongo store's line to its server: the collection pinned to the primary and to the
store's write concern, every command through the outage gate with the driver's errors turned
into the library's, and what the server refuses to store (from its ``buildInfo``, once)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from bson.errors import InvalidDocument
from pymongo import ReadPreference
from pymongo.errors import (
    ConnectionFailure,
    DuplicateKeyError,
    ExecutionTimeout,
    PyMongoError,
    WriteConcernError,
    WTimeoutError,
)
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from tornado_mongo_session._bson import FERRETDB1_REFUSED
from tornado_mongo_session.errors import (
    SessionConfigError,
    SessionDataError,
    SessionError,
    SessionStoreError,
    SessionStoreUnavailable,
)
from tornado_mongo_session.stores._outage import OutageGate

__all__ = ["MongoCommands"]

_T = TypeVar("_T")
_UNAVAILABLE = (ConnectionFailure, ExecutionTimeout, WTimeoutError)
# The same as SessionSettings' write_concern and write_concern_timeout_ms defaults.
_DEFAULT_W = "majority"
_DEFAULT_WTIMEOUT_MS = 5000


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


class MongoCommands:
    """The pinned ``collection`` (default write concern: ``majority``, ``wtimeout`` 5 s) and
    the commands sent on it."""

    def __init__(self, collection: Any, write_concern: WriteConcern | None) -> None:
        if write_concern is None:
            write_concern = WriteConcern(_DEFAULT_W, wtimeout=_DEFAULT_WTIMEOUT_MS)
        self.collection = _pinned(collection, write_concern)
        self.outage = OutageGate(self._ping)
        # What the server refuses to store, from its buildInfo: asked once, before the first
        # write (None: not asked yet). () for MongoDB and FerretDB 2, which store every value.
        self._refused: tuple[type, ...] | None = None

    async def call(self, what: str, operation: Callable[[], Awaitable[_T]]) -> _T:
        """Await ``operation()`` unless the server is known down; raise the driver's failure
        as :meth:`failure` says."""
        self.outage.check(what)  # known down: fail now, not after the selection timeout
        try:
            return await operation()
        except (PyMongoError, InvalidDocument) as exc:
            raise self.failure(exc, what) from exc

    def failure(self, exc: PyMongoError | InvalidDocument, what: str) -> SessionError:
        """The library's error for the driver's ``exc`` during ``what``; a connection failure
        also opens the outage gate."""
        if isinstance(exc, WriteConcernError):
            # Sent, maybe applied, not confirmed by enough members in time (WTimeoutError is one).
            return SessionStoreUnavailable(
                f"session store did not confirm the {what} with write concern "
                f"{self.collection.write_concern.document}; the write may have been applied: {exc}"
            )
        if isinstance(exc, _UNAVAILABLE):
            if isinstance(exc, ConnectionFailure):
                self.outage.tripped(exc)
            return SessionStoreUnavailable(f"session store unreachable during {what}: {exc}")
        if isinstance(exc, InvalidDocument):  # DocumentTooLarge is one
            return SessionDataError(f"session data refused during {what}: {exc}")
        if isinstance(exc, DuplicateKeyError):
            return SessionStoreError(f"session id collision during {what}")
        return SessionStoreError(f"session store failed during {what}: {exc}")

    async def refused_types(self) -> tuple[type, ...]:
        """The value types the server refuses (NaN is checked with them), from ``buildInfo``,
        asked once per store, before its first write. FerretDB 1.x drops the connection over
        them, failing other users' requests too: those values are refused before they are sent
        (TypeError naming the key). A server that will not say is taken to store everything, as
        MongoDB does."""
        if self._refused is not None:
            return self._refused
        try:
            info = await self.call(
                "buildInfo", lambda: self.collection.database.command("buildInfo")
            )
        except SessionStoreUnavailable:
            raise
        except SessionStoreError:
            info = {}
        ferretdb = info.get("ferretdb")
        version = info.get("ferretdbVersion") or (
            ferretdb.get("version") if isinstance(ferretdb, dict) else None
        )
        old = isinstance(version, str) and version.lstrip("v").startswith("1.")
        self._refused = FERRETDB1_REFUSED if old else ()
        return self._refused

    async def _ping(self) -> None:
        await self.collection.database.command("ping")
