"""Replica sets: the store reads from the primary and writes with its own write concern, whatever
the application's client says, and a retried compare-and-set never makes two winners or loses a
token.

What each server lets these tests see. PyMongo sends ``$readPreference`` by topology (the Server
Selection spec; PyMongo 4.x: ``_op_msg`` in pymongo/message.py sends it only for a mode other than
primary, and ``_ClientReadCheckout`` in pymongo/asynchronous/mongo_client.py replaces the mode on
a Single topology):

- standalone (the shared FerretDB, a plain ``mongod``): never, whatever the read preference, so a
  ``secondaryPreferred`` client looks the same on the wire as a pinned one. There the tests check
  the store's collection (``read_preference``, ``read_concern``, ``write_concern``) and the
  ``writeConcern`` of every write command, which the driver does send;
- a replica set or mongos: ``primary`` is sent as nothing, any other mode as ``$readPreference``,
  so "no command carries ``$readPreference``" is what pinning looks like, and a
  ``secondaryPreferred`` client would fail it;
- a direct connection to a replica-set member: always ``primaryPreferred`` (the spec's rule), so
  only "never a secondary mode" can be checked from the commands.

Fail points (``configureFailPoint``) and retryable writes exist only on a replica set started
with ``--setParameter enableTestCommands=1`` (the CI's replica-set job); elsewhere those tests
skip and say why, and the replay test proves the compare-and-set property on any server.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pydantic
import pytest
import tornado.web
from helpers import Clock, serve
from mongo_helpers import CommandLog, close_async_client, make_async_client
from pymongo import ReadPreference, WriteConcern
from pymongo.errors import OperationFailure, WTimeoutError

from tornado_mongo_session import (
    MongoSessionStore,
    NewSession,
    Rotation,
    SessionConfigError,
    SessionMixin,
    SessionRecord,
    SessionSettings,
    SessionStoreUnavailable,
    SessionUpdate,
)
from tornado_mongo_session.clock import utc_now
from tornado_mongo_session.tokens import hash_token, new_token, parse_cookie

# What an application that reads mostly from secondaries creates its client with.
APP_OPTIONS: dict[str, Any] = {
    "readPreference": "secondaryPreferred",
    "w": 1,
    "readConcernLevel": "majority",
}
STORE_WRITE_CONCERN = {"w": "majority", "wtimeout": 5000}
WRITES = ("insert", "update", "delete", "createIndexes")
SECONDARY_MODES = {"secondary", "secondaryPreferred", "nearest"}


@pytest.fixture
async def app_client(driver: str, mongo_url: str, command_log: CommandLog) -> AsyncIterator[Any]:
    """The application's own client: secondary reads, ``w=1``; commands go to ``command_log``."""
    client = make_async_client(driver, mongo_url, event_listeners=[command_log], **APP_OPTIONS)
    try:
        yield client
    finally:
        await close_async_client(client)


@pytest.fixture
def app_collection(app_client: Any, db_name: str) -> Any:
    return app_client[db_name]["sessions"]


def server_kind(sync_client: Any) -> str:
    """``"replica set"``/``"sharded"`` (pinning visible on the wire), ``"direct member"`` or
    ``"standalone"``."""
    hello = sync_client.admin.command("hello")
    topology = sync_client.topology_description.topology_type_name
    if topology in {"ReplicaSetWithPrimary", "ReplicaSetNoPrimary"}:
        return "replica set"
    if topology == "Sharded":
        return "sharded"
    return "direct member" if "setName" in hello else "standalone"


def new_session_request(data: dict[str, Any]) -> NewSession:
    now = utc_now()
    return NewSession(data=data, created_at=now, now=now, expires_at=now + timedelta(hours=1))


def rotation_of(loaded: SessionRecord, changed: dict[str, Any]) -> SessionUpdate:
    """A save that rotates ``loaded``'s token (a compare-and-set on its ``rotated_at``)."""
    now = utc_now() + timedelta(seconds=6)
    return SessionUpdate(
        loaded=loaded,
        now=now,
        expires_at=now + timedelta(hours=1),
        changed=changed,
        rotation=Rotation(keep=3, token=new_token()),
    )


async def new_session(store: MongoSessionStore, data: dict[str, Any]) -> tuple[str, SessionRecord]:
    """Insert a session; return its cookie value and the record a request would load."""
    result = await store.save(new_session_request(data))
    assert result.cookie_value is not None
    loaded = await store.load(result.cookie_value, now=utc_now())
    assert loaded is not None
    return result.cookie_value, loaded


