"""Shared fixtures: a MongoDB-compatible server, per-test databases, clients for both drivers,
a settable clock. Only fixtures live here; plain helpers are in ``helpers.py``,
``mongo_helpers.py`` and ``handlers.py``, which test modules import.

Server: ``$TORNADO_SESSION_TEST_MONGODB_URL`` if set (``make test`` sets it), else the
``scripts/mongo_server.py up`` logic runs in-process (reusing or starting the recorded server;
stop it with ``make mongo-down``). Fault tests that stop and restart a server use
``private_server`` (or ``mongo_server.PrivateServer`` directly), never the shared one.
"""

from __future__ import annotations

import logging
import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import pymongo
import pytest
from helpers import Clock, LogRecords
from mongo_helpers import (
    DRIVERS,
    SERVER_SELECTION_TIMEOUT_MS,
    CommandLog,
    close_async_client,
    make_async_client,
)
from pymongo.database import Database

SCRIPTS_DIR = Path(__file__).resolve().parent.parent / "scripts"
if str(SCRIPTS_DIR) not in sys.path:
    sys.path.insert(0, str(SCRIPTS_DIR))

import mongo_server  # noqa: E402  (lives in scripts/, put on sys.path just above)
import reliability_report  # noqa: E402  (the same)


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


@pytest.fixture
def clock() -> Clock:
    """A settable clock at the current time, for the ``session_clock`` setting."""
    return Clock()


@pytest.fixture
def library_log() -> Iterator[LogRecords]:
    """Every record (INFO and up) of the library's loggers (``tornado_mongo_session.*``)."""
    handler = LogRecords(logging.INFO)
    logger = logging.getLogger("tornado_mongo_session")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A test that records reliability results and fails (its set-up, its body, or its
    teardown) is also recorded as a failed row, with its error: docs/reliability.md must show a
    scenario that crashed before it recorded anything, not only make's exit status."""
    report = yield
    module = getattr(item, "module", None)
    if report.failed and getattr(module, "record", None) is reliability_report.record:
        message = call.excinfo.exconly() if call.excinfo is not None else report.longreprtext
        doc = getattr(getattr(item, "function", None), "__doc__", None)
        reliability_report.record(
            f"{item.nodeid} ({report.when})",
            group=reliability_report.FAILED_TESTS,
            done=(doc or item.name).strip().splitlines()[0],
            measured={"error": message.strip().splitlines()[0][:300] if message else "?"},
            verdict=reliability_report.FAIL,
        )
    return report
