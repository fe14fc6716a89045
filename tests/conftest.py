"""Shared fixtures: a MongoDB-compatible server, per-test databases, clients for both drivers.

Server: ``$TORNADO_SESSION_TEST_MONGODB_URL`` if set (``make test`` sets it), else the
``scripts/mongo_server.py up`` logic runs in-process (reusing or starting the recorded server;
stop it with ``make mongo-down``). Fault tests that stop and restart a server use
``private_server`` (or ``mongo_server.PrivateServer`` directly), never the shared one.
"""

from __future__ import annotations

import os
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import pymongo
import pytest
from pymongo import monitoring
from pymongo.database import Database

SCRIPTS_DIR = Path(__file__).resolve().parent.parent / "scripts"
if str(SCRIPTS_DIR) not in sys.path:
    sys.path.insert(0, str(SCRIPTS_DIR))

import mongo_server  # noqa: E402  (lives in scripts/, put on sys.path just above)

DRIVERS = ("pymongo", "motor")
SERVER_SELECTION_TIMEOUT_MS = 5000


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


@pytest.fixture(scope="session")
def mongo_url() -> str:
    """URL of the shared test server."""
    url = os.environ.get(mongo_server.URL_ENV, "").strip()
    if url:
        return url
    try:
        return mongo_server.up()
    except mongo_server.ServerError as exc:
        pytest.fail(str(exc), pytrace=False)


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


@pytest.fixture(scope="session")
def sync_client(mongo_url: str) -> Iterator[pymongo.MongoClient[Mapping[str, Any]]]:
    """One synchronous client for the whole run (raw reads, dropping test databases)."""
    client: pymongo.MongoClient[Mapping[str, Any]] = pymongo.MongoClient(
        mongo_url, serverSelectionTimeoutMS=SERVER_SELECTION_TIMEOUT_MS
    )
    yield client
    client.close()


@pytest.fixture
def db_name(sync_client: pymongo.MongoClient[Mapping[str, Any]]) -> Iterator[str]:
    """A database name unique to this test, dropped afterwards."""
    name = f"tms_test_{uuid.uuid4().hex[:12]}"
    yield name
    sync_client.drop_database(name)


@pytest.fixture
def sync_db(
    sync_client: pymongo.MongoClient[Mapping[str, Any]], db_name: str
) -> Database[Mapping[str, Any]]:
    """The test's database through a synchronous client, for reading raw documents."""
    return sync_client[db_name]


@pytest.fixture(params=DRIVERS, ids=DRIVERS)
def driver(request: pytest.FixtureRequest) -> str:
    """``"pymongo"`` (PyMongo's AsyncMongoClient) or ``"motor"`` (AsyncIOMotorClient)."""
    return str(request.param)


@pytest.fixture
def command_log() -> CommandLog:
    """Commands started by ``mongo_client`` (handshake/monitoring commands left out)."""
    return CommandLog()


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


@pytest.fixture
async def mongo_client(driver: str, mongo_url: str, command_log: CommandLog) -> AsyncIterator[Any]:
    """An async client for ``driver``, reporting to ``command_log``; closed after the test."""
    client = make_async_client(driver, mongo_url, event_listeners=[command_log])
    try:
        yield client
    finally:
        await close_async_client(client)


@pytest.fixture
async def collection(mongo_client: Any, db_name: str) -> Any:
    """``mongo_client[db_name]["sessions"]``: an AsyncCollection or an AsyncIOMotorCollection."""
    return mongo_client[db_name]["sessions"]


@pytest.fixture
def private_server() -> Iterator[mongo_server.PrivateServer]:
    """A started server of this test's own (stop()/start() keep data and port); removed after."""
    server = mongo_server.PrivateServer()
    try:
        server.start()
        yield server
    finally:
        server.close()