def token_of(cookie: str) -> str:
    parsed = parse_cookie(cookie)
    assert parsed is not None, cookie
    return parsed[1]


# -- 1. the store's collection is pinned, whatever the client's defaults ------------------------


async def test_store_pins_primary_reads_and_its_write_concern(app_collection: Any) -> None:
    # The premise, so that this test can fail: the application's collection inherits its client.
    assert app_collection.read_preference == ReadPreference.SECONDARY_PREFERRED
    assert app_collection.write_concern.document == {"w": 1}
    assert app_collection.read_concern.level == "majority"

    store = MongoSessionStore(app_collection)
    assert store.collection.read_preference == ReadPreference.PRIMARY
    assert store.collection.write_concern.document == STORE_WRITE_CONCERN
    assert store.collection.read_concern.level is None  # the server's default: local on a primary
    assert store.collection.name == app_collection.name
    # The application's own collection keeps its options.
    assert app_collection.read_preference == ReadPreference.SECONDARY_PREFERRED

    custom = MongoSessionStore(app_collection, write_concern=WriteConcern(w=2, wtimeout=250))
    assert custom.collection.write_concern.document == {"w": 2, "wtimeout": 250}
    assert custom.collection.read_preference == ReadPreference.PRIMARY


class Count(SessionMixin, tornado.web.RequestHandler):
    async def get(self) -> None:
        self.session["n"] = self.session.get("n", 0) + 1
        self.write(str(self.session["n"]))


class Read(SessionMixin, tornado.web.RequestHandler):
    async def get(self) -> None:
        self.write(str(self.session.get("n")))


class Login(SessionMixin, tornado.web.RequestHandler):
    async def get(self) -> None:
        self.session.regenerate()
        self.session["user"] = "ada"
        self.write("hello")


class Logout(SessionMixin, tornado.web.RequestHandler):
    async def get(self) -> None:
        self.session.invalidate()
        self.write("bye")


async def test_every_command_carries_primary_reads_and_the_store_write_concern(
    app_collection: Any, command_log: CommandLog, sync_client: Any, sync_db: Any
) -> None:
    store = MongoSessionStore(app_collection)
    clock = Clock()
    settings = SessionSettings(cookie_secure=False)
    async with serve(
        [("/count", Count), ("/read", Read), ("/login", Login), ("/logout", Logout)],
        session_store=store,
        session_settings=settings,
        session_clock=clock,
    ) as app:
        cookie = (await app.fetch("/count")).cookie_value()  # createIndexes, insert
        assert cookie is not None
        assert (await app.fetch("/count", cookie=cookie)).text == "2"  # find, update
        clock.advance(settings.token_ttl + 0.1)
        rotated = (await app.fetch("/read", cookie=cookie)).cookie_value()  # find, update (CAS)
        assert rotated is not None
        assert rotated != cookie
        login = await app.fetch("/login", cookie=rotated)  # find, insert, delete
        after_login = login.cookie_value()
        assert after_login is not None
        assert (await app.fetch("/logout", cookie=after_login)).code == 200  # find, delete
    assert await store.purge_expired(now=utc_now() + timedelta(days=60)) == 0  # delete (many)
    assert sync_db.sessions.count_documents({}) == 0

    assert {"find", "insert", "update", "delete", "createIndexes"} <= set(command_log.names())
    for name in WRITES:
        for command in command_log.commands(name):
            assert command.get("writeConcern") == STORE_WRITE_CONCERN, (name, command)
    kind = server_kind(sync_client)
    for command in command_log.commands():
        assert "readConcern" not in command, command  # not the client's "majority"
        mode = command.get("$readPreference", {}).get("mode")
        assert mode not in SECONDARY_MODES, command
        if kind in {"replica set", "sharded"}:
            # Primary is sent as no $readPreference; the client's secondaryPreferred would be.
            assert mode is None, command


async def test_from_settings_pins_the_configured_write_concern(
    mongo_url: str, db_name: str, sync_db: Any
) -> None:
    # Options in the URL, as an operator might copy them from the application's settings.
    separator = "&" if "?" in mongo_url else ("?" if mongo_url.endswith("/") else "/?")
    url = f"{mongo_url}{separator}readPreference=secondaryPreferred&w=1"
    settings = SessionSettings(
        mongodb_url=url, database=db_name, write_concern=1, write_concern_timeout_ms=1234
    )
    store = MongoSessionStore.from_settings(settings)
    try:
        assert store.collection.read_preference == ReadPreference.PRIMARY
        assert store.collection.write_concern.document == {"w": 1, "wtimeout": 1234}
        await new_session(store, {"a": 1})
        assert sync_db.sessions.count_documents({}) == 1
    finally:
        await store.close()

    default = MongoSessionStore.from_settings(SessionSettings(mongodb_url=url))
    try:
        # The settings' default and the constructor's default are the same write concern.
        assert default.collection.write_concern.document == STORE_WRITE_CONCERN
    finally:
        await default.close()


