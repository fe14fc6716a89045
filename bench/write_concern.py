#!/usr/bin/env python3
"""What the store's write concern costs: w:1 against w:"majority", through MongoSessionStore.

Every operation goes through the store (the commands it really sends): a new session (insert),
a data write (update), a rotation (update with the compare-and-set filter), a logout (delete),
and a read (find), which no write concern touches and so shows the noise floor. Each runs one at
a time (latency: what majority adds to one request) and with ``--concurrency`` in flight
(throughput of one event loop and one client). The two write concerns alternate A-B-B-A so that
drift in the machine's load cancels out of their ratio; the collection is emptied before every
cell, so every cell starts from the same size.

Server: ``--mongo-url``, else ``$TORNADO_SESSION_MONGODB_URL``, else a private server started
here and stopped at the end (scripts/mongo_server.py: ``mongod`` on PATH, else FerretDB).
A standalone server (FerretDB, a plain mongod) acknowledges "majority" as soon as it has
applied the write, as it does w:1, so there the two should agree; on a replica set the
difference is the replication wait (docs/deployment.md). Prints a Markdown table; ``--json``
also writes the figures. Bounded: 5 operations x 2 modes x 4 cells x --rounds x --ops, plus
the set-up of each cell.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient, MongoClient, WriteConcern

from tornado_mongo_session import (
    MongoSessionStore,
    NewSession,
    Rotation,
    SessionRecord,
    SessionUpdate,
)
from tornado_mongo_session.clock import utc_now

REPO = Path(__file__).resolve().parent.parent
CONCERNS = {
    "w:1": WriteConcern(w=1),
    "majority": WriteConcern(w="majority", wtimeout=5000),
}
OPERATIONS = ("insert", "update", "rotate", "delete", "find")


def log(message: str) -> None:
    print(f"write_concern: {message}", file=sys.stderr, flush=True)


def new_session_request() -> NewSession:
    now = utc_now()
    return NewSession(data={"n": 0}, created_at=now, now=now, expires_at=now + timedelta(hours=1))


def write_of(record: SessionRecord, *, rotate: bool) -> SessionUpdate:
    now = utc_now() + timedelta(seconds=6)
    return SessionUpdate(
        loaded=record,
        now=now,
        expires_at=now + timedelta(hours=1),
        changed={"n": 1},
        rotation=Rotation(keep=3) if rotate else None,
    )


async def prepare(store: MongoSessionStore, operation: str, count: int) -> list[Any]:
    """The untimed set-up of one cell: one argument per timed operation."""
    await store.collection.delete_many({})
    if operation == "insert":
        return [new_session_request() for _ in range(count)]
    records: list[Any] = []
    for _ in range(count):
        result = await store.save(new_session_request())
        assert result.cookie_value is not None
        if operation == "find":
            records.append(result.cookie_value)
            continue
        record = await store.load(result.cookie_value, now=utc_now())
        assert record is not None
        records.append(record)
    if operation in {"update", "rotate"}:
        return [write_of(r, rotate=operation == "rotate") for r in records]
    return records


def timed_call(store: MongoSessionStore, operation: str) -> Callable[[Any], Awaitable[Any]]:
    if operation in {"insert", "update", "rotate"}:
        return store.save
    if operation == "delete":
        return store.delete

    async def find(cookie: str) -> Any:
        return await store.load(cookie, now=utc_now())

    return find


async def run_cell(
    store: MongoSessionStore, operation: str, count: int, concurrency: int
) -> tuple[list[float], float]:
    """Latencies (ms) of ``count`` operations and the wall time (s) they took."""
    arguments = await prepare(store, operation, count)
    call = timed_call(store, operation)
    latencies: list[float] = []
    queue = iter(arguments)

    async def worker() -> None:
        for argument in queue:
            start = time.perf_counter()
            await call(argument)
            latencies.append((time.perf_counter() - start) * 1000)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, time.perf_counter() - start


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def measure(url: str, args: argparse.Namespace) -> dict[str, Any]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        url, tz_aware=True, serverSelectionTimeoutMS=5000, appname="bench-write-concern"
    )
    database = f"bench_write_concern_{uuid.uuid4().hex[:8]}"
    collection = client[database]["sessions"]
    stores = {
        name: MongoSessionStore(collection, write_concern=wc) for name, wc in CONCERNS.items()
    }
    await stores["w:1"].ensure_indexes()
    rows: list[dict[str, Any]] = []
    try:
        for mode, concurrency in (("sequential", 1), ("concurrent", args.concurrency)):
            for operation in OPERATIONS:
                cells: dict[str, dict[str, list[float]]] = {
                    name: {"ms": [], "wall": [], "ops": []} for name in CONCERNS
                }
                # A-B-B-A, repeated: each concern runs as often first as last.
                order = ["w:1", "majority", "majority", "w:1"] * args.rounds
                for name in order:
                    latencies, wall = await run_cell(stores[name], operation, args.ops, concurrency)
                    cells[name]["ms"].extend(latencies)
                    cells[name]["wall"].append(wall)
                    cells[name]["ops"].append(len(latencies))
                row: dict[str, Any] = {"operation": operation, "mode": mode}
                for name, cell in cells.items():
                    row[name] = {
                        "p50_ms": statistics.median(cell["ms"]),
                        "p99_ms": percentile(cell["ms"], 0.99),
                        "ops_per_s": sum(cell["ops"]) / sum(cell["wall"]),
                        "count": len(cell["ms"]),
                    }
                rows.append(row)
                log(f"{mode} {operation}: done")
    finally:
        await client.drop_database(database)
        await client.close()
    return {"rows": rows}


def describe(url: str) -> dict[str, str]:
    client: MongoClient[dict[str, Any]]
    with MongoClient(url, serverSelectionTimeoutMS=5000) as client:
        info = client.admin.command("buildInfo")
        hello = client.admin.command("hello")
        topology = client.topology_description.topology_type_name
    ferret = info.get("ferretdb") or {}
    if "ferretdbVersion" in info or ferret:
        server = f"FerretDB {info.get('ferretdbVersion') or ferret.get('version', '?')}"
    else:
        server = f"MongoDB {info.get('version', '?')}"
    shape = f"replica set {hello['setName']}" if "setName" in hello else "standalone"
    return {"server": server, "shape": shape, "topology": topology}


def table(result: dict[str, Any]) -> str:
    lines = [
        "| operation | mode | w:1 p50 ms | majority p50 ms | w:1 p99 ms | majority p99 ms "
        "| w:1 ops/s | majority ops/s | majority/w:1 ops/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        one, majority = row["w:1"], row["majority"]
        lines.append(
            f"| {row['operation']} | {row['mode']} | {one['p50_ms']:.2f} | "
            f"{majority['p50_ms']:.2f} | {one['p99_ms']:.2f} | {majority['p99_ms']:.2f} | "
            f"{one['ops_per_s']:,.0f} | {majority['ops_per_s']:,.0f} | "
            f"{majority['ops_per_s'] / one['ops_per_s']:.2f}x |"
        )
    return "\n".join(lines)


@contextlib.contextmanager
def server_url(args: argparse.Namespace) -> Iterator[tuple[str, str]]:
    url = args.mongo_url or os.environ.get("TORNADO_SESSION_MONGODB_URL", "")
    if url:
        yield url, "given"
        return
    sys.path.insert(0, str(REPO / "scripts"))
    import mongo_server  # scripts/ is not a package

    server = mongo_server.PrivateServer()
    log("starting a private MongoDB-compatible server (scripts/mongo_server.py)")
    try:
        yield server.start(), "private to this run"
    finally:
        server.close()
        log("stopped the private server")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mongo-url", default="")
    parser.add_argument("--ops", type=int, default=300, help="operations per cell")
    parser.add_argument("--rounds", type=int, default=1, help="A-B-B-A repetitions")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()
    with server_url(args) as (url, how):
        server = describe(url)
        log(f"{server['server']}, {server['shape']} ({server['topology']}), {how}")
        started = time.monotonic()
        result = asyncio.run(measure(url, args))
    result["server"] = {**server, "how": how}
    result["machine"] = {"python": platform.python_version(), "cpus": str(os.cpu_count())}
    result["settings"] = {"ops": args.ops, "rounds": args.rounds, "concurrency": args.concurrency}
    result["seconds"] = round(time.monotonic() - started, 1)
    print(
        f"### Write concern (bench/write_concern.py): {server['server']}, {server['shape']}, "
        f"{args.ops} ops x {4 * args.rounds} cells per row, concurrency {args.concurrency}, "
        f"{result['seconds']} s\n"
    )
    print(table(result))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
