#!/usr/bin/env python3
"""How cost grows: stored sessions, session size, concurrency, processes, rotation (issue 14).

``make bench-scale`` runs this: one run, bounded by ``--budget-min`` (default 25 minutes), on
one MongoDB-compatible server (a private one started here and stopped at the end, as bench/run.py
does, or ``$TORNADO_SESSION_MONGODB_URL``). Four parts, in this order:

1. Stored sessions: realistic documents bulk-inserted with PyMongo in the store's format, 10³
   to 10⁶ (cumulative); at each count, wrk against the app for read, write and rotate, the
   collection's sizes (``collStats``) and ``purge_expired`` with 10 % of them expired.
2. Session size: 1 to 1,000 keys and 1 to 256 KiB: the library's CPU per request in one process
   (memory and Mongo store), then read and write through wrk for this library, express-session +
   connect-mongo and Flask-Session.
3. Concurrency: 1 to 256 connections on one app process, then 1 to 4 app processes on one port;
   the CPU of every process involved (app, FerretDB, PostgreSQL) from /proc, and the pool.
4. The rotation's load: simulated users at the default settings; writes/s per active user.

A point that does not fit the time left (each later part's estimate is reserved) is cut, and the
report says which and why. Results go to bench/results/scale/ (results.json, scaling.md, charts;
``--quick``: bench/results/scale-quick/);
``--write-docs`` also writes docs/scaling.md and docs/scaling-*.png. Exits 0: it reports.
bench/run.py's helpers (processes, wrk, peers, the server) are imported, not copied.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import math
import os
import random
import shutil
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import bson

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as bench_run
import scale_procs as procs
import scale_report
from cpu import realistic_session
from scale_cpu import cpu_by_size
from scale_data import stored_document
from scale_rotation import Group, lead_in_s, rotation_load

from tornado_mongo_session import MongoSessionStore
from tornado_mongo_session.tokens import encode_cookie, hash_token, new_session_id, new_token

REPO = bench_run.REPO
BENCH = bench_run.BENCH
HOST = bench_run.HOST
RESULTS = bench_run.RESULTS / "scale"
log = bench_run.log

IDLE = timedelta(hours=2)  # SessionSettings.idle_timeout's default
PURGE_AHEAD = timedelta(hours=1)
"""purge_expired(now=now + 1 h): the 10 % due within the hour count as expired, so FerretDB's
TTL job (which deletes by the real clock, once a minute) cannot delete them first."""
SOON = timedelta(minutes=30)
POOL = 64  # sessions per implementation and size in part 2 (as bench/run.py's pools)


@dataclass
class Plan:
    """What the run measures; ``--quick`` shrinks every axis."""

    levels: list[int]
    sample: int  # sessions with a cookie per stored-sessions level
    probe: int  # sessions found and updated one at a time per level (never given a cookie)
    sizes: list[tuple[str, int, int]]  # (label, keys, KiB)
    connections: list[int]
    processes: list[int]
    process_connections: int
    connections_sessions: int  # documents in the concurrency part's collection
    warmup: int
    duration: int
    size_connections: int
    cpu_repeats: int
    cpu_batch_s: float
    rotation_seconds: float
    rotation_groups: list[Group]

    @classmethod
    def make(cls, quick: bool) -> Plan:
        if quick:
            return cls(
                levels=[1_000, 5_000],
                sample=200,
                probe=200,
                sizes=[("1 key", 1, 0), ("100 keys", 100, 0), ("16 KiB", 1, 16)],
                connections=[1, 16, 128],
                processes=[1, 2],
                process_connections=32,
                connections_sessions=2_000,
                warmup=1,
                duration=1,
                size_connections=8,
                cpu_repeats=2,
                cpu_batch_s=0.05,
                rotation_seconds=8,
                rotation_groups=[Group(5.0, 1.0, 10), Group(5.0, 7.0, 10)],
            )
        return cls(
            levels=[1_000, 10_000, 100_000, 1_000_000],
            sample=2_000,
            probe=1_000,
            sizes=[
                ("1 key", 1, 0),
                ("10 keys", 10, 0),
                ("100 keys", 100, 0),
                ("1,000 keys", 1000, 0),
                ("1 KiB", 1, 1),
                ("4 KiB", 1, 4),
                ("16 KiB", 1, 16),
                ("64 KiB", 1, 64),
                ("256 KiB", 1, 256),
            ],
            connections=[1, 4, 16, 64, 256],
            processes=[1, 2, 3, 4],
            process_connections=64,
            connections_sessions=10_000,
            warmup=2,
            duration=5,
            size_connections=8,
            cpu_repeats=5,
            cpu_batch_s=0.15,
            rotation_seconds=40,
            rotation_groups=[Group(5.0, 1.0, 25), Group(5.0, 10.0, 25), Group(15.0, 1.0, 25)],
        )

    def run_s(self) -> float:
        """One measured wrk run with its warm-up and the quiet periods around it."""
        return self.warmup + self.duration + 2.5


@dataclass
class Budget:
    """The run's time limit; a point that does not fit is cut, and said so."""

    total_s: float
    started: float = field(default_factory=time.monotonic)
    cuts: list[str] = field(default_factory=list)

    def left(self) -> float:
        return self.total_s - (time.monotonic() - self.started)

    def fits(self, what: str, need_s: float, reserve_s: float = 0.0) -> bool:
        if need_s + reserve_s <= self.left():
            return True
        self.cuts.append(
            f"{what}: cut; it needed about {need_s:.0f} s and {self.left():.0f} s of the "
            f"{self.total_s / 60:.0f}-minute budget were left, {reserve_s:.0f} s of them "
            "reserved for the parts after it"
        )
        log(self.cuts[-1])
        return False


