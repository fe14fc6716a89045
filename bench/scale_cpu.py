"""The library's CPU per request against the session's size, in one process (as bench/cpu.py).

For each store (``MemorySessionStore``; ``MongoSessionStore`` on a PyMongo ``AsyncMongoClient``
when a server URL is given) and each size: a Tornado server and bench/cpu.py's keep-alive client
in this process and thread, one request at a time, ``time.thread_time()`` around a batch; the
bare handler, a read of one key and a change of one key, round-robin, best of ``repeats``
batches. The bare handler's figure is subtracted: what is left is the mixin and the store, and
for the Mongo store also the driver's encoding and decoding (it runs in this thread; the
server's work does not). Batches are sized to take about ``batch_s`` of wall time each.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import time
from pathlib import Path
from typing import Any

import tornado.httpserver
import tornado.netutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

import scale_app
from cpu import Client
from pymongo import AsyncMongoClient

from tornado_mongo_session import MemorySessionStore, MongoSessionStore, NeverRotator, SessionStore

OPS = {"bare": "/bare", "read": "/read", "write": "/write"}


async def _batch(client: Client, path: str, cookie: str | None, count: int) -> tuple[float, float]:
    """``(cpu_s, wall_s)`` of ``count`` sequential requests."""
    gc.collect()
    wall, cpu = time.perf_counter(), time.thread_time()
    for _ in range(count):
        await client.get(path, cookie)
    return time.thread_time() - cpu, time.perf_counter() - wall


async def _measure_store(
    store: SessionStore, sizes: list[tuple[str, int, int]], repeats: int, batch_s: float
) -> dict[str, dict[str, float]]:
    app = scale_app.application(store, rotator=NeverRotator())
    server = tornado.httpserver.HTTPServer(app)
    sockets = tornado.netutil.bind_sockets(0, address="127.0.0.1")
    server.add_sockets(sockets)
    port = sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    client = Client(reader, writer)
    out: dict[str, dict[str, float]] = {}
    try:
        for label, keys, kib in sizes:
            cookie = await client.get(f"/new?keys={keys}&kib={kib}", None)
            counts: dict[str, int] = {}
            for op, path in OPS.items():  # warm-up and batch size
                _cpu, wall = await _batch(client, path, cookie, 10)
                counts[op] = max(10, min(1000, int(batch_s / max(wall / 10, 1e-6))))
            best = dict.fromkeys(OPS, float("inf"))
            for _ in range(repeats):
                for op, path in OPS.items():
                    cpu, _wall = await _batch(client, path, cookie, counts[op])
                    best[op] = min(best[op], cpu / counts[op] * 1e6)
            out[label] = {
                "bare_us": round(best["bare"], 1),
                "read_us": round(best["read"] - best["bare"], 1),
                "write_us": round(best["write"] - best["bare"], 1),
                "requests_per_batch": min(counts.values()),
            }
    finally:
        writer.close()
        server.stop()
    return out


async def cpu_by_size(
    mongo_url: str | None,
    db: str,
    sizes: list[tuple[str, int, int]],
    *,
    repeats: int,
    batch_s: float,
) -> dict[str, Any]:
    """``{store: {size label: {bare_us, read_us, write_us}}}`` and how it was measured."""
    scale_app.install_stats()
    result: dict[str, Any] = {
        "method": f"in-process, sequential, best of {repeats} batches of about {batch_s:g} s",
        "memory": await _measure_store(
            MemorySessionStore(max_sessions=100_000), sizes, repeats, batch_s
        ),
    }
    if mongo_url:
        client: AsyncMongoClient[Any] = AsyncMongoClient(mongo_url, tz_aware=True)
        try:
            await client.drop_database(db)
            store = MongoSessionStore(client[db]["sessions"])
            result["mongo"] = await _measure_store(store, sizes, repeats, batch_s)
            await client.drop_database(db)
        finally:
            await client.close()
    return result
