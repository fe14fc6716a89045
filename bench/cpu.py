"""The library's own CPU time per request, measured in one process with the memory store.

wrk's numbers on a 2-core machine shared with the server move by several percent from run to
run, more than the library's whole cost. This measures it where nothing else interferes: a
Tornado server and a plain HTTP/1.1 keep-alive client in the same process and thread, one
request at a time, ``time.thread_time()`` around a batch. The client and Tornado cost the same
in every scenario, so a scenario's CPU per request minus the bare handler's is what the mixin
and the store add. Each figure is the best of several batches (the least disturbed).

Usage: ``python bench/cpu.py [--requests 1000] [--repeats 10]``; prints one JSON object.
Imported by bench/run.py's report; ``PYTHONPATH=DIR`` measures another copy of the library.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import time
from pathlib import Path
from typing import Any

import tornado.httpserver
import tornado.netutil
import tornado.web

sys.path.insert(0, str(Path(__file__).resolve().parent))

import app as bench_app

import tornado_mongo_session
from tornado_mongo_session import IntervalRotator, NeverRotator, SessionSettings

try:  # written alongside this benchmark; report "pending" without it
    from tornado_mongo_session.stores.memory import MemorySessionStore
except ImportError:  # pragma: no cover - depends on the tree
    MemorySessionStore = None  # type: ignore[assignment,misc]

# name: (path, path that creates a session or None, rotating app?)
SCENARIOS: dict[str, tuple[str, str | None, bool]] = {
    "bare": ("/bare", None, False),
    "untouched": ("/untouched", None, False),
    "read": ("/read", "/new", False),
    "write": ("/write", "/new", False),
    "rotate": ("/read", "/new", True),
}


class Client:
    """A minimal HTTP/1.1 keep-alive client: GET, a Cookie header, Content-Length bodies."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def get(self, path: str, cookie: str | None) -> str | None:
        """Send one request; return the response's ``name=value`` Set-Cookie pair, if any."""
        head = f"GET {path} HTTP/1.1\r\nHost: bench\r\n"
        if cookie:
            head += f"Cookie: {cookie}\r\n"
        self.writer.write((head + "\r\n").encode("latin-1"))
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        if not lines[0].startswith("HTTP/1.1 200"):
            raise RuntimeError(f"{path}: {lines[0]}")
        length = 0
        set_cookie = None
        for line in lines[1:]:
            name, _, value = line.partition(":")
            lowered = name.lower()
            if lowered == "content-length":
                length = int(value)
            elif lowered == "set-cookie":
                set_cookie = value.strip().split(";", 1)[0]
        if length:
            await self.reader.readexactly(length)
        return set_cookie


async def measure(requests: int, repeats: int) -> dict[str, Any]:
    bench_app.STATS = bench_app.Stats(bench_app.CommandCounter())
    assert MemorySessionStore is not None
    store = MemorySessionStore(max_sessions=100_000)
    settings = SessionSettings(cookie_secure=False)
    common: dict[str, Any] = {
        "session_settings": settings,
        "session_store": store,
        "log_function": lambda handler: None,
    }
    routes: list[Any] = [
        (r"/bare", bench_app.Bare),
        (r"/untouched", bench_app.Untouched),
        (r"/read", bench_app.Read),
        (r"/write", bench_app.Write),
        (r"/new", bench_app.New),
    ]
    apps = {
        False: tornado.web.Application(routes, session_rotator=NeverRotator(), **common),
        True: tornado.web.Application(
            routes, session_rotator=IntervalRotator(every=1e-6, keep=3), **common
        ),
    }
    servers: dict[bool, tuple[tornado.httpserver.HTTPServer, int]] = {}
    for rotating, application in apps.items():
        server = tornado.httpserver.HTTPServer(application)
        sockets = tornado.netutil.bind_sockets(0, address="127.0.0.1")
        server.add_sockets(sockets)
        servers[rotating] = (server, sockets[0].getsockname()[1])
    per_request = dict.fromkeys(SCENARIOS, float("inf"))
    clients: dict[str, tuple[Client, str | None]] = {}
    try:
        for name, (path, setup, rotating) in SCENARIOS.items():
            reader, writer = await asyncio.open_connection("127.0.0.1", servers[rotating][1])
            client = Client(reader, writer)
            cookie = await client.get(setup, None) if setup else None
            for _ in range(requests // 5):  # warm-up
                cookie = await client.get(path, cookie) or cookie
            clients[name] = (client, cookie)
        # Round-robin over the scenarios, so a disturbance hits them all alike; keep the best.
        for _ in range(repeats):
            for name, (path, _setup, _rotating) in SCENARIOS.items():
                client, cookie = clients[name]
                gc.collect()
                start = time.thread_time()
                for _ in range(requests):
                    cookie = await client.get(path, cookie) or cookie
                elapsed = time.thread_time() - start
                clients[name] = (client, cookie)
                per_request[name] = min(per_request[name], elapsed / requests * 1e6)
    finally:
        for client, _cookie in clients.values():
            client.writer.close()
        for server, _port in servers.values():
            server.stop()
    bare = per_request["bare"]
    return {
        "method": f"in-process, sequential, best of {repeats} x {requests} requests",
        "cpu_us_per_request": {k: round(v, 1) for k, v in per_request.items()},
        "library_cpu_us": {k: round(v - bare, 1) for k, v in per_request.items() if k != "bare"},
        "library": str(Path(tornado_mongo_session.__file__ or "?").parent),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    if MemorySessionStore is None:
        print(json.dumps({"pending": "MemorySessionStore is not in this tree"}))
        return
    print(json.dumps(asyncio.run(measure(args.requests, args.repeats))))


if __name__ == "__main__":
    main()
