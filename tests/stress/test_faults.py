"""Item 1: the server stops in the middle of a load, then comes back on the same data.

The app runs in-process on 127.0.0.1; 20 workers send at least 2,000 requests, reads and writes
mixed, over 200 sessions (each session belongs to one worker, so its requests are sequential
and every read must see every write acknowledged before it). After 40% of the requests the
private server is stopped by its pid (SIGKILL: a crash; SIGTERM: a clean stop), the load goes
on while it is down, then the server restarts on the same data and port, the load goes on until
the app answers 200 again (at most 10 s), and at least 600 more requests follow. The running
app is never restarted.

Promises checked: during the outage requests get 503 (no 500, no hang: the load client gives up
after 20 s, which would show as 599; on FerretDB a clean stop can fail a command in flight with
an internal error, code 1, which the store rightly reports as a refusal: such 500s are counted
with their reason, and any other 500 fails); after the restart the app serves again; every write
acknowledged with a 200 before the outage is in the raw documents, and no read misses one.
Writes acknowledged during or after the outage are held to the same standard on MongoDB; on
FerretDB 1.24, which drops a few acknowledged updates around a restart by itself (the
driver-only control test measures that), they are measured and reported. Measured and
recorded: requests, codes, 503 latency against the driver timeouts, time from restart to the
first 200.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pymongo
import pytest
from helpers import serve, session_id_of, session_settings
from mongo_helpers import close_async_client, make_async_client
from pymongo.errors import NetworkTimeout, OperationFailure, PyMongoError
from reliability_report import FAIL, PASS, record
from stress_support import (
    ROUTES,
    Jar,
    LoadClient,
    Outcome,
    percentile,
    server_description,
)

from tornado_mongo_session import MongoSessionStore, SessionSettings

pytestmark = [pytest.mark.stress, pytest.mark.timeout(300)]

SESSIONS = 200
WORKERS = 20
REQUESTS = 2000
STOP_AT = 0.4
OUTAGE_SECONDS = 3.0
AFTER_RESTART = 600
"""Requests sent after the app answers 200 again, at least, so the recovery is measured under
load. Counted from that first 200, not from the restart: once the store is known down its 503s
take milliseconds, so 600 requests can be spent in 0.4 s, before the driver has rechecked the
returned server (every 0.5 s at most), which made a recovery in time look like none."""
RECOVERY_CAP = 10.0
"""Seconds after the restart the load waits for a 200 (issue 11 promises about one; this bound
only keeps a store that never recovers from running to the hard cap)."""
SAFETY_CAP = 20_000
HARD_CAP_SECONDS = 150.0
SELECTION_MS = 500
CONNECT_MS = 500
SOCKET_MS = 2000
SLACK = 0.5
"""Seconds of Python, HTTP and scheduling time allowed on top of a driver timeout (reported,
never asserted: timings are measured, not pass/fail)."""


@dataclass
class Client:
    """One simulated user: a session, its cookie jar, what the server acknowledged to it."""

    index: int
    jar: Jar = field(default_factory=Jar)
    session_id: str = ""
    acked: dict[str, str] = field(default_factory=dict)
    abandoned: bool = False
    """A request of this session waited out the socket timeout: the driver gave up on a
    command the server may still apply later."""


@dataclass
class Run:
    issued: int = 0
    done: int = 0
    codes: Counter[int] = field(default_factory=Counter)
    latency_503: list[float] = field(default_factory=list)
    latency_200: list[float] = field(default_factory=list)
    stale_reads: list[str] = field(default_factory=list)
    logged_out: int = 0
    logouts: list[str] = field(default_factory=list)
    acked_before_outage: int = 0
    acked_after_restart: int = 0
    ok_after_ready: list[float] = field(default_factory=list)
    t_stop: float | None = None
    t_stopped: float | None = None
    t_restart: float | None = None
    t_ready: float | None = None
    windows_503: dict[str, list[float]] = field(default_factory=lambda: {w: [] for w in WINDOWS})
    restarted: asyncio.Event = field(default_factory=asyncio.Event)
    half_way: asyncio.Event = field(default_factory=asyncio.Event)
    issued_at_recovery: int | None = None
    """Requests issued when the first request sent after the restart answered 200."""
    acked_when: dict[tuple[int, str], str] = field(default_factory=dict)

    def target(self) -> int:
        """How many requests to send: the load goes on however long the outage lasts and
        until the app answers 200 again (at most RECOVERY_CAP s after the restart), then at
        least AFTER_RESTART more, and REQUESTS in all."""
        if not self.restarted.is_set():
            return SAFETY_CAP
        if self.issued_at_recovery is None:
            assert self.t_ready is not None
            return SAFETY_CAP if time.monotonic() < self.t_ready + RECOVERY_CAP else 0
        return max(REQUESTS, self.issued_at_recovery + AFTER_RESTART)

    def succeeded(self, started: float, ended: float) -> None:
        """Note a request or operation sent at ``started`` that succeeded at ``ended``."""
        if self.t_ready is not None and started >= self.t_ready:
            self.ok_after_ready.append(ended - self.t_ready)
            if self.issued_at_recovery is None:
                self.issued_at_recovery = self.issued


class ErrorLog(logging.Handler):
    """Why requests got a 500, from the library's log line for each.

    ``causes_500`` holds (the server refused a command, the reason without FerretDB's Go stack
    frames, with the server's error code).
    """

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.causes_500: list[tuple[bool, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if "answering 500" not in message and not message.startswith("Uncaught exception"):
            return
        first = message.splitlines()[0]
        refused = "session store failed during" in first
        code = re.search(r"'code': (\d+)", first)
        reason = first.split("full error:")[0].split("during ", 1)[-1]
        reason = re.sub(r"\[[\w./]+:\d+ [^\]]*\] ?", "", reason).strip(" ,")
        self.causes_500.append((refused, f"{reason} (code {code.group(1) if code else '?'})"))


def store_for(driver: str, url: str) -> tuple[MongoSessionStore, Any]:
    """The store under test: ``from_settings`` for PyMongo, the same timeouts for Motor."""
    settings = SessionSettings(
        mongodb_url=url,
        database="faults",
        collection="sessions",
        server_selection_timeout_ms=SELECTION_MS,
        connect_timeout_ms=CONNECT_MS,
        socket_timeout_ms=SOCKET_MS,
        # Below the socket timeout, as the settings require (issue 11).
        write_concern_timeout_ms=SOCKET_MS // 2,
    )
    if driver == "pymongo":
        return MongoSessionStore.from_settings(settings), None
    client = make_async_client(
        driver,
        url,
        serverSelectionTimeoutMS=SELECTION_MS,
        connectTimeoutMS=CONNECT_MS,
        socketTimeoutMS=SOCKET_MS,
        tz_aware=True,
    )
    return MongoSessionStore(client.faults.sessions), client


WINDOWS = ("before the stop", "server down", "server starting", "server back")
ABANDONED = ", after a command of the session was abandoned"


def window(run: Run, moment: float) -> str:
    """Which part of the outage a request was sent in."""
    if run.t_stop is None or moment < run.t_stop:
        return WINDOWS[0]
    if run.t_restart is None or moment < run.t_restart:
        return WINDOWS[1]
    if run.t_ready is None or moment < run.t_ready:
        return WINDOWS[2]
    return WINDOWS[3]


def judge(run: Run, client: Client, path: str, outcome: Outcome, key: str, value: str) -> None:
    """Count one response and check what it says against what the client was promised."""
    run.done += 1
    run.codes[outcome.code] += 1
    if run.done >= STOP_AT * REQUESTS:
        run.half_way.set()
    if outcome.code == 503:
        run.latency_503.append(outcome.latency)
        run.windows_503[window(run, outcome.started)].append(outcome.latency)
        client.abandoned |= outcome.latency >= SOCKET_MS / 1000
    if outcome.code != 200:
        return
    run.latency_200.append(outcome.latency)
    run.succeeded(outcome.started, outcome.ended)
    body = outcome.json()
    client.jar.update(outcome.response)
    if not client.session_id:
        assert client.jar.value is not None
        client.session_id = session_id_of(client.jar.value)
    if body["id"] != client.session_id or (not body["loaded"] and client.acked):
        run.logged_out += 1
        run.logouts.append(
            f"{'write' if path.startswith('/w') else 'read'} sent {window(run, outcome.started)}"
            + (ABANDONED if client.abandoned else "")
        )
        return
    if path.startswith("/w"):
        client.acked[key] = value
        when = window(run, outcome.started)
        if client.abandoned:
            when += ABANDONED
        run.acked_when[client.index, key] = when
        if run.t_stop is None:
            run.acked_before_outage += 1
        elif run.t_ready is not None and outcome.started >= run.t_ready:
            run.acked_after_restart += 1
    else:
        missing = [k for k, v in client.acked.items() if body["data"].get(k) != v]
        for k in missing:
            run.stale_reads.append(run.acked_when.get((client.index, k), "?"))


async def worker(
    run: Run, load: LoadClient, clients: list[Client], seed: int, deadline: float
) -> None:
    rng = random.Random(seed)
    counter = 0
    pending_new = list(clients)  # each client's first request creates its session
    while time.monotonic() < deadline:
        if run.issued >= run.target():
            return
        run.issued += 1
        client = pending_new.pop() if pending_new else rng.choice(clients)
        counter += 1
        key, value = f"k{seed}_{counter}", f"{rng.getrandbits(64):x}"
        write = not client.session_id or rng.random() < 0.5
        path = f"/w?k={key}&v={value}" if write else "/r"
        outcome = await load.fetch(path, cookie=client.jar.value, method="POST" if write else "GET")
        judge(run, client, path, outcome, key, value)
        if not client.session_id:
            pending_new.append(client)  # not created yet: try again


async def outage(run: Run, private_server: Any, kill: bool) -> None:
    await run.half_way.wait()
    run.t_stop = time.monotonic()
    await asyncio.to_thread(private_server.stop, kill=kill)
    run.t_stopped = time.monotonic()
    await asyncio.sleep(OUTAGE_SECONDS)
    run.t_restart = time.monotonic()
    await asyncio.to_thread(private_server.start)
    run.t_ready = time.monotonic()
    run.restarted.set()


def lost_writes(url: str, clients: list[Client], run: Run) -> tuple[list[str], int]:
    """Acknowledged writes missing from the raw documents, and how many were checked."""
    sync: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
        url, serverSelectionTimeoutMS=5000
    )
    try:
        lost: list[str] = []
        checked = 0
        for client in clients:
            if not client.session_id:
                continue
            doc = sync.faults.sessions.find_one({"_id": client.session_id})
            data = (doc or {}).get("data", {})
            for key, value in client.acked.items():
                checked += 1
                if data.get(key) != value:
                    state = "no document" if doc is None else "key missing"
                    when = run.acked_when.get((client.index, key), "?")
                    lost.append(f"{state}, written {when}")
        return lost, checked
    finally:
        sync.close()


@pytest.mark.parametrize("stop", ["kill", "term"])
async def test_server_stops_under_load_and_comes_back(
    private_server: Any, driver: str, stop: str
) -> None:
    server = server_description(private_server.url)
    store, own_client = store_for(driver, private_server.url)
    await store.ensure_indexes()
    settings = session_settings(token_ttl=5)
    run = Run()
    clients = [Client(i) for i in range(SESSIONS)]
    errors = ErrorLog()
    logging.getLogger().addHandler(errors)
    started = time.monotonic()
    deadline = started + HARD_CAP_SECONDS
    try:
        async with serve(ROUTES, session_store=store, session_settings=settings) as app:
            load = LoadClient(app.base)
            try:
                await asyncio.wait_for(
                    asyncio.gather(
                        outage(run, private_server, kill=stop == "kill"),
                        *(
                            worker(run, load, clients[w::WORKERS], w, deadline)
                            for w in range(WORKERS)
                        ),
                    ),
                    HARD_CAP_SECONDS + 30,
                )
            finally:
                load.close()
    finally:
        logging.getLogger().removeHandler(errors)
        await store.close()
        if own_client is not None:
            await close_async_client(own_client)
    elapsed = time.monotonic() - started
    lost, checked = lost_writes(private_server.url, clients, run)
    assert run.t_stop is not None
    assert run.t_stopped is not None
    assert run.t_ready is not None
    recovery = min(run.ok_after_ready) if run.ok_after_ready else None
    n500 = run.codes[500]
    hangs = run.codes[599]
    others = {c: n for c, n in run.codes.items() if c not in (200, 503, 500, 599)}
    # On MongoDB every acknowledged write must be there. FerretDB 1.24 applies an update as
    # read, modify, write back the whole document; a command the driver abandoned (socket
    # timeout) can still be applied later and write back an older document over a newer
    # acknowledged write. The driver-only control shows it without the library. So on
    # FerretDB 1.x the sessions with an abandoned command are measured, not asserted (FerretDB
    # 2 applies each update atomically in PostgreSQL: asserted as on MongoDB).
    ferretdb = server.startswith("FerretDB v1.")
    lost_clean = [x for x in lost if ABANDONED not in x]
    stale_clean = [x for x in run.stale_reads if ABANDONED not in x]
    logouts_clean = [x for x in run.logouts if ABANDONED not in x]
    # A 500 must never come from the library itself; FerretDB answers some commands caught
    # by its own graceful shutdown with an internal error, which the store reports as a
    # refusal (SessionStoreError, 500). Measured on FerretDB, asserted elsewhere.
    server_500s = [reason for refused, reason in errors.causes_500 if refused]
    allowed_500 = len(server_500s) if ferretdb else 0
    if ferretdb:
        durable = not (lost_clean or stale_clean or logouts_clean)
    else:
        durable = not (lost or run.stale_reads or run.logouts)
    ok = (
        run.done >= REQUESTS
        and n500 == allowed_500
        and hangs == 0
        and not others
        and run.codes[503] > 0
        and recovery is not None
        and durable
    )
    # A request waits on at most one failing store command before its 503: server selection
    # (server down) or the socket timeout (a command in flight when the server went away).
    bound = max(SELECTION_MS, SOCKET_MS) / 1000 + SLACK
    signal = "SIGKILL" if stop == "kill" else "SIGTERM"
    record(
        f"server {signal} under load, restart on the same data ({driver})",
        group="1",
        done=(
            f"{run.done} requests by {WORKERS} workers over {SESSIONS} sessions, reads and "
            f"writes mixed; the server stopped by {signal} after {STOP_AT:.0%}, down "
            f"{OUTAGE_SECONDS:g} s under load, restarted; server_selection_timeout_ms="
            f"{SELECTION_MS}, socket_timeout_ms={SOCKET_MS}"
        ),
        measured={
            "server": server,
            "requests": run.done,
            "200": run.codes[200],
            "503": run.codes[503],
            "500": n500,
            "hung (no answer in 20 s)": hangs,
            "other codes": others or "none",
            "503 latency max s": max(run.latency_503, default=0.0),
            "503 latency median s": percentile(run.latency_503, 0.5),
            "503s (max latency s) by when sent": {
                name: f"{len(values)} ({max(values, default=0.0):.2f})"
                for name, values in run.windows_503.items()
            },
            f"503s slower than max(timeouts) + {SLACK:g} s": sum(
                1 for value in run.latency_503 if value > bound
            ),
            "200 latency p99 s": percentile(run.latency_200, 0.99),
            "stop took s": run.t_stopped - run.t_stop,
            "restart to first 200 s": recovery if recovery is not None else "never",
            "acknowledged writes checked": checked,
            "before the outage": run.acked_before_outage,
            "after the restart": run.acked_after_restart,
            "lost": len(lost),
            "lost in sessions with an abandoned command": len(lost) - len(lost_clean),
            **({"lost writes": dict(Counter(lost))} if lost else {}),
            "reads missing an acknowledged write": len(run.stale_reads),
            **(
                {"stale reads, write acknowledged": dict(Counter(run.stale_reads))}
                if run.stale_reads
                else {}
            ),
            "logged out": run.logged_out,
            **({"logouts by when sent": dict(Counter(run.logouts))} if run.logouts else {}),
            **(
                {"why the 500s": dict(Counter(reason for _, reason in errors.causes_500))}
                if errors.causes_500
                else {}
            ),
            "wall time s": elapsed,
        },
        verdict=PASS if ok else FAIL,
    )
    assert run.done >= REQUESTS, f"only {run.done} requests in {HARD_CAP_SECONDS} s"
    assert n500 == allowed_500, (run.codes, errors.causes_500)
    assert hangs == 0, run.codes
    assert not others, run.codes
    assert run.codes[503] > 0, "the outage was not seen: no 503"
    assert recovery is not None, "no 200 after the restart"
    if ferretdb:
        assert not lost_clean, lost_clean[:10]
        assert not stale_clean, stale_clean[:10]
        assert not logouts_clean, logouts_clean[:10]
    else:
        assert not lost, lost[:10]
        assert not run.stale_reads, run.stale_reads[:10]
        assert not run.logouts, run.logouts[:10]


@pytest.mark.parametrize("stop", ["kill", "term"])
async def test_the_server_alone_under_the_same_fault(private_server: Any, stop: str) -> None:
    """The control: the same load and fault with PyMongo alone, no library, no Tornado.

    Each of 200 documents belongs to one of 20 workers, which send it reads and ``$set``
    updates one at a time. Any acknowledged update missing afterwards was dropped by the
    server: this tells the server's share of what the test above measures.
    """
    server = server_description(private_server.url)
    client = make_async_client(
        "pymongo",
        private_server.url,
        serverSelectionTimeoutMS=SELECTION_MS,
        connectTimeoutMS=CONNECT_MS,
        socketTimeoutMS=SOCKET_MS,
    )
    collection = client.control.docs
    run = Run()
    acked: dict[tuple[int, str], tuple[int, str]] = {}
    abandoned: set[int] = set()
    errors: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    started = time.monotonic()
    try:
        await collection.insert_many([{"_id": i, "data": {"init": 1}} for i in range(SESSIONS)])

        async def driver_worker(w: int) -> None:
            rng = random.Random(w)
            counter = 0
            while run.issued < run.target() and time.monotonic() < started + HARD_CAP_SECONDS:
                run.issued += 1
                doc, counter = rng.randrange(w, SESSIONS, WORKERS), counter + 1
                key, value = f"k{w}_{counter}", rng.getrandbits(32)
                sent = time.monotonic()
                writing = rng.random() >= 0.5
                try:
                    if writing:
                        result = await collection.update_one(
                            {"_id": doc}, {"$set": {f"data.{key}": value}}
                        )
                        if result.matched_count:
                            tag = ABANDONED if doc in abandoned else ""
                            acked[doc, key] = (value, window(run, sent) + tag)
                    else:
                        await collection.find_one({"_id": doc})
                    run.succeeded(sent, time.monotonic())
                except PyMongoError as exc:
                    if writing and isinstance(exc, NetworkTimeout):
                        abandoned.add(doc)
                    code = getattr(exc, "code", None)
                    errors[type(exc).__name__ + (f" {code}" if code is not None else "")] += 1
                    if isinstance(exc, OperationFailure):
                        failures[str(exc.details.get("errmsg", exc) if exc.details else exc)] += 1
                run.done += 1
                if run.done >= STOP_AT * REQUESTS:
                    run.half_way.set()

        await asyncio.wait_for(
            asyncio.gather(
                outage(run, private_server, kill=stop == "kill"),
                *(driver_worker(w) for w in range(WORKERS)),
            ),
            HARD_CAP_SECONDS + 30,
        )
        docs = {d["_id"]: d["data"] async for d in collection.find({})}
    finally:
        await close_async_client(client)
    lost = Counter(
        when for (doc, key), (value, when) in acked.items() if docs[doc].get(key) != value
    )
    lost_clean = sum(n for when, n in lost.items() if ABANDONED not in when)
    signal = "SIGKILL" if stop == "kill" else "SIGTERM"
    record(
        f"control: the driver alone, server {signal} under load",
        group="1",
        done=(
            f"the same load and fault with PyMongo alone (no library): {run.done} operations "
            f"by {WORKERS} workers, reads and $set updates of {SESSIONS} documents, each "
            "document updated by one worker at a time"
        ),
        measured={
            "server": server,
            "operations": run.done,
            "errors": dict(errors),
            **({"server errors": dict(failures)} if failures else {}),
            "acknowledged updates": len(acked),
            "lost by the server": dict(lost) or 0,
        },
        verdict=PASS if not lost_clean else FAIL,
    )
    # What the server loses is measured; losses outside the abandoned-command race are not
    # expected even from FerretDB.
    assert not lost_clean, lost
