"""Item 5: the documented limits, tried for real.

- ``max_session_bytes``: exactly at the limit is stored, one byte over is a 500 with nothing
  written, for a new session (insert) and a stored one (update).
- MongoDB's 16 MiB document limit: with ``max_session_bytes`` at its cap (15 MiB) the largest
  session still fits; a store asked directly for more refuses it (``SessionDataError``) and
  writes nothing.
- The driver timeouts of ``SessionSettings`` reach the client ``from_settings`` builds, and bound
  how long a request waits on a stopped server and on a frozen one (SIGSTOP) before its 503.
- A server that refuses the TTL index: one log line for the store, sessions keep working.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import time
from datetime import timedelta
from typing import Any
from urllib.parse import quote

import bson
import pydantic
import pytest
import tornado.web
from bson import json_util
from handlers import ReadJSON, Untouched
from helpers import LogRecords, Server, serve, session_id_of, session_settings
from mongo_helpers import raw_doc
from reliability_report import FAIL, PASS, record
from stress_support import LoadClient, server_description

from tornado_mongo_session import (
    MongoSessionStore,
    NewSession,
    SessionDataError,
    SessionError,
    SessionMixin,
    SessionSettings,
    SessionUpdate,
)
from tornado_mongo_session.clock import utc_now
from tornado_mongo_session.tokens import new_session_id

pytestmark = [pytest.mark.stress, pytest.mark.timeout(300)]

MIB = 1024 * 1024
SMALL_LIMIT = 4096
CAP = 15 * MIB
MONGODB_DOCUMENT_LIMIT = 16 * MIB


class Fill(SessionMixin, tornado.web.RequestHandler):
    """``POST /fill?k=&n=``: set key ``k`` to a string of ``n`` characters."""

    async def post(self) -> None:
        self.session[self.get_argument("k")] = "x" * int(self.get_argument("n"))
        self.write({"id": self.session.id})


class Length(SessionMixin, tornado.web.RequestHandler):
    """``GET /len?k=``: the length of the value under ``k`` (-1 if absent)."""

    async def get(self) -> None:
        value = self.session.get(self.get_argument("k"))
        self.write({"len": -1 if value is None else len(value), "id": self.session.id})


ROUTES = [("/fill", Fill), ("/len", Length), ("/plain", Untouched)]


def encoded_size(data: dict[str, Any]) -> int:
    """The size ``max_session_bytes`` is compared with: the BSON size of the data document."""
    return len(bson.encode(data))


def string_for(key: str, total: int, others: dict[str, Any] | None = None) -> int:
    """The length of a string under ``key`` that makes the data exactly ``total`` bytes."""
    base = encoded_size({**(others or {}), key: ""})
    return total - base


# -- max_session_bytes ------------------------------------------------------------------------


async def boundary_scenario(app: Server, sync_db: Any, limit: int) -> dict[str, Any]:
    """New and stored sessions at the limit and one byte over; what the app and DB did."""
    seen: dict[str, Any] = {}
    # A new session: exactly at the limit is inserted, one byte over is refused.
    n = string_for("big", limit)
    at = await app.fetch(f"/fill?k=big&n={n}", method="POST")
    seen["new at limit"] = at.code
    assert at.code == 200
    cookie = at.cookie_value()
    assert cookie is not None
    session_id = session_id_of(cookie)
    seen["stored size"] = encoded_size(raw_doc(sync_db, session_id)["data"])  # type: ignore[index]
    before = sync_db.sessions.count_documents({})
    over = await app.fetch(f"/fill?k=big&n={n + 1}", method="POST")
    seen["new one byte over"] = over.code
    seen["new over: cookie set"] = bool(over.set_cookies)
    seen["new over: documents added"] = sync_db.sessions.count_documents({}) - before
    # A stored session: shrink to leave room for a second key, then fill to the limit, then over.
    small = await app.fetch("/fill?k=big&n=100", method="POST", cookie=cookie)
    assert small.code == 200
    others = {"big": "x" * 100}
    m = string_for("more", limit, others)
    at_update = await app.fetch(f"/fill?k=more&n={m}", method="POST", cookie=cookie)
    seen["update at limit"] = at_update.code
    doc_before = raw_doc(sync_db, session_id)
    over_update = await app.fetch(f"/fill?k=more&n={m + 1}", method="POST", cookie=cookie)
    seen["update one byte over"] = over_update.code
    seen["update over: document unchanged"] = raw_doc(sync_db, session_id) == doc_before
    seen["body"] = over_update.text.strip()
    return seen


@pytest.mark.parametrize("limit", [SMALL_LIMIT, 256 * 1024])
async def test_max_session_bytes_boundary(
    collection: Any, sync_db: Any, driver: str, limit: int, caplog: pytest.LogCaptureFixture
) -> None:
    store = MongoSessionStore(collection)
    async with serve(
        ROUTES, session_store=store, session_settings=session_settings(max_session_bytes=limit)
    ) as app:
        with caplog.at_level(logging.ERROR, logger="tornado_mongo_session"):
            seen = await boundary_scenario(app, sync_db, limit)
    named = [r for r in caplog.records if f"max_session_bytes={limit}" in r.getMessage()]
    ok = (
        seen["new at limit"] == 200
        and seen["stored size"] == limit
        and seen["new one byte over"] == 500
        and not seen["new over: cookie set"]
        and seen["new over: documents added"] == 0
        and seen["update at limit"] == 200
        and seen["update one byte over"] == 500
        and seen["update over: document unchanged"]
        and len(named) == 2
    )
    record(
        f"max_session_bytes={limit} boundary ({driver})",
        group="5",
        done=(
            "through HTTP: a new session and a stored one filled to exactly the limit, then to "
            "one byte over"
        ),
        measured={
            **{k: v for k, v in seen.items() if k != "body"},
            "log lines naming the limit": len(named),
            "client saw": seen["body"],
        },
        verdict=PASS if ok else FAIL,
    )
    assert seen["new at limit"] == 200
    assert seen["stored size"] == limit
    assert seen["new one byte over"] == 500
    assert not seen["new over: cookie set"]
    assert seen["new over: documents added"] == 0
    assert seen["update at limit"] == 200
    assert seen["update one byte over"] == 500
    assert seen["update over: document unchanged"]
    assert len(named) == 2
    assert "Traceback" not in seen["body"]


def test_max_session_bytes_is_capped_below_the_document_limit() -> None:
    SessionSettings(max_session_bytes=CAP)
    with pytest.raises(pydantic.ValidationError, match="max_session_bytes"):
        SessionSettings(max_session_bytes=CAP + 1)


async def test_largest_session_fits_in_a_mongodb_document(
    collection: Any, sync_db: Any, mongo_url: str
) -> None:
    store = MongoSessionStore(collection)
    started = time.monotonic()
    async with serve(
        ROUTES, session_store=store, session_settings=session_settings(max_session_bytes=CAP)
    ) as app:
        n = string_for("big", CAP)
        at = await app.fetch(f"/fill?k=big&n={n}", method="POST")
        assert at.code == 200, at.text
        cookie = at.cookie_value()
        assert cookie is not None
        session_id = session_id_of(cookie)
        back = await app.fetch("/len?k=big", cookie=cookie)
        doc = raw_doc(sync_db, session_id)
        assert doc is not None
        doc_size = len(bson.encode(doc))
        count = sync_db.sessions.count_documents({})
        over = await app.fetch(f"/fill?k=big&n={n + 1}", method="POST")
        added = sync_db.sessions.count_documents({}) - count
    elapsed = time.monotonic() - started
    length = int(json.loads(back.body)["len"]) if back.code == 200 else -1
    ok = length == n and doc_size < MONGODB_DOCUMENT_LIMIT and over.code == 500 and added == 0
    record(
        "largest session (max_session_bytes at its 15 MiB cap)",
        group="5",
        done=(
            "a new session with data of exactly 15 MiB through HTTP, read back; then one byte more"
        ),
        measured={
            "server": server_description(mongo_url),
            "stored document bytes": doc_size,
            "headroom under 16 MiB": MONGODB_DOCUMENT_LIMIT - doc_size,
            "read back equal length": length == n,
            "one byte over": over.code,
            "documents added by it": added,
            "wall time s": elapsed,
        },
        verdict=PASS if ok else FAIL,
    )
    assert length == n
    assert doc_size < MONGODB_DOCUMENT_LIMIT
    assert over.code == 500
    assert added == 0


async def test_store_refuses_a_document_over_16_mib(
    collection: Any, sync_db: Any, driver: str, mongo_url: str
) -> None:
    """Past the mixin's cap, straight to the store: refused, nothing written, insert or update.

    17 MiB is over what any server takes (the driver refuses it before sending: 16 MiB plus
    the 16 KiB it allows for command overhead). Just over 16 MiB is measured, not asserted:
    MongoDB refuses such a document, FerretDB 1.24 stores it.
    """
    store = MongoSessionStore(collection)
    now = utc_now()
    huge = {"big": "x" * (17 * MIB)}

    def request(
        session_id: str, data: dict[str, Any], loaded: Any = None
    ) -> NewSession | SessionUpdate:
        if loaded is not None:
            return SessionUpdate(
                loaded=loaded, changed=data, now=now, expires_at=now + timedelta(hours=1)
            )
        return NewSession(
            data=data,
            created_at=now,
            now=now,
            expires_at=now + timedelta(hours=1),
            session_id=session_id,
        )

    refused: dict[str, str] = {}
    new_id = new_session_id()
    with pytest.raises(SessionDataError) as insert_error:
        await store.save(request(new_id, huge))
    refused["insert"] = type(insert_error.value.__cause__).__name__
    inserted = raw_doc(sync_db, new_id) is not None

    stored_id = new_session_id()
    result = await store.save(request(stored_id, {"a": 1}))
    assert result.cookie_value is not None
    loaded = await store.load(result.cookie_value, now=now)
    assert loaded is not None
    before = raw_doc(sync_db, stored_id)
    with pytest.raises(SessionDataError) as update_error:
        await store.save(request(stored_id, {"a": 1, **huge}, loaded=loaded))
    refused["update"] = type(update_error.value.__cause__).__name__
    unchanged = raw_doc(sync_db, stored_id) == before

    just_over_id = new_session_id()
    try:
        await store.save(request(just_over_id, {"big": "x" * (16 * MIB + 1024)}))
        just_over = "stored by the server"
    except SessionError as exc:
        just_over = f"refused: {type(exc).__name__} from {type(exc.__cause__).__name__}"
    stored_over = raw_doc(sync_db, just_over_id)
    record(
        f"a document over 16 MiB, straight to the store ({driver})",
        group="5",
        done=(
            "MongoSessionStore.save, bypassing the mixin's cap: 17 MiB of data as a new "
            "session, then as an update of a stored one; then 16 MiB + 1 KiB as a new session"
        ),
        measured={
            "server": server_description(mongo_url),
            "17 MiB insert": f"SessionDataError from {refused['insert']}",
            "17 MiB update": f"SessionDataError from {refused['update']}",
            "nothing written": not inserted and unchanged,
            "16 MiB + 1 KiB insert": just_over
            + (f" ({len(bson.encode(stored_over))} bytes)" if stored_over else ""),
        },
        verdict=PASS if unchanged and not inserted else FAIL,
    )
    assert not inserted
    assert unchanged


# -- driver timeouts --------------------------------------------------------------------------


async def timed(app: Server, path: str, cookie: str | None = None) -> tuple[int, float]:
    started = time.monotonic()
    method = "POST" if path.startswith("/fill") else "GET"
    response = await app.fetch(path, cookie=cookie, method=method)
    return response.code, time.monotonic() - started


async def test_driver_timeouts_bound_the_wait_for_a_503(private_server: Any) -> None:
    configured = SessionSettings(
        mongodb_url=private_server.url,
        database="limits",
        server_selection_timeout_ms=300,
        connect_timeout_ms=400,
        socket_timeout_ms=500,
        write_concern_timeout_ms=250,  # below the socket timeout (issue 11)
        cookie_secure=False,
    )
    server = server_description(private_server.url)
    store = MongoSessionStore.from_settings(configured)
    client = store._client  # the client from_settings built: its options are the settings'
    options = client.options
    assert options.server_selection_timeout == 0.3
    assert options.pool_options.connect_timeout == 0.4
    assert options.pool_options.socket_timeout == 0.5
    measured: dict[str, Any] = {"server": server}
    codes: list[int] = []
    try:
        async with serve(ROUTES, session_store=store, session_settings=configured) as app:
            first = await app.fetch("/fill?k=a&n=1", method="POST")
            assert first.code == 200
            cookie = first.cookie_value()
            assert cookie is not None

            # Frozen: the process is alive, its sockets accept, nothing answers.
            pid = private_server.pid
            assert pid is not None
            os.kill(pid, signal.SIGSTOP)
            frozen: list[float] = []
            try:
                for path in ["/len?k=a", "/len?k=a", "/fill?k=b&n=1"]:
                    code, took = await timed(app, path, cookie=cookie)
                    codes.append(code)
                    frozen.append(took)
                code, took = await timed(app, "/plain", cookie=cookie)
                measured["frozen: a handler without the session"] = code
            finally:
                os.kill(pid, signal.SIGCONT)
            measured["frozen: codes"] = codes[:]
            measured["frozen: waits s (read, read, write)"] = [round(t, 2) for t in frozen]
            recovered = await wait_for_200(app, cookie)
            measured["after SIGCONT: first 200 after s"] = recovered

            # Stopped: nothing listens on the port.
            private_server.stop(kill=True)
            stopped: list[float] = []
            for path in ["/len?k=a", "/len?k=a", "/fill?k=c&n=1"]:
                code, took = await timed(app, path, cookie=cookie)
                codes.append(code)
                stopped.append(took)
            new_code, _ = await timed(app, "/len?k=a")
            measured["stopped: codes"] = codes[3:]
            measured["stopped: waits s (read, read, write)"] = [round(t, 2) for t in stopped]
            measured["stopped: new visitor reading"] = new_code
            await asyncio.to_thread(private_server.start)
            measured["after restart: first 200 after s"] = await wait_for_200(app, cookie)
    finally:
        await store.close()
    ok = (
        set(codes) == {503}
        and measured["frozen: a handler without the session"] == 200
        and isinstance(measured["after SIGCONT: first 200 after s"], float)
        and isinstance(measured["after restart: first 200 after s"], float)
    )
    record(
        "driver timeouts from SessionSettings: frozen and stopped server",
        group="5",
        done=(
            "from_settings(server_selection_timeout_ms=300, connect_timeout_ms=400, "
            "socket_timeout_ms=500); the server frozen by SIGSTOP, then SIGCONT; then stopped by "
            "SIGKILL, then restarted; reads and writes on a stored session meanwhile. A wait "
            "can exceed one timeout: the driver retries a read or write once after a network "
            "error (retryReads/retryWrites)"
        ),
        measured=measured,
        verdict=PASS if ok else FAIL,
    )
    assert set(codes) == {503}
    assert measured["frozen: a handler without the session"] == 200
    assert measured["stopped: new visitor reading"] == 200  # no cookie: no store command
    assert isinstance(measured["after SIGCONT: first 200 after s"], float)
    assert isinstance(measured["after restart: first 200 after s"], float)


async def wait_for_200(app: Server, cookie: str, attempts: int = 100) -> float | str:
    """Seconds until a session read answers 200 again (bounded), or "never"."""
    started = time.monotonic()
    for _ in range(attempts):
        response = await app.fetch("/len?k=a", cookie=cookie)
        if response.code == 200:
            return time.monotonic() - started
        await asyncio.sleep(0.1)
    return "never"


# -- the TTL index refused --------------------------------------------------------------------


async def test_index_refusal_is_one_log_line_and_sessions_keep_working(
    collection: Any, sync_db: Any, driver: str, mongo_url: str, command_log: Any
) -> None:
    """FerretDB answers NotImplemented (238) to the TTL index: the path a refusal takes.

    The store treats NotImplemented, CommandNotSupported (115) and Unauthorized (13) alike; a
    server that makes the index instead gets it and logs nothing.
    """
    store = MongoSessionStore(collection)
    handler = LogRecords(logging.WARNING)
    library = logging.getLogger("tornado_mongo_session")
    library.addHandler(handler)
    try:
        async with serve(ROUTES, session_store=store, session_settings=session_settings()) as app:
            load = LoadClient(app.base)
            try:
                firsts = await asyncio.gather(
                    *(load.fetch(f"/fill?k=a&n={i}", method="POST") for i in range(20))
                )
                cookies = [o.response.cookie_value() if o.response else None for o in firsts]
                seconds = await asyncio.gather(
                    *(load.fetch("/len?k=a", cookie=c) for c in cookies if c)
                )
            finally:
                load.close()
    finally:
        library.removeHandler(handler)
    lines = [r.getMessage() for r in handler.records]
    ttl = [ix for ix in sync_db.sessions.list_indexes() if ix["name"] == "expires_at_ttl"]
    codes = sorted({o.code for o in firsts} | {o.code for o in seconds})
    lengths = sorted(o.json()["len"] for o in seconds if o.code == 200)
    working = codes == [200] and lengths == list(range(20))
    refused = not ttl
    one_line = len(lines) == (1 if refused else 0)
    record(
        f"TTL index refused by the server ({driver})",
        group="5",
        done=(
            "20 concurrent new sessions through HTTP on a fresh collection (each insert first "
            "ensures the index), then 20 reads"
        ),
        measured={
            "server": server_description(mongo_url),
            "index made": not refused,
            "createIndexes sent": command_log.count("createIndexes"),
            "warning lines": len(lines),
            "line": lines[0] if lines else "none",
            "codes": codes,
            "sessions stored and read back": len(lengths),
        },
        verdict=PASS if working and one_line else FAIL,
    )
    assert working, codes
    assert one_line, lines
    assert command_log.count("createIndexes") == 1
    if refused:
        assert "code 238" in lines[0]
        assert "purge_expired" in lines[0]
        assert handler.records[0].levelno == logging.WARNING


# -- values the server refuses ----------------------------------------------------------------

HANDED: dict[str, tuple[str, Any]] = {}


class PutValue(SessionMixin, tornado.web.RequestHandler):
    """``POST /put?case=``: store the value of a case (the very Python object)."""

    async def post(self) -> None:
        key, value = HANDED[self.get_argument("case")]
        self.session[key] = value
        self.write("stored")


SERVER_CASES: dict[str, tuple[str, Any]] = {
    "NaN": ("v", float("nan")),
    "Infinity": ("v", float("inf")),
    "Decimal128": ("v", bson.Decimal128("1.5")),
    "JavaScript code": ("v", bson.Code("f()")),
    "MinKey": ("v", bson.MinKey()),
    "DBRef": ("v", bson.DBRef("users", 1)),
    "array in an array": ("v", [[1, 2]]),
    "-0.0": ("v", -0.0),
    "key with a trailing space": ("v ", 1),
}
HANDED.update(SERVER_CASES)


async def test_values_bson_encodes_but_the_server_refuses(
    collection: Any, sync_db: Any, driver: str, mongo_url: str
) -> None:
    """Values the library accepts (MongoDB stores them all) tried on the server at hand.

    On FerretDB 1.24 some are refused: as a write error (500), or by closing the connection,
    which the driver reports as a network error (503, and the pool is cleared). Whatever the
    answer, nothing is written. Measured as well: what 20 concurrent requests of other
    sessions get while such a write fails.
    """
    store = MongoSessionStore(collection)
    routes = [("/put", PutValue), ("/n", ReadJSON, {"with_data": False}), *ROUTES]
    server = server_description(mongo_url)
    outcomes: dict[str, str] = {}
    partial: list[str] = []
    neighbours_failed = 0
    async with serve(routes, session_store=store, session_settings=session_settings()) as app:
        load = LoadClient(app.base)
        try:
            others = []
            for i in range(20):
                created = await load.fetch(f"/fill?k=a&n={i}", method="POST")
                assert created.response is not None
                others.append(created.response.cookie_value())
            for case, (key, value) in SERVER_CASES.items():
                first = await app.fetch("/fill?k=base&n=3", method="POST")
                cookie = first.cookie_value()
                assert cookie is not None
                session_id = session_id_of(cookie)
                before = raw_doc(sync_db, session_id)
                put, *neighbours = await asyncio.gather(
                    load.fetch(f"/put?case={quote(case)}", cookie=cookie, method="POST"),
                    *(load.fetch("/n", cookie=other) for other in others),
                )
                neighbours_failed += sum(1 for n in neighbours if n.code != 200)
                after = raw_doc(sync_db, session_id)
                assert after is not None
                if put.code == 200:
                    stored = after["data"].get(key)
                    same = json_util.dumps(stored) == json_util.dumps(
                        bson.decode(bson.encode({key: value}))[key]
                    )
                    outcomes[case] = "stored" if same else f"stored as {stored!r}"
                else:
                    outcomes[case] = str(put.code)
                    if after != before:
                        partial.append(case)
                await wait_for_200(app, cookie)
        finally:
            load.close()
    if server.startswith("FerretDB v1."):
        expected = {
            "NaN": "503",
            "Infinity": "500",
            "Decimal128": "503",
            "JavaScript code": "503",
            "MinKey": "503",
            "DBRef": "500",
            "array in an array": "500",
            "-0.0": "stored as 0.0",
            "key with a trailing space": "500",
        }
    else:
        expected = dict.fromkeys(SERVER_CASES, "stored")
    record(
        f"values BSON encodes that the server may refuse ({driver})",
        group="5",
        done=(
            "each set through HTTP on a stored session, while 20 other sessions send a read "
            "at the same moment"
        ),
        measured={
            "server": server,
            **outcomes,
            "partial writes": len(partial),
            "other sessions' requests failed meanwhile": neighbours_failed,
        },
        verdict=PASS if outcomes == expected and not partial else FAIL,
    )
    assert not partial
    assert outcomes == expected
