"""The library across processes: three app processes, each with its own client, one database.

Production runs several Tornado processes (often on several hosts) against one MongoDB
deployment. Each app here is a separate OS process (``tests/multiprocess_app.py``, spawned with
subprocess, listening on 127.0.0.1, stopped by pid), all serving the same sessions with the
default rotator (``IntervalRotator``) at a short ``token_ttl``. What they promise rests on the
server's atomic single-document updates, not on anything one process can serialize:

- of many concurrent requests on one aged token, exactly one rotates it, and nobody's cookie is
  cleared; the document never holds more than ``tokens_kept`` hashes;
- concurrent writes of different keys all survive;
- a rotation storm, with a browser's cookie jar following every ``Set-Cookie``, logs nobody out.

On a server without atomic updates (FerretDB 1.x) these skip, saying why. Set
``TORNADO_SESSION_TEST_MULTIPROCESS_ANYWAY=1`` to run them there anyway and see them fail.
The first three record what they measured for docs/reliability.md (``make test-stress``).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pymongo
import pytest
from helpers import session_id_of
from mongo_helpers import DRIVERS, lacks_atomic_updates
from reliability_report import FAIL, PASS, record
from stress.stress_support import Jar, LoadClient, Outcome, server_description

from tornado_mongo_session.tokens import hash_token, parse_cookie, session_handle

pytestmark = pytest.mark.timeout(180)

APP = Path(__file__).with_name("multiprocess_app.py")
ANYWAY_ENV = "TORNADO_SESSION_TEST_MULTIPROCESS_ANYWAY"
PROCESSES = 3
CONCURRENT = 30
TOKEN_TTL = 0.5
TOKENS_KEPT = 3
STORM_WAVES = 8
STORM_PER_WAVE = 9
START_TIMEOUT = 30.0


@dataclass
class Apps:
    """The running app processes: one HTTP client per process, the shared database's name, the
    driver they use and the server ("FerretDB v2.5.0"), for the record."""

    db: str
    driver: str = ""
    server: str = ""
    clients: list[LoadClient] = field(default_factory=list)

    def client(self, i: int) -> LoadClient:
        """Request ``i`` goes to process ``i mod PROCESSES``: requests spread over them all."""
        return self.clients[i % len(self.clients)]

    async def set_clock(self, at: float | None) -> None:
        """Freeze every process's session clock at ``at`` (epoch seconds); None: real time."""
        path = "/clock" if at is None else f"/clock?at={at}"
        for outcome in await asyncio.gather(*(c.fetch(path, method="POST") for c in self.clients)):
            assert outcome.code == 200