# -- 2. configuration errors ---------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, "0", -1, "majorty", "", 1.5, "all"])
def test_invalid_write_concern_setting_names_the_setting(value: Any) -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        SessionSettings(write_concern=value)
    assert "write_concern" in str(info.value)


@pytest.mark.parametrize("value", [0, -5])
def test_write_concern_timeout_must_be_positive(value: int) -> None:
    # 0 would be "wait forever" to the server: a lagging secondary could hang a request.
    with pytest.raises(pydantic.ValidationError) as info:
        SessionSettings(write_concern_timeout_ms=value)
    assert "write_concern_timeout_ms" in str(info.value)


def test_write_concern_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert SessionSettings().write_concern == "majority"
    assert SessionSettings().write_concern_timeout_ms == 5000
    monkeypatch.setenv("TORNADO_SESSION_WRITE_CONCERN", "2")
    monkeypatch.setenv("TORNADO_SESSION_WRITE_CONCERN_TIMEOUT_MS", "750")
    settings = SessionSettings()
    assert (settings.write_concern, settings.write_concern_timeout_ms) == (2, 750)
    monkeypatch.setenv("TORNADO_SESSION_WRITE_CONCERN", "majority")
    assert SessionSettings().write_concern == "majority"
    monkeypatch.setenv("TORNADO_SESSION_WRITE_CONCERN", "0")
    with pytest.raises(pydantic.ValidationError, match="write_concern"):
        SessionSettings()


def test_unacknowledged_write_concern_is_refused(app_collection: Any) -> None:
    with pytest.raises(SessionConfigError, match="acknowledged"):
        MongoSessionStore(app_collection, write_concern=WriteConcern(w=0))


def test_options_are_keyword_only() -> None:
    parameters = list(inspect.signature(MongoSessionStore).parameters.values())
    assert [p.name for p in parameters[:1]] == ["collection"]
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in parameters[1:])
    assert {"client", "write_concern"} <= {p.name for p in parameters[1:]}


# -- 3. a retried compare-and-set: one winner, no lost token (any server) ------------------------


async def test_replayed_rotation_matches_nothing_and_every_token_stays_valid(
    app_collection: Any, command_log: CommandLog, sync_db: Any
) -> None:
    store = MongoSessionStore(app_collection)
    cookie, loaded = await new_session(store, {"n": 1})
    rival = await store.load(cookie, now=utc_now())  # another request, loaded at the same state
    assert rival is not None
    command_log.clear()

    request = rotation_of(loaded, {"n": 2})
    first = await store.save(request)
    assert first.rotated
    assert first.cookie_value is not None
    [sent] = command_log.commands("update")

    # A lost reply makes the driver (retryable writes) or the application send the same update
    # again. Replayed here without the retryable-write identity (lsid, txnNumber), i.e. as a
    # server without retryable writes would see it: a second application of the command.
    replay = {key: sent[key] for key in ("update", "updates", "ordered", "writeConcern")}
    reply = sync_db.command(replay)
    assert (reply["n"], reply["nModified"]) == (0, 0)

    # The application retrying the whole save gets "someone else rotated": it keeps its token.
    again = await store.save(request)
    assert (again.rotated, again.cookie_value) == (False, None)
    # A rival that loaded the same state loses the compare-and-set.
    lost = await store.save(rotation_of(rival, {"m": 1}))
    assert (lost.rotated, lost.cookie_value) == (False, None)

    doc = sync_db.sessions.find_one({"_id": loaded.id})
    new = token_of(first.cookie_value)
    old = token_of(cookie)
    assert doc["tokens"] == [hash_token(new), hash_token(old)]  # exactly one new token stored
    assert doc["data"] == {"n": 2, "m": 1}
    # Whichever reply the client got, the token it holds opens the session.
    for held in (cookie, first.cookie_value):
        record = await store.load(held, now=utc_now())
        assert record is not None
        assert record.id == loaded.id


# -- 4. the same on a replica set, with the server failing the update (fail points) --------------


@contextmanager
def fail_point(sync_client: Any, data: dict[str, Any]) -> Iterator[None]:
    """``failCommand`` once with ``data``; always switched off afterwards."""
    sync_client.admin.command("configureFailPoint", "failCommand", mode={"times": 1}, data=data)
    try:
        yield
    finally:
        sync_client.admin.command("configureFailPoint", "failCommand", mode="off")


