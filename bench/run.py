#!/usr/bin/env python3
"""The benchmark: what one request costs with tornado_mongo_session, against floors and peers.

``make bench`` runs this. In one run, against one MongoDB-compatible server (a private FerretDB
or mongod started here and stopped at the end, or ``$TORNADO_SESSION_MONGODB_URL``):

- bench/app.py, one Tornado process: the bare handler, the mixin (untouched, read, write,
  rotate, rotate+write; Mongo, memory and cookie stores), hand-written floors and the original
  library's design re-implemented on the same driver;
- peers, each in its own process: express-session + connect-mongo (Node.js) and Flask-Session's
  MongoDB backend (gunicorn), when ``make bench-deps`` installed them into bench/peers.

wrk (another process) drives each scenario at fixed concurrency for a fixed time, after a
warm-up. Each app counts the database commands its client sends (command monitoring) and its
own CPU time, so a row's commands and CPU per request come from the app, and its requests/s and
latency from wrk, all in the same run. The run prints the table and the targets (met or
MISSED), writes bench/results/ (results.json, table.md, performance.png, profiles) and, with
``--write-docs``, refreshes docs/performance.md and docs/performance.png. It exits 0 whether
or not a target is met: it reports, it does not gate.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import importlib.util
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
RESULTS = BENCH / "results"
PEERS = BENCH / "peers"
NODE_DIR = PEERS / "node"
PEER_VENV = PEERS / "venv"
DOCS = REPO / "docs"
HOST = "127.0.0.1"
POOL = 128  # sessions per scenario: each wrk thread cycles through 64 on its 16 connections

OURS = "tornado-mongo-session"
ORIGINAL = "original design"
EXPRESS = "express-session + connect-mongo"
FLASK = "Flask-Session (mongodb)"
FLOOR = "floor"

# Commands no design can avoid: a read is one find, a write a find and an update, and so is a
# rotation (the new token must be stored).
IRREDUCIBLE = {"untouched": 0, "read": 1, "write": 2, "rotate": 2, "rotate_write": 2}


@dataclass
class Scenario:
    key: str  # unique row id
    impl: str
    kind: str  # what it does: bare, untouched, read, write, rotate, ... (shared across impls)
    target: str  # which process/port: app, rotate, express, flask
    path: str
    setup: str | None = None  # path that creates one session (its Set-Cookie), if cookies needed
    track: str | None = None  # follow Set-Cookie: "dot" (<sid>.<token>), "at" (<token>@<sid>)
    bare: str | None = None  # key of the same framework's bare handler
    floor: str | None = None  # key of the hand-written floor
    note: str = ""


@dataclass
class Row:
    scenario: Scenario
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    app_requests: int
    misses: int
    commands: dict[str, int]
    cpu_us: float
    duration_s: float = 0.0
    cpu_s: float = 0.0
    rounds: int = 1
    vs_bare: float | None = None
    vs_floor: float | None = None

    @property
    def cmds_per_req(self) -> float:
        return sum(self.commands.values()) / self.app_requests if self.app_requests else 0.0

    def breakdown(self) -> str:
        if not self.app_requests or not self.commands:
            return "-"
        return " + ".join(
            f"{name} {count / self.app_requests:.2f}"
            for name, count in sorted(self.commands.items())
            if count / self.app_requests >= 0.005
        )


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[str]
    ports: dict[str, int] = field(default_factory=dict)


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def scenarios(have: dict[str, bool]) -> list[Scenario]:
    """Every row of the table, in the order they run."""
    s = Scenario
    # fmt: off
    rows = [
        s("bare", OURS, "bare", "app", "/bare", note="Tornado, no mixin"),
        s("untouched", OURS, "untouched", "app", "/untouched", bare="bare"),
        s("read", OURS, "read", "app", "/read", "/new", bare="bare", floor="floor_read"),
        s("write", OURS, "write", "app", "/write", "/new", bare="bare", floor="floor_write"),
        s("rotate", OURS, "rotate", "rotate", "/rotate", "/new", "dot", "bare", "floor_write"),
        s("rotate_write", OURS, "rotate_write", "rotate", "/rotate_write", "/new", "dot", "bare",
          "floor_write"),
    ]
    if have.get("cookie"):
        rows.append(s("cookie_read", OURS, "cookie read", "app", "/cookie/read", "/cookie/new",
                      bare="bare", note="CookieSessionStore"))
    if have.get("memory"):
        rows += [
            s("memory_read", OURS, "memory read", "app", "/memory/read", "/memory/new",
              bare="bare", note="MemorySessionStore"),
            s("memory_write", OURS, "memory write", "app", "/memory/write", "/memory/new",
              bare="bare", note="MemorySessionStore"),
            s("memory_rotate", OURS, "memory rotate", "rotate", "/memory/rotate", "/memory/new",
              "dot", "bare", note="MemorySessionStore"),
        ]
    rows += [
        s("floor_read", FLOOR, "read", "app", "/floor/read", "/new", bare="bare",
          note="one find_one by _id"),
        s("floor_write", FLOOR, "write", "app", "/floor/write", "/new", bare="bare",
          note="find_one + update_one"),
        s("original_untouched", ORIGINAL, "untouched", "app", "/original/untouched", bare="bare"),
        s("original_read", ORIGINAL, "read", "app", "/original/read", "/original/new",
          bare="bare", floor="floor_read"),
        s("original_write", ORIGINAL, "write", "app", "/original/write", "/original/new",
          bare="bare", floor="floor_write"),
        s("original_rotate", ORIGINAL, "rotate", "app", "/original/rotate", "/original/new",
          "at", "bare", "floor_write"),
        s("original_rotate_write", ORIGINAL, "rotate_write", "app", "/original/rotate_write",
          "/original/new", "at", "bare", "floor_write"),
    ]
    if have.get("express"):
        rows += [
            s("express_bare", EXPRESS, "bare", "express", "/bare", note="Express, no session"),
            s("express_untouched", EXPRESS, "untouched", "express", "/untouched",
              bare="express_bare"),
            s("express_read", EXPRESS, "read", "express", "/read", "/new", bare="express_bare"),
            s("express_write", EXPRESS, "write", "express", "/write", "/new", bare="express_bare"),
        ]
    if have.get("flask"):
        rows += [
            s("flask_bare", FLASK, "bare", "flask", "/plain/bare", note="Flask, no session"),
            s("flask_untouched", FLASK, "untouched", "flask", "/untouched", bare="flask_bare"),
            s("flask_read", FLASK, "read", "flask", "/read", "/new", bare="flask_bare"),
            s("flask_write", FLASK, "write", "flask", "/write", "/new", bare="flask_bare"),
        ]
    # fmt: on
    return rows


# -- processes ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def start(
    name: str,
    argv: list[str],
    *,
    cwd: Path,
    env: dict[str, str] | None = None,
    ready_line: bool = True,
) -> Proc:
    log(f"starting {name}")
    popen = subprocess.Popen(
        argv,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    proc = Proc(name, popen)
    if ready_line:
        assert popen.stdout is not None
        deadline = time.monotonic() + 60
        lines = []
        while time.monotonic() < deadline:
            line = popen.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("READY"):
                proc.ready_info = line[5:].strip()  # type: ignore[attr-defined]
                _drain(popen, name)
                return proc
        stop(proc)
        raise RuntimeError(f"{name} did not start:\n{''.join(lines[-30:])}")
    _drain(popen, name)
    return proc


CHILD_ERRORS: Counter[str] = Counter()
_EXCEPTION_LINE = re.compile(r"^[\w.]+(Error|Exception|Exit)\b.*|.*\b(ERROR|Error:)\s.*")


def _drain(popen: subprocess.Popen[str], name: str) -> None:
    """Read a child's output so it never blocks on a full pipe; tally the errors it logs."""

    def pump() -> None:
        assert popen.stdout is not None
        for line in popen.stdout:
            line = line.strip()
            if _EXCEPTION_LINE.match(line):
                CHILD_ERRORS[f"{name}: {line[:160]}"] += 1

    threading.Thread(target=pump, daemon=True).start()


