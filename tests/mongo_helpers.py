"""Plain helpers for talking to the test server: driver clients, a command log, raw documents.

The fixtures that use them live in ``conftest.py``; test modules import these directly.
"""

from __future__ import annotations

import threading
from datetime import timezone
from typing import Any

import pymongo
import pytest
from bson.codec_options import CodecOptions
from helpers import session_id_of
from pymongo import monitoring

DRIVERS = ("pymongo", "motor")
SERVER_SELECTION_TIMEOUT_MS = 5000
TZ_AWARE: CodecOptions[dict[str, Any]] = CodecOptions(
    document_class=dict, tz_aware=True, tzinfo=timezone.utc
)


class CommandLog(monitoring.CommandListener):
    """Records the commands a client starts, leaving out handshake and housekeeping ones."""

    IGNORED = frozenset(
        {
            "hello",
            "isMaster",
            "ismaster",
            "ping",
            "buildInfo",
            "buildinfo",
            "getLastError",
            "getlasterror",
            "endSessions",
            "saslStart",
            "saslContinue",
            "killCursors",
        }
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[tuple[str, dict[str, Any]]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name in self.IGNORED:
            return
        with self._lock:
            self._events.append((event.command_name, dict(event.command)))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def names(self) -> list[str]:
        """Names of the recorded commands, in order (e.g. ``["find", "update"]``)."""
        with self._lock:
            return [name for name, _ in self._events]

    def commands(self, name: str | None = None) -> list[dict[str, Any]]:
        """The recorded command documents, all or only those named ``name``."""
        with self._lock:
            return [doc for n, doc in self._events if name is None or n == name]

    def count(self, name: str | None = None) -> int:
        """How many commands were recorded (only those named ``name`` if given)."""
        return len(self.commands(name))

    def clear(self) -> None:
        with self._lock:
            self._events.clear()

    def __repr__(self) -> str:
        return f"CommandLog({self.names()!r})"


def make_async_client(driver: str, url: str, **kwargs: Any) -> Any:
    """An async client of the given driver; close with :func:`close_async_client`."""
    kwargs.setdefault("serverSelectionTimeoutMS", SERVER_SELECTION_TIMEOUT_MS)
    if driver == "pymongo":
        return pymongo.AsyncMongoClient(url, **kwargs)
    if driver == "motor":
        motor_asyncio = pytest.importorskip("motor.motor_asyncio")
        return motor_asyncio.AsyncIOMotorClient(url, **kwargs)
    raise ValueError(f"unknown driver {driver!r}")


async def close_async_client(client: Any) -> None:
    if isinstance(client, pymongo.AsyncMongoClient):
        await client.close()
    else:
        client.close()


def raw_doc(sync_db: Any, session_id: str, *, tz_aware: bool = False) -> dict[str, Any] | None:
    """The stored document of ``session_id`` in ``sessions``, read without the library.

    ``tz_aware=True`` reads datetimes as aware UTC values (to compare with a test clock).
    """
    sessions = sync_db.sessions
    if tz_aware:
        sessions = sync_db.get_collection("sessions", codec_options=TZ_AWARE)
    found: dict[str, Any] | None = sessions.find_one({"_id": session_id})
    return found


def doc_of(sync_db: Any, cookie: str | None) -> dict[str, Any] | None:
    """The stored document a server-store cookie value names (see :func:`raw_doc`)."""
    return raw_doc(sync_db, session_id_of(cookie))


def lacks_atomic_updates(client: pymongo.MongoClient[Any]) -> str | None:
    """Why the server cannot apply concurrent updates of one document atomically, or None.

    FerretDB 1.x (``buildInfo.ferretdbVersion``, or ``ferretdb.version`` starting with v1)
    applies an update as read, modify, write back: across processes, the library's deltas and
    its rotation compare-and-set are not exact there.
    """
    info = client.admin.command("buildInfo")
    ferretdb = info.get("ferretdb")
    version = info.get("ferretdbVersion") or (
        ferretdb.get("version") if isinstance(ferretdb, dict) else None
    )
    if isinstance(version, str) and version.lstrip("v").startswith("1."):
        return f"FerretDB {version} has no atomic single-document updates"
    return None
