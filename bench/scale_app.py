"""The Tornado process bench/scale.py drives; also its in-process apps (CPU, rotation load).

Routes on the main port (``NeverRotator``: a read costs one ``find``): ``/bare``, ``/read`` and
``/write`` (bench/app.py's handlers: read one key, change one key), ``/new?keys=K&kib=B`` (a
new session of :func:`scale_data.sized_data`; without arguments bench/cpu.py's realistic
ten-key session),
``/_stats``. On the second port (``EveryRequest``: a token is due on every
request): ``/rotate`` (a read), ``/new`` and ``/_stats``.

``--reuse-port`` binds the main port with ``SO_REUSEPORT``, so several processes serve one port
and the kernel spreads the connections among them; each keeps its second port to itself, for
its ``/_stats``. ``/_stats`` is bench/app.py's (commands by name, requests, misses, CPU time)
plus the driver's connection pool: connections open, checked out now and at most (``GET
/_stats/reset`` starts the high-water mark again), checkouts and the time they waited.
Benchmark code, not part of the library.

Usage: ``python bench/scale_app.py --mongo-url URL --db NAME --port P --rotate-port Q
[--reuse-port] [--max-pool-size N] [--store mongo|memory]``; prints ``READY {json}`` once both
ports listen.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import tornado.httpserver
import tornado.netutil
import tornado.web
from pymongo import AsyncMongoClient, monitoring

sys.path.insert(0, str(Path(__file__).resolve().parent))

import app as bench_app
from cpu import realistic_session
from scale_data import sized_data

from tornado_mongo_session import (
    MemorySessionStore,
    MongoSessionStore,
    NeverRotator,
    SessionMixin,
    SessionSettings,
    SessionStore,
    TokenRotator,
)

MAX_SESSION_BYTES = 1024 * 1024
"""Above the default 256 KiB, so that the 256 KiB point of the size sweep can be written."""


class NewSized(SessionMixin, tornado.web.RequestHandler):
    """Set-up only (not counted): a new session of ``?keys=K&kib=B``, or a realistic one."""

    def get(self) -> None:
        keys = int(self.get_argument("keys", "0"))
        kib = int(self.get_argument("kib", "0"))
        self.session.update(sized_data(max(keys, 1), kib) if keys or kib else realistic_session())
        self.write("new")


class PoolWatch(monitoring.ConnectionPoolListener):
    """The driver's connection pool, as ``/_stats`` reports it."""

    def __init__(self) -> None:
        self.open = 0
        self.checked_out = 0
        self.max_checked_out = 0
        self.checkouts = 0
        self.wait_s = 0.0
        self.failed = 0

    def reset_max(self) -> None:
        """Start a new high-water mark (before a measured run)."""
        self.max_checked_out = self.checked_out

    def snapshot(self) -> dict[str, Any]:
        return {
            "open": self.open,
            "checked_out": self.checked_out,
            "max_checked_out": self.max_checked_out,
            "checkouts": self.checkouts,
            "wait_s": self.wait_s,
            "failed": self.failed,
        }

    def connection_checked_out(self, event: monitoring.ConnectionCheckedOutEvent) -> None:
        self.checked_out += 1
        self.checkouts += 1
        self.max_checked_out = max(self.max_checked_out, self.checked_out)
        self.wait_s += getattr(event, "duration", None) or 0.0

    def connection_checked_in(self, event: monitoring.ConnectionCheckedInEvent) -> None:
        self.checked_out -= 1

    def connection_created(self, event: monitoring.ConnectionCreatedEvent) -> None:
        self.open += 1

    def connection_closed(self, event: monitoring.ConnectionClosedEvent) -> None:
        self.open -= 1

    def connection_check_out_failed(self, event: monitoring.ConnectionCheckOutFailedEvent) -> None:
        self.failed += 1

    def connection_check_out_started(
        self, event: monitoring.ConnectionCheckOutStartedEvent
    ) -> None:
        pass

    def connection_ready(self, event: monitoring.ConnectionReadyEvent) -> None:
        pass

    def pool_created(self, event: monitoring.PoolCreatedEvent) -> None:
        pass

    def pool_ready(self, event: monitoring.PoolReadyEvent) -> None:
        pass

    def pool_cleared(self, event: monitoring.PoolClearedEvent) -> None:
        pass

    def pool_closed(self, event: monitoring.PoolClosedEvent) -> None:
        pass