def stop(proc: Proc) -> None:
    """SIGTERM the process (by its pid), then SIGKILL if it has not exited in 5 s."""
    popen = proc.popen
    if popen.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(popen.pid, signal.SIGTERM)
    try:
        popen.wait(timeout=5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(popen.pid, signal.SIGKILL)
        popen.wait(timeout=5)
    log(f"stopped {proc.name} (pid {popen.pid})")


def http_get(
    port: int, path: str, cookie: str | None = None, conn: http.client.HTTPConnection | None = None
) -> tuple[int, str, str | None]:
    own = conn is None
    conn = conn or http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        conn.request("GET", path, headers={"Cookie": cookie} if cookie else {})
        response = conn.getresponse()
        body = response.read().decode("utf-8", "replace")
        return response.status, body, response.getheader("Set-Cookie")
    finally:
        if own:
            conn.close()


def wait_http(port: int, path: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, http.client.HTTPException):
            if http_get(port, path)[0] == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"nothing answered 200 on {HOST}:{port}{path}")


def stats(port: int, path: str = "/_stats") -> dict[str, Any]:
    status, body, _ = http_get(port, path)
    if status != 200:
        raise RuntimeError(f"{path} answered {status}: {body[:200]}")
    return dict(json.loads(body))


def make_pool(port: int, path: str, count: int) -> list[str]:
    """Create ``count`` sessions through the app; return their ``name=value`` cookie pairs."""
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    cookies = []
    try:
        for _ in range(count):
            status, body, set_cookie = http_get(port, path, conn=conn)
            if status != 200 or not set_cookie:
                raise RuntimeError(f"{path} answered {status} without a cookie: {body[:200]}")
            cookies.append(set_cookie.split(";", 1)[0].strip())
    finally:
        conn.close()
    return cookies