# -- the server and the processes --------------------------------------------------------------


@dataclass
class Server:
    url: str
    desc: str
    pid: int | None = None  # FerretDB (or mongod)
    storage_pid: int | None = None  # FerretDB 2's PostgreSQL postmaster

    @property
    def port(self) -> int:
        return urllib.parse.urlsplit(self.url).port or 27017

    def cpu_groups(self) -> dict[str, tuple[list[int], bool]]:
        groups: dict[str, tuple[list[int], bool]] = {}
        if self.pid:
            groups["server"] = ([self.pid], False)
        if self.storage_pid:
            groups["postgres"] = ([self.storage_pid], True)
        return groups


@contextlib.contextmanager
def server(url: str) -> Iterator[Server]:
    """The given server, or a private one (scripts/mongo_server.py) stopped at the end."""
    if url:
        yield Server(url, bench_run.describe_server(url, "given by TORNADO_SESSION_MONGODB_URL"))
        return
    private = bench_run.load_mongo_server().PrivateServer()
    log("starting a private MongoDB-compatible server (scripts/mongo_server.py)")
    try:
        started = private.start()
        yield Server(
            started,
            bench_run.describe_server(started, f"{private.kind}, private to this run"),
            private.pid,
            private.storage_pid,
        )
    finally:
        private.close()
        log("stopped the private server")


@dataclass
class Apps:
    """One or more bench/scale_app.py processes sharing a main port (SO_REUSEPORT)."""

    port: int
    stats_ports: list[int]
    procs: list[bench_run.Proc]

    @property
    def pids(self) -> list[int]:
        return [proc.popen.pid for proc in self.procs]

    def cpu_groups(self) -> dict[str, tuple[list[int], bool]]:
        return {f"app{i}": ([pid], False) for i, pid in enumerate(self.pids)}


def start_apps(url: str, db: str, count: int = 1, *, store: str = "mongo") -> Apps:
    port = bench_run.free_port()
    apps = Apps(port, [], [])
    try:
        for i in range(count):
            stats_port = bench_run.free_port()
            argv = [sys.executable, str(BENCH / "scale_app.py"), "--mongo-url", url, "--db", db]
            argv += ["--port", str(port), "--rotate-port", str(stats_port), "--store", store]
            argv += ["--reuse-port"]
            apps.procs.append(
                bench_run.start(f"bench/scale_app.py #{i + 1}", argv, cwd=REPO, env=pythonpath())
            )
            apps.stats_ports.append(stats_port)
    except BaseException:
        stop_apps(apps)
        raise
    return apps


def stop_apps(apps: Apps) -> None:
    for proc in reversed(apps.procs):
        bench_run.stop(proc)


def pythonpath() -> dict[str, str]:
    return {"PYTHONPATH": str(REPO)}


# -- wrk runs ----------------------------------------------------------------------------------


@dataclass
class Target:
    """What a wrk run drives: the port, where its counts come from, whose CPU to read."""

    port: int
    stats_ports: list[int]
    cpu_groups: dict[str, tuple[list[int], bool]]
    io_pids: list[int]  # the processes whose database traffic is counted
    app_groups: list[str]  # the cpu_groups that are app processes
    db_port: int