def start_apps(
    url: str, db: str, driver: str, *, token_ttl: float = TOKEN_TTL
) -> list[subprocess.Popen[str]]:
    argv = [sys.executable, str(APP), "--url", url, "--db", db, "--driver", driver]
    argv += ["--token-ttl", str(token_ttl), "--tokens-kept", str(TOKENS_KEPT)]
    return [
        subprocess.Popen(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        for _ in range(PROCESSES)
    ]


def read_port(process: subprocess.Popen[str]) -> int:
    assert process.stdout is not None
    line = process.stdout.readline()  # the app prints it once it listens (or exits: "")
    if not line.startswith("port "):
        raise RuntimeError(f"app process {process.pid} did not start (exit {process.poll()})")
    return int(line.split()[1])


def stop_apps(processes: list[subprocess.Popen[str]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()  # SIGTERM to this pid
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


@pytest.fixture(scope="module", params=DRIVERS)
def apps(
    request: pytest.FixtureRequest, mongo_url: str, sync_client: pymongo.MongoClient[Any]
) -> Iterator[Apps]:
    reason = lacks_atomic_updates(sync_client)
    if reason and not os.environ.get(ANYWAY_ENV):
        pytest.skip(f"{reason}: sessions shared by several processes are not exact there")
    db = f"tms_mp_{uuid.uuid4().hex[:12]}"
    processes = start_apps(mongo_url, db, str(request.param))
    running = Apps(db, str(request.param), server_description(mongo_url))
    try:
        deadline = time.monotonic() + START_TIMEOUT
        for process in processes:
            port = read_port(process)
            assert time.monotonic() < deadline
            running.clients.append(LoadClient(f"http://127.0.0.1:{port}"))
        yield running
    finally:
        for client in running.clients:
            client.close()
        stop_apps(processes)
        sync_client.drop_database(db)


def cleared(outcome: Outcome) -> bool:
    """Whether the response told the browser to drop its session cookie."""
    assert outcome.response is not None
    morsel = outcome.response.cookie()
    return morsel is not None and (not morsel.value or morsel["max-age"] in ("0", "-1"))


async def new_session(apps: Apps, jar: Jar | None = None) -> tuple[str, str]:
    """(cookie, session id) of a new session with one key, made by process 0."""
    first = await apps.client(0).fetch("/w?k=base&v=0", method="POST")
    assert first.code == 200
    cookie = first.response.cookie_value() if first.response else None
    assert cookie
    if jar is not None:
        jar.update(first.response)
    return cookie, session_id_of(cookie)


async def burst(apps: Apps, *, rotation_due: bool) -> tuple[str, list[Outcome]]:
    """A new session, then CONCURRENT writes of keys k0… with its first cookie, spread over the
    processes, with their clocks frozen where the token has aged (``rotation_due``) or not."""
    start = time.time()
    await apps.set_clock(start)
    cookie, sid = await new_session(apps)
    await apps.set_clock(start + (TOKEN_TTL + 1 if rotation_due else TOKEN_TTL / 10))
    try:
        outcomes = await asyncio.gather(
            *(
                apps.client(i).fetch(f"/w?k=k{i}&v={i}", cookie=cookie, method="POST")
                for i in range(CONCURRENT)
            )
        )
    finally:
        await apps.set_clock(None)
    return sid, list(outcomes)


def raw_document(sync_client: pymongo.MongoClient[Any], apps: Apps, sid: str) -> dict[str, Any]:
    doc: dict[str, Any] | None = sync_client[apps.db]["sessions"].find_one({"_id": sid})
    assert doc is not None
    return doc


async def test_one_aged_token_rotates_exactly_once_across_processes(
    apps: Apps, sync_client: pymongo.MongoClient[Any]
) -> None:
    sid, outcomes = await burst(apps, rotation_due=True)
    issued = {o.response.cookie_value() for o in outcomes if o.response and o.response.cookie()}
    codes = [o.code for o in outcomes]
    opened = sum(1 for o in outcomes if o.code == 200 and o.json() == {"id": sid, "loaded": True})
    n_cleared = sum(1 for o in outcomes if cleared(o))
    stored = len(raw_document(sync_client, apps, sid)["tokens"])
    record(
        f"{PROCESSES} processes, {CONCURRENT} concurrent requests on one aged token "
        f"({apps.driver})",
        group="2",
        done=(
            f"{PROCESSES} app processes (each its own client), one session whose token is due "
            f"for rotation, {CONCURRENT} concurrent writes with that token spread over them"
        ),
        measured={
            "server": apps.server,
            "200s": codes.count(200),
            "served as the session": opened,
            "new tokens issued": len(issued),
            "cookies cleared": n_cleared,
            f"token hashes stored (at most {TOKENS_KEPT})": stored,
        },
        verdict=PASS
        if opened == CONCURRENT and len(issued) == 1 and not n_cleared and stored <= TOKENS_KEPT
        else FAIL,
    )
    assert codes == [200] * CONCURRENT
    assert all(o.json() == {"id": sid, "loaded": True} for o in outcomes)
    assert not n_cleared
    assert len(issued) == 1, f"{len(issued)} new tokens for one aged token"
    new_cookie = issued.pop()
    assert new_cookie is not None
    parsed = parse_cookie(new_cookie)
    assert parsed is not None
    assert parsed[0] == sid
    doc = raw_document(sync_client, apps, sid)
    assert len(doc["tokens"]) <= TOKENS_KEPT
    assert doc["tokens"][0] == hash_token(parsed[1])


@pytest.mark.parametrize("rotation_due", [False, True], ids=["no-rotation", "rotation-due"])
async def test_concurrent_writes_of_different_keys_across_processes_all_survive(
    apps: Apps, sync_client: pymongo.MongoClient[Any], rotation_due: bool
) -> None:
    sid, outcomes = await burst(apps, rotation_due=rotation_due)
    codes = [o.code for o in outcomes]
    data = raw_document(sync_client, apps, sid)["data"]
    lost = [i for i in range(CONCURRENT) if data.get(f"k{i}") != str(i)]
    record(
        f"{PROCESSES} processes, {CONCURRENT} concurrent writes of different keys, "
        f"{'a rotation due' if rotation_due else 'no rotation'} ({apps.driver})",
        group="2",
        done=(
            f"{PROCESSES} app processes, one session, {CONCURRENT} concurrent requests each "
            "writing its own key, spread over them"
            + ("; the token due for rotation" if rotation_due else "")
        ),
        measured={
            "server": apps.server,
            "200s": codes.count(200),
            "keys kept in the raw document": CONCURRENT - len(lost),
            "keys lost": len(lost),
        },
        verdict=PASS if codes == [200] * CONCURRENT and not lost else FAIL,
    )
    assert codes == [200] * CONCURRENT
    assert not lost, f"{len(lost)} of {CONCURRENT} acknowledged keys lost: {lost}"
    assert data["base"] == "0"


async def test_rotation_storm_across_processes_logs_nobody_out(
    apps: Apps, sync_client: pymongo.MongoClient[Any]
) -> None:
    """Waves of concurrent requests with the real clock, each wave after ``token_ttl``: every
    wave races a rotation. The browser sends what its jar holds and applies each Set-Cookie."""
    await apps.set_clock(None)
    jar = Jar()
    _, sid = await new_session(apps, jar)
    logged_out: list[str] = []
    acked: dict[str, str] = {"base": "0"}

    async def send(i: int, key: str) -> None:
        outcome = await apps.client(i).fetch(f"/w?k={key}&v={key}", cookie=jar.value, method="POST")
        jar.update(outcome.response)
        if outcome.code != 200 or outcome.json() != {"id": sid, "loaded": True}:
            logged_out.append(f"{key}: {outcome.code}")
        else:
            acked[key] = key

    for wave in range(STORM_WAVES):
        await asyncio.sleep(TOKEN_TTL)
        await asyncio.gather(*(send(i, f"w{wave}_{i}") for i in range(STORM_PER_WAVE)))
        assert len(raw_document(sync_client, apps, sid)["tokens"]) <= TOKENS_KEPT

    requests = STORM_WAVES * STORM_PER_WAVE
    final = await apps.client(1).fetch("/r", cookie=jar.value)
    data = raw_document(sync_client, apps, sid)["data"]
    lost = [k for k, v in acked.items() if data.get(k) != v]
    rotated = len(jar.history) - 1  # the first cookie is the new session's
    still_in = final.code == 200 and final.json()["id"] == sid
    record(
        f"{PROCESSES} processes, rotation storm, browser jar ({apps.driver})",
        group="2",
        done=(
            f"{STORM_WAVES} waves of {STORM_PER_WAVE} concurrent writes, one every "
            f"token_ttl={TOKEN_TTL:g} s (every wave races a rotation), spread over {PROCESSES} "
            "app processes; the client sends what its jar holds and applies every Set-Cookie"
        ),
        measured={
            "server": apps.server,
            "requests": requests,
            "logged out": len(logged_out),
            "rotations the browser saw": rotated,
            "acknowledged writes lost": len(lost),
            "still logged in at the end": still_in,
        },
        verdict=PASS
        if not logged_out and len(jar.history) > STORM_WAVES // 2 and not lost and still_in
        else FAIL,
    )
    assert not logged_out, f"{len(logged_out)} of {requests} requests logged out: {logged_out}"
    assert len(jar.history) > STORM_WAVES // 2, "the storm rotated too seldom to test anything"
    assert final.code == 200
    assert final.json()["id"] == sid
    assert not lost, lost


async def test_a_session_revoked_on_one_process_opens_nothing_on_the_others(apps: Apps) -> None:
    """Two devices of one user log in on two processes; a third process logs out everywhere
    else: the revoked device's next request, on every process, opens nothing."""
    cookies = []
    for i in range(2):
        outcome = await apps.client(i).fetch("/login?user=ada", method="POST")
        assert outcome.code == 200
        assert outcome.response is not None
        cookies.append(outcome.response.cookie_value())
    revoked, kept = cookies
    assert revoked
    assert kept
    for i in range(PROCESSES):
        assert (await apps.client(i).fetch("/r", cookie=revoked)).json()["loaded"]
    listed = await apps.client(2).fetch("/devices?user=ada")
    keep = session_handle(session_id_of(kept))
    assert sorted(listed.json()["handles"]) == sorted(
        session_handle(session_id_of(c)) for c in cookies
    )
    outcome = await apps.client(2).fetch(f"/revoke?user=ada&keep={keep}", method="POST")
    assert outcome.json() == {"revoked": 1}
    for i in range(PROCESSES):
        gone = await apps.client(i).fetch("/r", cookie=revoked)
        assert gone.code == 200
        assert not gone.json()["loaded"]
        assert not cleared(gone)  # opens nothing; not proven stale: left alone
        assert (await apps.client(i).fetch("/r", cookie=kept)).json()["loaded"]