# -- wrk ---------------------------------------------------------------------------------------

_LUA = r"""
-- Generated by bench/run.py. Every scenario uses the same request()/response() functions so wrk
-- does the same work per request whatever the scenario; only the cookies differ.
local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
end

local function session_key(pair)
  local value = pair:match("=(.*)$") or ""
  value = value:gsub('"', "")
  if track == "at" then return value:match("@(.*)$") end
  return value:match("^([^.]*)")
end

function init(args)
  cookies = {}
  index = {}
  track = args[3]
  local nthreads = tonumber(args[2])
  if args[1] ~= "-" then
    local i = 0
    for line in io.lines(args[1]) do
      if i % nthreads == tid - 1 then
        cookies[#cookies + 1] = line
        index[session_key(line)] = #cookies
      end
      i = i + 1
    end
  end
  pos = 1
end

function request()
  local headers = {}
  if #cookies > 0 then
    headers["Cookie"] = cookies[pos]
    pos = pos % #cookies + 1
  end
  return wrk.format(nil, nil, headers)
end

function response(status, headers, body)
  if track ~= "-" then
    local value = headers["Set-Cookie"]
    if value then
      local pair = value:match("^([^;]+)")
      local at = index[session_key(pair)]
      if at then cookies[at] = pair end
    end
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, '
    .. '"status": %d, "timeout": %d, "p50_us": %d, "p99_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean))
end
"""


def run_wrk(
    url: str, seconds: int, cookie_file: Path | None, track: str | None, args: argparse.Namespace
) -> dict[str, Any]:
    script = RESULTS / "wrk-session.lua"
    if not script.exists():
        script.write_text(_LUA)
    argv = [
        args.wrk,
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{seconds:g}s",
        "--timeout",
        "5s",
        "-s",
        str(script),
        url,
        "--",
        str(cookie_file) if cookie_file else "-",
        str(args.threads),
        track or "-",
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30, check=False)
    for line in done.stdout.splitlines():
        if line.startswith("WRK_JSON "):
            return dict(json.loads(line[len("WRK_JSON ") :]))
    raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout[-800:]}{done.stderr[-800:]}")


class Sessions:
    """The session collections of every implementation, emptied before each pool is made.

    Every scenario starts from the same size: its own POOL sessions (plus what the scenario
    itself inserts). On the default server (FerretDB 2.5 on PostgreSQL + DocumentDB) and on
    MongoDB a request's commands are ``_id`` index lookups, which the size barely moves; on the
    fallback, FerretDB 1.24 on SQLite, every find and update scans the collection, so there the
    size is what the figures depend on most.
    """

    def __init__(self, url: str) -> None:
        from pymongo import MongoClient

        self.client: Any = MongoClient(url, serverSelectionTimeoutMS=5000)
        self.collections = [
            self.client["tms_bench"]["sessions"],
            self.client["tms_bench"]["original_sessions"],
            self.client["tms_bench_express"]["sessions"],
            self.client["tms_bench_flask"]["sessions"],
        ]

    def clear(self) -> None:
        for collection in self.collections:
            collection.delete_many({})

    def close(self) -> None:
        self.client.close()


def quiescent(port: int, timeout: float = 30.0) -> dict[str, Any]:
    """Wait until the app has finished what wrk left in flight; return its stats then.

    wrk exits with requests still queued in the app, which go on to finish and send commands.
    A snapshot counts only once two reads 0.3 s apart agree.
    """
    last = stats(port)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = stats(port)
        if now["requests"] == last["requests"] and now["commands"] == last["commands"]:
            return now
        last = now
    log(f"port {port} still busy after {timeout:g} s; counting from here")
    return last


def fresh_pool(sc: Scenario, port: int, sessions: Sessions) -> Path | None:
    """Empty the collections and, for a scenario with cookies, create its POOL sessions."""
    quiescent(port)
    sessions.clear()
    if not sc.setup:
        return None
    cookie_file = RESULTS / "cookies.txt"
    cookie_file.write_text("\n".join(make_pool(port, sc.setup, POOL)) + "\n")
    return cookie_file