def target_for(apps: Apps, srv: Server, *, port: int | None = None) -> Target:
    return Target(
        port or apps.port,
        apps.stats_ports,
        {**apps.cpu_groups(), **srv.cpu_groups()},
        apps.pids,
        list(apps.cpu_groups()),
        srv.port,
    )


def wrk(
    url: str, seconds: int, cookie_file: Path | None, track: str | None, connections: int
) -> dict[str, Any]:
    args = SimpleNamespace(
        wrk=shutil.which("wrk") or "wrk", threads=min(2, connections), connections=connections
    )
    return bench_run.run_wrk(url, seconds, cookie_file, track, args)


def _reset_pool_max(port: int) -> None:
    with contextlib.suppress(OSError, RuntimeError):
        bench_run.http_get(port, "/_stats/reset")


def measured(
    target: Target,
    path: str,
    plan: Plan,
    *,
    connections: int,
    cookie_file: Path | None,
    track: str | None = None,
    warm: bool = True,
    prepare: Callable[[], object] | None = None,
    label: str = "",
) -> dict[str, Any]:
    """One wrk run (after a warm-up): wrk's figures, the apps' counts, everyone's CPU.

    ``prepare`` runs before the warm-up and again before the measured run (fresh cookies after
    a warm-up that rotated them, sessions marked used so that no touch falls due).
    """
    url = f"http://{HOST}:{target.port}{path}"
    if warm and plan.warmup:
        if prepare is not None:
            prepare()
        wrk(url, plan.warmup, cookie_file, track, connections)
    if prepare is not None:
        prepare()
    before = [bench_run.quiescent(port) for port in target.stats_ports]
    for port in target.stats_ports:
        _reset_pool_max(port)
    io_before = procs.db_bytes(target.db_port, target.io_pids)
    window = procs.CpuWindow(target.cpu_groups)
    window.start()
    result = wrk(url, plan.duration, cookie_file, track, connections)
    cpu = window.stop()
    load = procs.load_average()[0]
    after = [bench_run.quiescent(port) for port in target.stats_ports]
    io_after = procs.db_bytes(target.db_port, target.io_pids)
    served = sum(a["requests"] - b["requests"] for a, b in zip(after, before, strict=True))
    commands: dict[str, int] = {}
    for a, b in zip(after, before, strict=True):
        for name in set(a["commands"]) | set(b["commands"]):
            commands[name] = commands.get(name, 0) + a["commands"].get(name, 0)
            commands[name] -= b["commands"].get(name, 0)
    app_cpu_s = sum(a["cpu_s"] - b["cpu_s"] for a, b in zip(after, before, strict=True))
    pools = [(a.get("pool"), b.get("pool")) for a, b in zip(after, before, strict=True)]
    checkouts = sum(a["checkouts"] - b["checkouts"] for a, b in pools if a and b)
    waited = sum(a["wait_s"] - b["wait_s"] for a, b in pools if a and b)
    duration_s = result["duration_us"] / 1e6
    per = max(served, 1)
    row = {
        "path": path,
        "connections": connections,
        "rps": round(result["requests"] / duration_s, 1),
        "p50_ms": round(result["p50_us"] / 1000, 2),
        "p99_ms": round(result["p99_us"] / 1000, 2),
        "errors": sum(result[k] for k in ("connect", "read", "write", "status", "timeout")),
        "served": served,
        "misses": sum(a["misses"] - b["misses"] for a, b in zip(after, before, strict=True)),
        "commands_per_request": {k: round(v / per, 3) for k, v in sorted(commands.items()) if v},
        "app_cpu_us": round(app_cpu_s / per * 1e6, 1),
        "cpu_percent": cpu,
        "app_cpu_percent": round(sum(cpu[g] for g in target.app_groups), 1),
        "app_cpu_percent_max": max((cpu[g] for g in target.app_groups), default=0.0),
        "db_bytes_sent_per_request": round((io_after[0] - io_before[0]) / per),
        "db_bytes_received_per_request": round((io_after[1] - io_before[1]) / per),
        "load_1min": load,
    }
    if checkouts:
        row["pool"] = {
            "max_checked_out": max(a["max_checked_out"] for a, _b in pools if a),
            "open": sum(a["open"] for a, _b in pools if a),
            "opened": sum(a["open"] - b["open"] for a, b in pools if a and b),
            "wait_us_per_checkout": round(waited / checkouts * 1e6, 1),
        }
    log(
        f"  {label:8} {path:8} c={connections:<3} {row['rps']:8.0f} req/s  "
        f"p50 {row['p50_ms']:7.2f} ms  "
        f"p99 {row['p99_ms']:8.2f} ms  app CPU {row['app_cpu_percent']:5.1f}%  "
        f"machine {cpu['machine']:5.1f}%  {sum(row['commands_per_request'].values()):.2f} cmd"
        + (f"  (!) {row['errors']} errors" if row["errors"] else "")
        + (f"  (!) {row['misses']} misses" if row["misses"] else "")
    )
    return row