@pytest.fixture
def replica_set(sync_client: Any) -> None:
    """Skip unless the server is a replica set with fail points (retryable writes, failCommand)."""
    if server_kind(sync_client) not in {"replica set", "direct member"}:
        pytest.skip(
            "needs a replica set (retryable writes): TORNADO_SESSION_TEST_MONGODB_URL names a "
            "standalone server; the CI's replica-set job runs this"
        )
    try:
        sync_client.admin.command("configureFailPoint", "failCommand", mode="off")
    except OperationFailure as exc:
        pytest.skip(
            f"the server has no configureFailPoint ({exc.code}): start mongod with "
            "--setParameter enableTestCommands=1"
        )


@pytest.fixture
def app_name() -> str:
    return f"tms-failpoint-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def failing_collection(
    replica_set: None,
    driver: str,
    mongo_url: str,
    db_name: str,
    app_name: str,
    command_log: CommandLog,
) -> AsyncIterator[Any]:
    """The application's collection on a client whose appname the fail points target."""
    client = make_async_client(
        driver, mongo_url, appname=app_name, event_listeners=[command_log], **APP_OPTIONS
    )
    try:
        yield client[db_name]["sessions"]
    finally:
        await close_async_client(client)


RETRIED_FAILURES = {
    # The update is applied, then its reply carries a retryable error: the driver retries with
    # the same transaction number, and the server answers from its record of the first one.
    "applied, reply failed": {
        "writeConcernError": {"code": 91, "errmsg": "Replication is being shut down"},
        "errorLabels": ["RetryableWriteError"],
    },
    # The connection drops before the update runs: the driver's retry is the first application.
    "connection closed": {"closeConnection": True},
}


@pytest.mark.parametrize("failure", list(RETRIED_FAILURES))
async def test_driver_retry_of_a_rotation_has_one_winner(
    failure: str,
    failing_collection: Any,
    app_name: str,
    command_log: CommandLog,
    sync_client: Any,
    sync_db: Any,
) -> None:
    store = MongoSessionStore(failing_collection)
    cookie, loaded = await new_session(store, {"n": 1})
    rival = await store.load(cookie, now=utc_now())
    assert rival is not None
    command_log.clear()

    data = {"failCommands": ["update"], "appName": app_name, **RETRIED_FAILURES[failure]}
    with fail_point(sync_client, data):
        first = await store.save(rotation_of(loaded, {"n": 2}))
    sent = command_log.commands("update")
    assert len(sent) == 2, sent  # the failed attempt and the driver's retry
    assert sent[0]["txnNumber"] == sent[1]["txnNumber"]
    assert sent[0]["lsid"] == sent[1]["lsid"]
    assert first.rotated
    assert first.cookie_value is not None

    lost = await store.save(rotation_of(rival, {"m": 1}))
    assert (lost.rotated, lost.cookie_value) == (False, None)

    doc = sync_db.sessions.find_one({"_id": loaded.id})
    assert doc["tokens"] == [hash_token(token_of(first.cookie_value)), hash_token(token_of(cookie))]
    assert doc["data"] == {"n": 2, "m": 1}
    for held in (cookie, first.cookie_value):
        assert await store.load(held, now=utc_now()) is not None


async def test_write_concern_timeout_says_the_write_may_have_been_applied(
    failing_collection: Any, app_name: str, sync_client: Any, sync_db: Any
) -> None:
    store = MongoSessionStore(failing_collection)
    _cookie, loaded = await new_session(store, {"n": 1})
    now = utc_now()
    save = SessionUpdate(
        loaded=loaded, now=now, expires_at=now + timedelta(hours=1), changed={"n": 2}
    )
    timed_out = {
        "failCommands": ["update"],
        "appName": app_name,
        "writeConcernError": {
            "code": 64,
            "codeName": "WriteConcernFailed",
            "errmsg": "waiting for replication timed out",
            "errInfo": {"wtimeout": True},
        },
    }
    with fail_point(sync_client, timed_out), pytest.raises(SessionStoreUnavailable) as info:
        await store.save(save)
    assert "may have been applied" in str(info.value)
    assert "majority" in str(info.value)
    assert isinstance(info.value.__cause__, WTimeoutError)
    # It was: the primary applied it; only the confirmation from a majority was missing.
    assert sync_db.sessions.find_one({"_id": loaded.id})["data"] == {"n": 2}