def measure(
    sc: Scenario,
    port: int,
    args: argparse.Namespace,
    sessions: Sessions,
    *,
    warm: bool = True,
    seconds: int | None = None,
) -> Row:
    """One wrk run of a scenario (after a warm-up if ``warm``), with the app's counts around it."""
    url = f"http://{HOST}:{port}{sc.path}"
    if warm and args.warmup > 0:
        run_wrk(url, args.warmup, fresh_pool(sc, port, sessions), sc.track, args)
    # Fresh sessions: the warm-up rotated, touched or inserted some.
    cookie_file = fresh_pool(sc, port, sessions)
    before = quiescent(port)
    result = run_wrk(url, seconds or args.duration, cookie_file, sc.track, args)
    after = quiescent(port)
    commands = {
        name: after["commands"].get(name, 0) - before["commands"].get(name, 0)
        for name in set(after["commands"]) | set(before["commands"])
    }
    app_requests = after["requests"] - before["requests"]
    cpu_s = after["cpu_s"] - before["cpu_s"]
    duration_s = result["duration_us"] / 1e6
    return Row(
        scenario=sc,
        rps=result["requests"] / duration_s,
        p50_ms=result["p50_us"] / 1000,
        p99_ms=result["p99_us"] / 1000,
        requests=result["requests"],
        errors=sum(result[k] for k in ("connect", "read", "write", "status", "timeout")),
        app_requests=app_requests,
        misses=after["misses"] - before["misses"],
        commands={k: v for k, v in commands.items() if v},
        cpu_us=cpu_s / max(app_requests, 1) * 1e6,
        duration_s=duration_s,
        cpu_s=cpu_s,
    )


def combine(samples: list[Row]) -> Row:
    """One row from several runs of a scenario: totals summed; latency weighted by requests."""
    if len(samples) == 1:
        return samples[0]
    requests = sum(r.requests for r in samples) or 1
    app_requests = sum(r.app_requests for r in samples)
    commands: Counter[str] = Counter()
    for r in samples:
        commands.update(r.commands)
    cpu_s = sum(r.cpu_s for r in samples)
    duration_s = sum(r.duration_s for r in samples)
    return Row(
        scenario=samples[0].scenario,
        rps=sum(r.requests for r in samples) / duration_s,
        p50_ms=sum(r.p50_ms * r.requests for r in samples) / requests,
        p99_ms=sum(r.p99_ms * r.requests for r in samples) / requests,
        requests=sum(r.requests for r in samples),
        errors=sum(r.errors for r in samples),
        app_requests=app_requests,
        misses=sum(r.misses for r in samples),
        commands=dict(commands),
        cpu_us=cpu_s / max(app_requests, 1) * 1e6,
        duration_s=duration_s,
        cpu_s=cpu_s,
        rounds=len(samples),
    )


# Rows compared with each other run as a group in mirrored order (A-B-C-C-B-A), half the
# duration each, so drift in the machine's load (shared with wrk, the server and anything else)
# cancels out of their ratios. The first of each group is the reference.
GROUPS = [
    ("bare", "untouched"),
    ("floor_read", "read"),
    ("floor_write", "write"),
    ("express_bare", "express_untouched"),
    ("flask_bare", "flask_untouched"),
]


def schedule(plan: list[Scenario]) -> list[tuple[Scenario, bool, float]]:
    """The runs, in order: ``(scenario, warm up first, share of --duration)``."""
    by_key = {sc.key: sc for sc in plan}
    group_of = {key: group for group in GROUPS for key in group}
    runs: list[tuple[Scenario, bool, float]] = []
    done: set[str] = set()
    for sc in plan:
        if sc.key in done:
            continue
        members = [by_key[k] for k in group_of.get(sc.key, (sc.key,)) if k in by_key]
        if len(members) < 2:
            runs.append((sc, True, 1.0))
        else:
            runs += [(m, True, 0.5) for m in members]
            runs += [(m, False, 0.5) for m in reversed(members)]
        done |= {m.key for m in members}
    return runs


def report_row(row: Row) -> None:
    sc = row.scenario
    flag = ""
    if row.errors or row.misses:
        flag = f"  (!) {row.errors} wrk errors/non-2xx, {row.misses} sessions not found"
    log(
        f"{sc.impl:32} {sc.kind:14} {row.rps:8.0f} req/s  p50 {row.p50_ms:6.2f} ms  "
        f"p99 {row.p99_ms:6.2f} ms  {row.cmds_per_req:4.2f} cmd/req  {row.cpu_us:6.0f} µs CPU"
        f"{flag}"
    )


# -- reporting ---------------------------------------------------------------------------------


def fill_ratios(rows: list[Row]) -> None:
    by_key = {row.scenario.key: row for row in rows}
    for row in rows:
        bare = by_key.get(row.scenario.bare or "")
        floor = by_key.get(row.scenario.floor or "")
        if bare and row is not bare:
            row.vs_bare = row.rps / bare.rps
        if floor and row is not floor:
            row.vs_floor = row.rps / floor.rps


def table(rows: list[Row]) -> str:
    head = (
        "| implementation | scenario | req/s | p50 ms | p99 ms | commands/req | "
        "app CPU µs/req | vs bare | vs floor |"
    )
    lines = [head, "|" + "---|" * 9]
    for row in rows:
        sc = row.scenario
        kind = sc.kind + (f" ({sc.note})" if sc.note and sc.impl != "floor" else "")
        if sc.impl == "floor":
            kind = f"{sc.kind} floor ({sc.note})"
        cmds = f"{row.cmds_per_req:.2f}"
        if row.commands:
            cmds += f" ({row.breakdown()})"
        lines.append(
            f"| {sc.impl} | {kind} | {row.rps:,.0f} | {row.p50_ms:.2f} | {row.p99_ms:.2f} | "
            f"{cmds} | {row.cpu_us:,.0f} | "
            f"{'' if row.vs_bare is None else f'{row.vs_bare:.2f}x'} | "
            f"{'' if row.vs_floor is None else f'{row.vs_floor:.2f}x'} |"
        )
    return "\n".join(lines)