# -- documents inserted directly ---------------------------------------------------------------


class Stored:
    """A session collection filled with PyMongo in the store's format; cookies for a sample."""

    def __init__(self, url: str, db: str, seed: int) -> None:
        from pymongo import MongoClient

        self.url = url
        self.db = db
        self.client: Any = MongoClient(url, tz_aware=True, serverSelectionTimeoutMS=5000)
        self.client.drop_database(db)
        self.collection = self.client[db]["sessions"]
        self.rng = random.Random(seed)
        self.live = 0
        self.reservoir: list[str] = []  # a uniform sample of the live sessions' ids
        self.reservoir_size = 0
        self.cookie_pool = 0
        self.inserted = 0
        self.bson_bytes = self.bson_docs = 0
        self.insert_s = 0.0
        asyncio.run(self._store_call("ensure_indexes"))

    async def _store_call(self, name: str, **kwargs: Any) -> Any:
        from pymongo import AsyncMongoClient

        client: AsyncMongoClient[Any] = AsyncMongoClient(self.url, tz_aware=True)
        try:
            await client.admin.command("ping")
            store = MongoSessionStore(client[self.db]["sessions"])
            started = time.perf_counter()
            result = await getattr(store, name)(**kwargs)
            return result, time.perf_counter() - started
        finally:
            await client.close()

    def insert(
        self, live: int, soon: int, *, sample: int, probe: int = 0, batch: int = 2000
    ) -> float:
        """Insert ``live`` sessions (deadline in 2 h) and ``soon`` (in 30 min), mixed; docs/s.

        The reservoir keeps ``sample`` ids for cookies and ``probe`` more, never given a
        cookie, for :meth:`probe`: both uniform samples of every live session so far.
        """
        self.cookie_pool = max(self.cookie_pool, sample)
        self.reservoir_size = max(self.reservoir_size, sample + probe)
        flags = [False] * live + [True] * soon
        self.rng.shuffle(flags)
        now = datetime.now(timezone.utc)
        data = realistic_session()  # the same ten keys bench/cpu.py measures
        started = time.perf_counter()
        docs: list[dict[str, Any]] = []
        for is_soon in flags:
            session_id = new_session_id()
            docs.append(
                stored_document(
                    session_id,
                    data,
                    now=now,
                    expires_in=SOON if is_soon else IDLE,
                    rng=self.rng,
                )
            )
            self.inserted += 1
            if self.inserted % 50 == 1:  # the documents' mean BSON size, from a sample
                self.bson_bytes += len(bson.encode(docs[-1]))
                self.bson_docs += 1
            if not is_soon:
                self.live += 1
                if len(self.reservoir) < self.reservoir_size:
                    self.reservoir.append(session_id)
                else:
                    at = self.rng.randrange(self.live)
                    if at < self.reservoir_size:
                        self.reservoir[at] = session_id
            if len(docs) >= batch:
                self.collection.insert_many(docs, ordered=False)
                docs = []
        if docs:
            self.collection.insert_many(docs, ordered=False)
        elapsed = time.perf_counter() - started
        self.insert_s += elapsed
        return (live + soon) / max(elapsed, 1e-9)

    def cookies(self, count: int, path: Path) -> list[str]:
        """Give ``count`` sampled sessions a fresh token (written to ``path`` as cookies)."""
        from pymongo import UpdateOne

        pool = self.reservoir[: self._split()]
        ids = self.rng.sample(pool, min(count, len(pool)))
        now = datetime.now(timezone.utc)
        lines, updates = [], []
        for session_id in ids:
            token = new_token()
            hashes = [hash_token(token), self.rng.randbytes(32).hex(), self.rng.randbytes(32).hex()]
            updates.append(
                UpdateOne(
                    {"_id": session_id},
                    {"$set": {"tokens": hashes, "rotated_at": now, "accessed_at": now}},
                )
            )
            lines.append(f"session={encode_cookie(session_id, token)}")
        self.collection.bulk_write(updates, ordered=False)
        path.write_text("\n".join(lines) + "\n")
        return ids

    def _split(self) -> int:
        """Where the reservoir's cookie part ends and its probe part begins (in proportion
        while the collection is smaller than both)."""
        return len(self.reservoir) * self.cookie_pool // max(self.reservoir_size, 1)

    def probe(self) -> dict[str, float]:
        """One ``find`` and then one ``update`` by ``_id`` of each probe session, one at a
        time, from this process: the server's round trip alone, on sessions no run has used."""
        ids = self.reservoir[self._split() :]
        out: dict[str, float] = {"sessions": len(ids)}
        for name, call in (
            ("find", lambda sid: self.collection.find_one({"_id": sid})),
            (
                "update",
                lambda sid: self.collection.update_one({"_id": sid}, {"$inc": {"data.n": 1}}),
            ),
        ):
            times = []
            for session_id in ids:
                started = time.perf_counter()
                call(session_id)
                times.append((time.perf_counter() - started) * 1000)
            times.sort()
            out[f"{name}_p50_ms"] = round(times[len(times) // 2], 3) if times else 0.0
            out[f"{name}_p99_ms"] = round(times[int(len(times) * 0.99)], 3) if times else 0.0
        return out

    def refresh(self, ids: list[str]) -> None:
        """Mark the sampled sessions used just now, so that no read in the next minute is due
        a touch (one update per session per ``touch_interval``, 60 s)."""
        now = datetime.now(timezone.utc)
        self.collection.update_many({"_id": {"$in": ids}}, {"$set": {"accessed_at": now}})

    def stats(self) -> dict[str, Any]:
        """``collStats``, the exact count and the mean BSON size of the inserted documents.

        FerretDB 2 answers ``count`` (and ``size``, ``avgObjSize``) from PostgreSQL's planner
        estimate, which lags behind a large bulk insert until autovacuum has analyzed the table;
        the page divides by ``count_exact`` instead.
        """
        raw = self.client[self.db].command("collStats", "sessions")
        keep = ("count", "size", "avgObjSize", "storageSize", "totalIndexSize", "indexSizes")
        out = {k: raw.get(k) for k in keep}
        out["count_exact"] = self.collection.count_documents({})
        out["bson_avg"] = round(self.bson_bytes / max(self.bson_docs, 1))
        return out

    def purge(self) -> tuple[int, float]:
        """``purge_expired`` through the library, with the clock an hour ahead."""
        now = datetime.now(timezone.utc) + PURGE_AHEAD
        deleted, seconds = asyncio.run(self._store_call("purge_expired", now=now))
        return int(deleted), seconds

    def hashed_index(self) -> dict[str, Any]:
        """Build the index a ``{_id: "hashed"}`` shard key needs; its size; drop it."""
        from pymongo.errors import OperationFailure

        started = time.perf_counter()
        try:
            name = self.collection.create_index([("_id", "hashed")])
        except OperationFailure as exc:
            return {"error": str(exc)[:200]}
        seconds = time.perf_counter() - started
        size = self.stats()["indexSizes"].get(name)
        self.collection.drop_index(name)
        return {"name": name, "bytes": size, "build_s": round(seconds, 2)}

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.client.drop_database(self.db)
        self.client.close()


# -- the four parts ----------------------------------------------------------------------------


def estimate(plan: Plan, part: str, peers: int) -> float:
    """Seconds a part is expected to take (to reserve it while an earlier part runs)."""
    if part == "sizes":
        cpu = len(plan.sizes) * 2 * (3 * (plan.cpu_repeats + 1) * plan.cpu_batch_s + 1.0)
        warm = (1 + peers) * (2 * (plan.warmup + 1) + 2)
        return cpu + warm + len(plan.sizes) * (1 + peers) * (2 * plan.run_s() + 3) + 10 * peers
    if part == "concurrency":
        points = len(plan.connections) * 2 * plan.run_s()
        return points + len(plan.processes) * (2 * plan.run_s() + 4) + 10
    if part == "rotation":
        groups = plan.rotation_groups
        return lead_in_s(groups) + plan.rotation_seconds + 5
    raise ValueError(part)


def part_stored(
    srv: Server, plan: Plan, budget: Budget, reserve: float, peers: list[str]
) -> dict[str, Any]:
    log("part 1: stored sessions")
    out: dict[str, Any] = {"levels": [], "sample": plan.sample}
    stored = Stored(srv.url, "tms_scale_stored", seed=1)
    apps: Apps | None = None
    cookie_file = RESULTS / "cookies-stored.txt"
    try:
        apps = start_apps(srv.url, stored.db)
        main = target_for(apps, srv)
        rotate = target_for(apps, srv, port=apps.stats_ports[0])
        rate = 20_000.0  # docs/s until measured
        previous = 0
        for level in plan.levels:
            live, soon = math.ceil(level * 0.9) - stored.live, level - math.ceil(level * 0.9)
            need = (live + soon) / rate + 3 * plan.run_s() + 10 + level / 50_000
            if not budget.fits(f"stored sessions {level:,}", need, reserve):
                break
            log(f"stored sessions: inserting {live + soon:,} to reach {level:,}")
            rate = stored.insert(live, soon, sample=plan.sample, probe=plan.probe)
            stats = stored.stats()
            probe = stored.probe()
            log(
                f"  probe: find p50 {probe['find_p50_ms']:.2f} ms, update p50 "
                f"{probe['update_p50_ms']:.2f} ms ({probe['sessions']:,.0f} sessions)"
            )
            ids = stored.cookies(plan.sample, cookie_file)
            runs = {}
            for op, target, path, track in (
                ("read", main, "/read", None),
                ("write", main, "/write", None),
                ("rotate", rotate, "/rotate", "dot"),
            ):
                prepare: Callable[[], object] = functools.partial(stored.refresh, ids)
                if track:  # rotated tokens go stale: new sessions, new tokens, each time
                    prepare = functools.partial(stored.cookies, plan.sample, cookie_file)
                runs[op] = measured(
                    target,
                    path,
                    plan,
                    connections=32,
                    cookie_file=cookie_file,
                    track=track,
                    prepare=prepare,
                )
            deleted, purge_s = stored.purge()
            log(f"  purge_expired: {deleted:,} of {level:,} in {purge_s:.2f} s")
            out["levels"].append(
                {
                    "sessions": level,
                    "inserted": level - previous,
                    "insert_docs_per_s": round(rate),
                    "collstats": stats,
                    "probe": probe,
                    "runs": runs,
                    "purge": {"deleted": deleted, "seconds": round(purge_s, 3)},
                    "load_1min": procs.load_average()[0],
                }
            )
            previous = level - deleted
        if out["levels"]:
            out["hashed_index"] = stored.hashed_index()
            out["hashed_index"]["sessions"] = stored.collection.count_documents({})
    finally:
        if apps is not None:
            stop_apps(apps)
        stored.close()
    return out


def _peer_pids(proc: bench_run.Proc) -> list[int]:
    """The process that serves: gunicorn's worker (the master's child), or the process."""
    children = procs.descendants(proc.popen.pid)
    return children or [proc.popen.pid]


def part_sizes(
    srv: Server, plan: Plan, budget: Budget, reserve: float, peers: list[str]
) -> dict[str, Any]:
    log("part 2: session size")
    out: dict[str, Any] = {"sizes": [list(s) for s in plan.sizes]}
    need = estimate(plan, "sizes", len(peers)) * 0.3
    if budget.fits("session size: in-process CPU", need, reserve):
        log("in-process CPU per request, by size (memory and Mongo store)")
        out["cpu"] = asyncio.run(
            cpu_by_size(
                srv.url,
                "tms_scale_cpu",
                plan.sizes,
                repeats=plan.cpu_repeats,
                batch_s=plan.cpu_batch_s,
            )
        )
    from pymongo import MongoClient

    client: Any = MongoClient(srv.url, serverSelectionTimeoutMS=5000)
    db_of = {"ours": "tms_scale_size", "express": "tms_bench_express", "flask": "tms_bench_flask"}
    targets: dict[str, Target] = {}
    started: list[bench_run.Proc] = []
    apps: Apps | None = None
    out["e2e"] = []
    try:
        apps = start_apps(srv.url, db_of["ours"])
        targets["ours"] = target_for(apps, srv)
        for peer in peers:
            port = bench_run.free_port()
            proc = bench_run.start_peer(peer, port, srv.url)
            started.append(proc)
            pids = _peer_pids(proc)
            groups = {"app": (pids, False), **srv.cpu_groups()}
            targets[peer] = Target(port, [port], groups, pids, ["app"], srv.port)
        cookie_file = RESULTS / "cookies-size.txt"
        # Each process once through both routes first (Node's JIT, Python's caches, the
        # pools), so the first size measured does not pay for a cold process.
        for impl, target in targets.items():
            cookie_file.write_text("\n".join(bench_run.make_pool(target.port, "/new", POOL)))
            for op in ("read", "write"):
                url = f"http://{HOST}:{target.port}/{op}"
                wrk(url, plan.warmup + 1, cookie_file, None, plan.size_connections)
            client[db_of[impl]]["sessions"].delete_many({})
        for label, keys, kib in plan.sizes:
            need = len(targets) * (2 * plan.run_s() + 3)
            if not budget.fits(f"session size {label} (wrk)", need, reserve):
                break
            log(f"session size {label}")
            for impl, target in targets.items():
                client[db_of[impl]]["sessions"].delete_many({})
                cookies = bench_run.make_pool(target.port, f"/new?keys={keys}&kib={kib}", POOL)
                cookie_file.write_text("\n".join(cookies) + "\n")
                for op in ("read", "write"):
                    row = measured(
                        target,
                        f"/{op}",
                        plan,
                        connections=plan.size_connections,
                        cookie_file=cookie_file,
                        label=impl,
                    )
                    out["e2e"].append({"impl": impl, "size": label, "op": op, **row})
    finally:
        for proc in reversed(started):
            bench_run.stop(proc)
        if apps is not None:
            stop_apps(apps)
        for name in db_of.values():
            with contextlib.suppress(Exception):
                client.drop_database(name)
        client.close()
    return out


def part_concurrency(
    srv: Server, plan: Plan, budget: Budget, reserve: float, peers: list[str]
) -> dict[str, Any]:
    log("part 3: concurrency and processes")
    out: dict[str, Any] = {"connections": [], "processes": []}
    stored = Stored(srv.url, "tms_scale_conc", seed=3)
    cookie_file = RESULTS / "cookies-conc.txt"
    apps: Apps | None = None
    try:
        stored.insert(plan.connections_sessions, 0, sample=plan.sample)
        ids = stored.cookies(plan.sample, cookie_file)
        out["sessions"] = plan.connections_sessions
        apps = start_apps(srv.url, stored.db)
        target = target_for(apps, srv)
        prepare = functools.partial(stored.refresh, ids)

        def read_write(
            target: Target, connections: int, processes: int, label: str, *, fresh: bool
        ) -> list[dict[str, Any]]:
            # The read's warm-up also grows the pool to what this many connections need, so
            # neither measured run waits for new connections; fresh processes warm up both.
            return [
                {"op": op, "processes": processes}
                | measured(
                    target,
                    f"/{op}",
                    plan,
                    connections=connections,
                    cookie_file=cookie_file,
                    warm=op == "read" or fresh,
                    prepare=prepare,
                    label=label,
                )
                for op in ("read", "write")
            ]

        for connections in plan.connections:
            if not budget.fits(f"{connections} connections", 2 * plan.run_s(), reserve):
                break
            out["connections"] += read_write(
                target, connections, 1, f"{connections} conn", fresh=False
            )
        stop_apps(apps)
        apps = None
        for count in plan.processes:
            if not budget.fits(f"{count} app processes", 2 * plan.run_s() + 4, reserve):
                break
            log(f"{count} app process(es) on one port, {plan.process_connections} connections")
            apps = start_apps(srv.url, stored.db, count)
            out["processes"] += read_write(
                target_for(apps, srv),
                plan.process_connections,
                count,
                f"{count} proc",
                fresh=True,
            )
            stop_apps(apps)
            apps = None
    finally:
        if apps is not None:
            stop_apps(apps)
        stored.close()
    return out


def part_rotation(
    srv: Server, plan: Plan, budget: Budget, reserve: float, peers: list[str]
) -> dict[str, Any]:
    log("part 4: the rotation's load")
    if not budget.fits("rotation load", estimate(plan, "rotation", 0)):
        return {}
    groups = asyncio.run(
        rotation_load(srv.url, "tms_scale_rotation", plan.rotation_groups, plan.rotation_seconds)
    )
    for group in groups:
        log(
            f"  token_ttl {group['token_ttl']:g} s, a request every {group['gap_s']:g} s: "
            f"{group['writes_per_user_s']:.3f} writes/s per user"
        )
    return {"groups": groups, "seconds": plan.rotation_seconds}


PARTS = {
    "stored": part_stored,
    "sizes": part_sizes,
    "concurrency": part_concurrency,
    "rotation": part_rotation,
}

# -- main --------------------------------------------------------------------------------------


def machine_info(srv: Server) -> dict[str, str]:
    args = SimpleNamespace(wrk=shutil.which("wrk") or "wrk", threads=2, connections=32)
    args.warmup = args.duration = 0
    info = bench_run.machine(args, {"desc": srv.desc})
    info.pop("load", None)
    return info


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, about 1 s per point")
    parser.add_argument(
        "--budget-min", type=float, default=25.0, help="the whole run's time limit (minutes)"
    )
    parser.add_argument("--parts", default="stored,sizes,concurrency,rotation")
    parser.add_argument("--no-peers", action="store_true", help="skip express and Flask")
    parser.add_argument("--mongo-url", default=os.environ.get("TORNADO_SESSION_MONGODB_URL", ""))
    parser.add_argument(
        "--write-docs", action="store_true", help="write docs/scaling.md and docs/scaling-*.png"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        log("wrk is not installed: run `make bench-deps` (apt-get install wrk)")
        return 2
    if args.quick and args.write_docs:
        parser.error("--write-docs publishes a full run only, not --quick")
    global RESULTS
    if args.quick:  # a quick run never overwrites a full run's results
        RESULTS = bench_run.RESULTS / "scale-quick"
    plan = Plan.make(args.quick)
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = set(parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}: choose from {', '.join(PARTS)}")
    peers = [] if args.no_peers else available_peers()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (bench_run.RESULTS / "wrk-session.lua").write_text(bench_run._LUA)
    budget = Budget(args.budget_min * 60)
    results: dict[str, Any] = {
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "quick": args.quick,
        "budget_s": budget.total_s,
        "plan": asdict(plan),
        "load_before": procs.load_average(),
        "cores": os.cpu_count(),
        "commit": commit(),
        "peers": peers,
    }
    with server(args.mongo_url) as srv:
        results["server"] = srv.desc
        results["server_cpu_measured"] = bool(srv.pid)
        results["machine"] = machine_info(srv)
        reserves = {
            "stored": sum(estimate(plan, p, len(peers)) for p in parts if p != "stored"),
            "sizes": sum(
                estimate(plan, p, len(peers)) for p in ("concurrency", "rotation") if p in parts
            ),
            "concurrency": estimate(plan, "rotation", 0) if "rotation" in parts else 0.0,
        }
        background = results["background_cpu"] = []
        for part in ("stored", "sizes", "concurrency", "rotation"):
            if part not in parts:
                continue
            # Nothing of this run is busy now: what the machine does is other jobs' work.
            background.append(procs.background_cpu())
            log(f"other jobs on the machine: {background[-1]:.0f} % of one core")
            results[part] = PARTS[part](srv, plan, budget, reserves.get(part, 0.0), peers)
        background.append(procs.background_cpu())
    results["elapsed_s"] = round(time.monotonic() - budget.started)
    results["cuts"] = budget.cuts
    results["load_after"] = procs.load_average()
    results["child_errors"] = dict(bench_run.CHILD_ERRORS.most_common(10))
    (RESULTS / "results.json").write_text(json.dumps(results, indent=2, default=str))
    page = scale_report.write(results, RESULTS)
    if args.write_docs:
        scale_report.publish(RESULTS, bench_run.DOCS)
        log("wrote docs/scaling.md and docs/scaling-*.png")
    log(f"results in {RESULTS.relative_to(REPO)}/ ({results['elapsed_s']} s); page: {page}")
    return 0


def commit() -> str:
    """The commit the library and the benchmark were measured at (``-dirty``: with changes)."""

    def git(*argv: str) -> str:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            done = subprocess.run(
                ["git", *argv], cwd=REPO, capture_output=True, text=True, timeout=10, check=False
            )
            return done.stdout.strip()
        return ""

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "tornado_mongo_session", "bench")
    return f"{head}-dirty" if dirty else head


def available_peers() -> list[str]:
    peers = []
    if (bench_run.NODE_DIR / "node_modules/connect-mongo").is_dir() and shutil.which("node"):
        peers.append("express")
    else:
        log("express peer not installed (make bench-deps): skipped")
    if (bench_run.PEER_VENV / "bin/gunicorn").exists():
        peers.append("flask")
    else:
        log("Flask peer not installed (make bench-deps): skipped")
    return peers


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
    sys.exit(130)