class ScaleStats(bench_app.Stats):
    """bench/app.py's figures plus the pool's."""

    def __init__(self, commands: bench_app.CommandCounter, pool: PoolWatch) -> None:
        super().__init__(commands)
        self.pool = pool

    def snapshot(self) -> dict[str, Any]:
        return {**super().snapshot(), "pool": self.pool.snapshot()}


class PoolReset(tornado.web.RequestHandler):
    """``GET /_stats/reset``: the pool's high-water mark starts again from now."""

    def get(self) -> None:
        stats = bench_app.STATS
        if isinstance(stats, ScaleStats):
            stats.pool.reset_max()
        self.write("reset")


def install_stats(pool: PoolWatch | None = None) -> tuple[bench_app.CommandCounter, PoolWatch]:
    """Make bench/app.py's handlers count into fresh counters; return them."""
    counter = bench_app.CommandCounter()
    pool = pool or PoolWatch()
    bench_app.STATS = ScaleStats(counter, pool)
    return counter, pool


def settings(**overrides: Any) -> SessionSettings:
    return SessionSettings(cookie_secure=False, max_session_bytes=MAX_SESSION_BYTES, **overrides)


def application(
    store: SessionStore,
    *,
    rotator: TokenRotator | None,
    session_settings: SessionSettings | None = None,
    rotating_routes: bool = False,
) -> tornado.web.Application:
    """The scale routes on ``store``; ``rotator=None`` means the settings' default rotator."""
    if rotating_routes:
        routes: list[Any] = [(r"/rotate", bench_app.Read)]
    else:
        routes = [
            (r"/bare", bench_app.Bare),
            (r"/read", bench_app.Read),
            (r"/write", bench_app.Write),
        ]
    routes += [
        (r"/new", NewSized),
        (r"/_stats", bench_app.StatsHandler),
        (r"/_stats/reset", PoolReset),
    ]
    extra: dict[str, Any] = {} if rotator is None else {"session_rotator": rotator}
    return tornado.web.Application(
        routes,
        session_store=store,
        session_settings=session_settings or settings(),
        log_function=lambda handler: None,
        **extra,
    )


async def serve(args: argparse.Namespace) -> None:
    counter, pool = install_stats()
    client: AsyncMongoClient[Any] | None = None
    store: SessionStore
    if args.store == "memory":
        store = MemorySessionStore(max_sessions=1_000_000)
    else:
        client = AsyncMongoClient(
            args.mongo_url,
            tz_aware=True,
            event_listeners=[counter, pool],
            appname="tms-bench-scale",
            serverSelectionTimeoutMS=5000,
            maxPoolSize=args.max_pool_size,
        )
        await client.admin.command("ping")
        store = MongoSessionStore(client[args.db]["sessions"])
    main_app = application(store, rotator=NeverRotator())
    rotate_app = application(store, rotator=bench_app.EveryRequest(), rotating_routes=True)
    main_server = tornado.httpserver.HTTPServer(main_app)
    main_server.add_sockets(
        tornado.netutil.bind_sockets(args.port, address="127.0.0.1", reuse_port=args.reuse_port)
    )
    rotate_server = tornado.httpserver.HTTPServer(rotate_app)
    rotate_server.listen(args.rotate_port, address="127.0.0.1")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("READY", json.dumps({"pid": os.getpid(), "started": time.time()}), flush=True)
    await stop.wait()
    main_server.stop()
    rotate_server.stop()
    if client is not None:
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mongo-url", default="")
    parser.add_argument("--db", default="tms_scale")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rotate-port", type=int, required=True)
    parser.add_argument("--reuse-port", action="store_true")
    parser.add_argument("--max-pool-size", type=int, default=100, help="PyMongo's default: 100")
    parser.add_argument("--store", choices=("mongo", "memory"), default="mongo")
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