def targets(rows: list[Row]) -> tuple[list[tuple[bool, str]], dict[str, float]]:
    """The issue's targets, each ``(met, text)``; and the library CPU per request figures."""
    by = {row.scenario.key: row for row in rows}
    out: list[tuple[bool, str]] = []

    def ratio(key: str, ref: str, minimum: float, what: str) -> None:
        if key not in by or ref not in by:
            out.append((False, f"{what}: not measured"))
            return
        value = by[key].rps / by[ref].rps
        out.append((value >= minimum, f"{what}: {value:.2f}x (target >= {minimum}x)"))

    ratio("untouched", "bare", 0.95, "untouched vs bare handler")
    ratio("read", "floor_read", 0.8, "read vs its floor (one find_one)")
    ratio("write", "floor_write", 0.8, "write vs its floor (find_one + update_one)")
    for key, want in (("untouched", 0), ("read", 1), ("write", 2), ("cookie_read", 0)):
        if key not in by:
            out.append((False, f"commands/request, {key}: not measured"))
            continue
        got = by[key].cmds_per_req
        out.append((abs(got - want) < 0.005, f"commands/request, {key}: {got:.2f} (target {want})"))
    for impl in (ORIGINAL, EXPRESS, FLASK):
        theirs = {row.scenario.kind: row for row in rows if row.scenario.impl == impl}
        if not theirs:
            out.append((False, f"fewer commands than {impl}: peer not run"))
            continue
        for kind, other in theirs.items():
            mine = by.get(kind)
            if mine is None or kind == "bare":
                continue
            a, b = mine.cmds_per_req, other.cmds_per_req
            floor = IRREDUCIBLE.get(kind)
            if a < b - 0.005:
                out.append((True, f"fewer commands than {impl}, {kind}: {a:.2f} < {b:.2f}"))
            elif abs(a - b) < 0.005 and floor is not None and abs(a - floor) < 0.005:
                out.append(
                    (
                        True,
                        f"fewer commands than {impl}, {kind}: {a:.2f} = {b:.2f}, "
                        f"both at the irreducible {floor} (none can do fewer)",
                    )
                )
            else:
                out.append((False, f"fewer commands than {impl}, {kind}: {a:.2f} vs {b:.2f}"))
    cpu: dict[str, float] = {}
    bare = by.get("bare")
    if bare is not None:
        for key, label in (
            ("untouched", "untouched"),
            ("memory_read", "read"),
            ("memory_write", "write"),
            ("memory_rotate", "rotate"),
        ):
            if key in by:
                cpu[label] = by[key].cpu_us - bare.cpu_us
    return out, cpu


def machine(args: argparse.Namespace, server: dict[str, str]) -> dict[str, str]:
    def cmd(argv: list[str]) -> str:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
            return (done.stdout or done.stderr).strip().splitlines()[0]
        return "n/a"

    cpu_model = "n/a"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    mem = "n/a"
    with contextlib.suppress(OSError, ValueError, IndexError):
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.0f} GiB"
    import pymongo
    import tornado

    return {
        "cpu": f"{cpu_model}, {os.cpu_count()} cores",
        "memory": mem,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "tornado": tornado.version,
        "pymongo": pymongo.version,
        "server": server.get("desc", "n/a"),
        "wrk": cmd([args.wrk, "-v"]).split(" Copyright")[0],
        "node": cmd(["node", "--version"]),
        "load": f"wrk -t{args.threads} -c{args.connections}, {args.warmup:g} s warm-up + "
        f"{args.duration:g} s per scenario, all processes on this machine",
    }


def chart(rows: list[Row], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib is missing (make bench-deps installs it): no chart")
        return False
    colors = {
        OURS: "#2a7ab0",
        FLOOR: "#9e9e9e",
        ORIGINAL: "#d9822b",
        EXPRESS: "#6a9f3a",
        FLASK: "#8e5ea2",
    }
    labels = [f"{row.scenario.impl}: {row.scenario.kind}" for row in rows]
    values = [row.rps for row in rows]
    fig, ax = plt.subplots(figsize=(10, 0.34 * len(rows) + 1.4))
    bars = ax.barh(
        range(len(rows)), values, color=[colors.get(row.scenario.impl, "#555") for row in rows]
    )
    ax.set_yticks(range(len(rows)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("requests/s, log scale (higher is better)")
    ax.set_title(
        "Requests/s per scenario, one run; label: database commands per request", fontsize=10
    )
    for bar, row in zip(bars, rows, strict=True):
        ax.text(
            bar.get_width(),
            bar.get_y() + bar.get_height() / 2,
            f" {row.rps:,.0f}  ({row.cmds_per_req:.2f} cmd)",
            va="center",
            fontsize=7,
        )
    ax.set_xlim(min(values) / 1.5, max(values) * 4)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


PROFILED = [
    ("pyinstrument", "read", "/read", "/new"),
    ("pyinstrument", "write", "/write", "/new"),
    ("pyinstrument", "memory-read", "/memory/read", "/memory/new"),
    ("pyinstrument", "memory-write", "/memory/write", "/memory/new"),
    ("cprofile", "memory-read", "/memory/read", "/memory/new"),
    ("cprofile", "memory-write", "/memory/write", "/memory/new"),
]


def profile(
    port: int, args: argparse.Namespace, sessions: Sessions, have: dict[str, bool]
) -> list[dict[str, Any]]:
    """Profile the app's event-loop thread while wrk drives a scenario (after the table)."""
    out = []
    for kind, name, path, setup in PROFILED:
        if kind == "pyinstrument" and importlib.util.find_spec("pyinstrument") is None:
            log("pyinstrument is missing (make bench-deps installs it): skipped")
            continue
        if path.startswith("/memory") and not have.get("memory"):
            continue
        cookie_file = fresh_pool(Scenario(name, OURS, name, "app", path, setup), port, sessions)
        http_get(port, f"/_profile/start?kind={kind}")
        run_wrk(f"http://{HOST}:{port}{path}", args.profile_seconds, cookie_file, None, args)
        quiescent(port)
        status, body, _ = http_get(port, f"/_profile/stop?name={name}")
        if status == 200:
            out.append(json.loads(body))
        log(f"profiled {name} with {kind}")
    return out


def write_docs(report: str, png: Path) -> None:
    doc = DOCS / "performance.md"
    start, end = "<!-- bench:results:start -->", "<!-- bench:results:end -->"
    text = doc.read_text() if doc.exists() else f"# Performance\n\n{start}\n{end}\n"
    if start not in text or end not in text:
        text += f"\n{start}\n{end}\n"
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    doc.write_text(f"{head}{start}\n{report}\n{end}{tail}")
    if png.exists():
        shutil.copyfile(png, DOCS / "performance.png")
    log(f"wrote {doc.relative_to(REPO)} and docs/performance.png")


def start_peer(target: str, port: int, url: str) -> Proc:
    """Start the express or Flask peer on ``port``; return once it answers."""
    if target == "express":
        argv = ["node", str(BENCH / "peers_src/express_app.js"), str(port), url]
        return start("express peer", [*argv, "tms_bench_express"], cwd=NODE_DIR)
    if target != "flask":
        raise ValueError(f"unknown target {target!r}")
    proc = start(
        "Flask peer (gunicorn, 1 worker, 8 threads)",
        [
            str(PEER_VENV / "bin/gunicorn"),
            *("-k", "gthread", "-w", "1", "--threads", "8", "--no-control-socket"),
            *("--log-level", "warning", "-b", f"{HOST}:{port}"),
            *("--chdir", str(BENCH / "peers_src"), "flask_app:app"),
        ],
        cwd=REPO,
        env={"BENCH_MONGO_URL": url, "BENCH_DB": "tms_bench_flask"},
        ready_line=False,
    )
    try:
        wait_http(port, "/plain/bare")
    except RuntimeError:
        stop(proc)
        raise
    return proc


# -- main --------------------------------------------------------------------------------------


def load_mongo_server() -> Any:
    spec = importlib.util.spec_from_file_location("mongo_server", REPO / "scripts/mongo_server.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["mongo_server"] = module
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def mongo(args: argparse.Namespace) -> Iterator[dict[str, str]]:
    url = args.mongo_url or os.environ.get("TORNADO_SESSION_MONGODB_URL")
    if url:
        yield {"url": url, "desc": describe_server(url, "given by TORNADO_SESSION_MONGODB_URL")}
        return
    ms = load_mongo_server()
    server = ms.PrivateServer()
    log("starting a private MongoDB-compatible server (scripts/mongo_server.py)")
    url = server.start()
    try:
        yield {"url": url, "desc": describe_server(url, f"{server.kind}, private to this run")}
    finally:
        server.close()
        log("stopped the private server")


def describe_server(url: str, how: str) -> str:
    from pymongo import MongoClient

    client: MongoClient[dict[str, Any]]
    with MongoClient(url, serverSelectionTimeoutMS=5000) as client:
        info = client.admin.command("buildInfo")
    # FerretDB 1.x answers with ferretdbVersion: the fallback server, which
    # scripts/mongo_server.py runs on SQLite; FerretDB 2 (the default) with a "ferretdb" document.
    if "ferretdbVersion" in info:
        return f"FerretDB {info['ferretdbVersion']} (SQLite), {how}"
    if isinstance(info.get("ferretdb"), dict):
        version = info["ferretdb"].get("version", "?")
        return f"FerretDB {version} (PostgreSQL + DocumentDB), {how}"
    return f"MongoDB {info.get('version', '?')}, {how}"


def drop(url: str, names: list[str]) -> None:
    from pymongo import MongoClient

    client: MongoClient[dict[str, Any]]
    with MongoClient(url, serverSelectionTimeoutMS=5000) as client:
        for name in names:
            client.drop_database(name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # wrk takes whole seconds.
    parser.add_argument("--duration", type=int, default=5, help="seconds measured per scenario")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per scenario")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--profile-seconds", type=int, default=3)
    parser.add_argument("--no-peers", action="store_true", help="skip express and Flask")
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument("--only", default="", help="comma-separated scenario keys (debugging)")
    parser.add_argument("--mongo-url", default="")
    parser.add_argument(
        "--library-path",
        type=Path,
        default=None,
        help="import tornado_mongo_session from this folder (A/B a change without editing it)",
    )
    parser.add_argument("--wrk", default=shutil.which("wrk") or "wrk")
    parser.add_argument(
        "--write-docs",
        action="store_true",
        help="refresh docs/performance.md's results block and docs/performance.png",
    )
    args = parser.parse_args()
    if shutil.which(args.wrk) is None:
        log("wrk is not installed: run `make bench-deps` (apt-get install wrk)")
        return 2
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "wrk-session.lua").write_text(_LUA)
    have = {
        "express": not args.no_peers
        and (NODE_DIR / "node_modules/connect-mongo").is_dir()
        and shutil.which("node") is not None,
        "flask": not args.no_peers and (PEER_VENV / "bin/gunicorn").exists(),
    }
    for peer in ("express", "flask"):
        if not have[peer] and not args.no_peers:
            log(f"{peer} peer not installed (make bench-deps): skipped")
    databases = ["tms_bench", "tms_bench_express", "tms_bench_flask"]
    started = time.monotonic()
    procs: list[Proc] = []
    rows: list[Row] = []
    profiles: list[dict[str, Any]] = []
    inproc: dict[str, Any] = {}
    with mongo(args) as server:
        url = server["url"]
        drop(url, databases)
        sessions = Sessions(url)
        try:
            ports = {"app": free_port(), "rotate": free_port()}
            app = start(
                "bench/app.py",
                [
                    sys.executable,
                    str(BENCH / "app.py"),
                    "--mongo-url",
                    url,
                    "--db",
                    "tms_bench",
                    "--port",
                    str(ports["app"]),
                    "--rotate-port",
                    str(ports["rotate"]),
                    "--profile-dir",
                    str(RESULTS),
                ],
                cwd=REPO,
                env={"PYTHONPATH": str(args.library_path or REPO)},
            )
            procs.append(app)
            have.update(json.loads(getattr(app, "ready_info", "{}") or "{}"))
            log(f"library under test: {have.get('library')}")
            if not have.get("memory"):
                log("MemorySessionStore not found: library CPU per request is pending")
            plan = scenarios(have)
            if args.only:
                keep = set(args.only.split(","))
                plan = [sc for sc in plan if sc.key in keep]
            samples: dict[str, list[Row]] = {}
            for sc, warm, share in schedule(plan):
                if sc.target not in ports:
                    ports[sc.target] = free_port()
                    procs.append(start_peer(sc.target, ports[sc.target], url))
                # The rotating app answers /_stats too, from the same process.
                sample = measure(
                    sc,
                    ports[sc.target],
                    args,
                    sessions,
                    warm=warm,
                    seconds=max(1, math.ceil(args.duration * share)),
                )
                report_row(sample)
                samples.setdefault(sc.key, []).append(sample)
            rows = [combine(samples[sc.key]) for sc in plan]
            if not args.no_profile and not args.only:
                profiles = profile(ports["app"], args, sessions, have)
            if not args.only:
                inproc = library_cpu(args)
        finally:
            for proc in reversed(procs):
                stop(proc)
            sessions.close()
            with contextlib.suppress(Exception):
                drop(url, databases)
        info = machine(args, server)
    fill_ratios(rows)
    checks, cpu = targets(rows)
    for name, row in (inproc.get("ratios") or {}).items():
        checks.append(
            (
                bool(row["met"]),
                f"library CPU, {name} (bench/cpu.py, 10-key session): "
                f"{row['ratio']:+.2f}x the bare handler's, target <= {row['target']:.2f}x",
            )
        )
    report = render(rows, checks, cpu, inproc, profiles, info, time.monotonic() - started)
    print(report)
    (RESULTS / "table.md").write_text(report + "\n")
    (RESULTS / "results.json").write_text(
        json.dumps(
            {
                "machine": info,
                "rows": [
                    {
                        **asdict(row.scenario),
                        **{k: v for k, v in asdict(row).items() if k != "scenario"},
                        "commands_per_request": row.cmds_per_req,
                    }
                    for row in rows
                ],
                "targets": [{"met": met, "text": text} for met, text in checks],
                "library_cpu_us_wrk": cpu,
                "library_cpu_in_process": inproc,
                "profiles": profiles,
            },
            indent=2,
            default=str,
        )
    )
    png = RESULTS / "performance.png"
    chart(rows, png)
    if args.write_docs:
        write_docs(report, png)
    log(f"results in {RESULTS.relative_to(REPO)}/ ({time.monotonic() - started:.0f} s)")
    return 0


def library_cpu(args: argparse.Namespace) -> dict[str, Any]:
    """Run bench/cpu.py (the library's CPU per request, in one process, memory store)."""
    log("measuring the library's own CPU per request (bench/cpu.py)")
    done = subprocess.run(
        [sys.executable, str(BENCH / "cpu.py")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(args.library_path or REPO)},
    )
    try:
        return dict(json.loads(done.stdout.strip().splitlines()[-1]))
    except (json.JSONDecodeError, IndexError):
        return {"pending": f"bench/cpu.py failed: {done.stderr[-500:]}"}


def render(
    rows: list[Row],
    checks: list[tuple[bool, str]],
    cpu: dict[str, float],
    inproc: dict[str, Any],
    profiles: list[dict[str, Any]],
    info: dict[str, str],
    elapsed: float,
) -> str:
    out = ["### Machine", ""]
    out += [f"- {name}: {value}" for name, value in info.items()]
    out += ["", f"### Results ({time.strftime('%Y-%m-%d')}, one run, {elapsed:.0f} s)", ""]
    out.append(table(rows))
    problems = [row for row in rows if row.errors or row.misses]
    if problems:
        out.append("")
        for row in problems:
            out.append(
                f"(!) {row.scenario.impl} {row.scenario.kind}: {row.errors} wrk errors or "
                f"non-2xx responses, {row.misses} valid cookies that opened no session"
            )
    if CHILD_ERRORS:
        out += ["", "Errors the app processes logged during the run (count, first line):", ""]
        out += [f"- {count} x {line}" for line, count in CHILD_ERRORS.most_common(8)]
    out += ["", "### Targets", ""]
    for met, text in checks:
        out.append(f"- {'met   ' if met else 'MISSED'} {text}")
    out += ["", "### The library's own CPU time per request", ""]
    lib = inproc.get("library_cpu_us") or {}
    if lib:
        bare_us = inproc.get("cpu_us_per_request", {}).get("bare", 0)
        out.append(
            "CPU per request minus the bare handler's, with a 10-key session in "
            "MemorySessionStore (no round trip to wait on) or CookieSessionStore. "
            f"bench/cpu.py ({inproc.get('method')}; bare handler {bare_us:.0f} µs): the extra "
            "as a multiple of the bare handler's CPU against its target; Tornado's share of it "
            "(parsing the session's Cookie header, writing the response's session headers: a "
            "handler without the library, sent the same cookie and answering with the same "
            "headers) and so the library's own; and, as a cross-check, the same difference from "
            "the wrk runs above (app-process CPU, noisier; their session holds 2 keys):"
        )
        out += [
            "",
            "| scenario | bench/cpu.py µs | Tornado's share µs | library's own µs | x bare "
            "| target | | wrk runs µs |",
            "|---|---|---|---|---|---|---|---|",
        ]
        ratios = inproc.get("ratios") or {}
        share = inproc.get("tornado_share_us") or {}
        own = inproc.get("library_own_us") or {}
        for name, value in lib.items():
            wrk_value = cpu.get(name)
            shown = "" if wrk_value is None else f"{wrk_value:,.0f}"
            split = (
                f"{share[name]:,.0f} | {own[name]:,.0f}" if name in share and name in own else " | "
            )
            row = ratios.get(name)
            judged = (
                f"{row['ratio']:+.2f}x | ≤ {row['target']:.2f}x | "
                f"{'met' if row['met'] else 'MISSED'}"
                if row
                else " | | "
            )
            out.append(f"| {name} | {value:,.0f} | {split} | {judged} | {shown} |")
    else:
        out.append(f"pending: {inproc.get('pending', 'not measured (--only)')}")
    if profiles:
        out += ["", "### Profile (pyinstrument: busy time of the event-loop thread)", ""]
        for prof in profiles:
            if prof.get("kind") != "pyinstrument":
                continue
            shares = ", ".join(f"{k} {v:.0%}" for k, v in prof.get("self_time_share", {}).items())
            out.append(
                f"- {prof['name']} (busy {prof.get('busy_s', 0):.2f} s, waiting "
                f"{prof.get('idle_s', 0):.2f} s): {shares}"
            )
            for name, share in prof.get("library_top", [])[:6]:
                out.append(f"  - {share:.1%} {name}")
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
