"""The library's own CPU time per request, measured in one process, against targets.

wrk's numbers on a 2-core machine shared with the server move by several percent from run to
run, more than the library's whole cost. This measures it where nothing else interferes: a
Tornado server and a plain HTTP/1.1 keep-alive client in the same process and thread, one
request at a time, ``time.thread_time()`` around a batch. The client and Tornado cost the same
in every scenario, so a scenario's CPU per request minus the bare handler's is what the mixin
and the store add. Each figure is the best of several batches (the least disturbed).

Every session scenario runs on a realistic session of 10 keys (ids, strings, a list, a nested
cart of 5 items, a datetime): the memory store for untouched, read (the handler reads one key),
write (it sets one key) and rotate (a read on an app whose token is due on every request), and
the cookie store for cookie-store read. Untouched is a visitor without a cookie whose handler
never looks at the session (no store command). Each extra CPU is printed as a ratio of the bare
handler's against its target (issue 10), met or missed.

Part of that extra is Tornado's, and no session library on Tornado avoids it: parsing the
request's ``Cookie`` header, and writing the headers a session response carries (``Vary:
Cookie``; and where a cookie is sent, ``Set-Cookie`` and ``Cache-Control: private``). The
``headers:`` scenarios measure it: a handler without the library, sent the same cookie, answering
with the same headers (added as the library adds them). Each scenario's share is printed beside
it, and what remains is the library's own.

Usage: ``python bench/cpu.py [--requests 1000] [--repeats 10] [--events] [--profile SCENARIO]``
(``--events``: with one no-op ``session_events`` listener, to see what the event hooks cost);
prints the table, then one JSON object as its last line. ``--profile SCENARIO`` instead runs
that scenario and the bare handler once each under cProfile and prints, per request, the
functions whose own time differs most between them (cProfile's overhead inflates every
figure: read it for where the time goes, not for how much). Imported by bench/run.py's
report; ``PYTHONPATH=DIR`` measures another copy of the library.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import tornado.httpserver
import tornado.netutil
import tornado.web

sys.path.insert(0, str(Path(__file__).resolve().parent))

import app as bench_app

import tornado_mongo_session
from tornado_mongo_session import NeverRotator, SessionMixin, SessionSettings
from tornado_mongo_session.config import SessionConfig

try:  # written alongside this benchmark; report "pending" without them
    from tornado_mongo_session.stores.cookie import CookieSessionStore
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
    "cookie-store read": ("/cookie/read", "/cookie/new", False),
    # Tornado alone, sent the same cookie and answering with the same headers (no library).
    "headers: read": ("/headers/read", "/new", False),
    "headers: write": ("/headers/write", "/new", False),
    "headers: cookie-store read": ("/headers/read", "/cookie/new", False),
}

TORNADO_SHARE: dict[str, str] = {
    "read": "headers: read",
    "write": "headers: write",
    "rotate": "headers: write",
    "cookie-store read": "headers: cookie-store read",
}
"""The ``headers:`` scenario holding Tornado's share of each session scenario's extra CPU."""

TARGETS: dict[str, float] = {
    "untouched": 0.02,
    "read": 0.15,
    "write": 0.30,
    "rotate": 0.25,
    "cookie-store read": 0.20,
}
"""The most extra CPU each scenario may add, as a fraction of the bare handler's (issue 10)."""


def realistic_session() -> dict[str, Any]:
    """Ten keys of what a web app keeps: ids, strings, a list, a cart of 5 items, a datetime."""
    return {
        "n": 0,
        "user_id": "64f1c2a9e4b0a1b2c3d4e5f6",
        "account": 48213,
        "name": "Ada Lovelace",
        "email": "ada@example.org",
        "locale": "en-GB",
        "roles": ["reader", "editor", "billing"],
        "cart": {
            "currency": "EUR",
            "items": [
                {"sku": f"SKU-{1000 + i}", "name": f"Item number {i}", "qty": i + 1, "price": 9.5}
                for i in range(5)
            ],
        },
        "last_login": datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc),
        "csrf": "q5dD3oF0h2mX6yT8rB1vN4kL7pS9wE2z",
    }


class NewRealistic(SessionMixin, tornado.web.RequestHandler):
    """Set-up only (not counted): a new session holding :func:`realistic_session`."""

    def get(self) -> None:
        self.session.update(realistic_session())
        self.write("new")


SETTINGS = SessionSettings(cookie_secure=False)
"""The session settings of every scenario (plain http, on loopback)."""


def _cookie_attributes() -> str:
    """What follows the value in the library's ``Set-Cookie`` for a save under
    :data:`SETTINGS` (composed by the library once, here, so the ``headers:`` scenarios send
    what it sends)."""
    config = SessionConfig({"session_settings": SETTINGS})
    header = config.cookie_header("v", int(SETTINGS.idle_timeout))
    assert header is not None
    return header[len(f"{config.cookie_name}=v") :]


class SessionHeaders(tornado.web.RequestHandler):
    """No library: Tornado alone, answering a request that carries a session cookie with the
    headers the library's response carries. ``sends_cookie``: the cookie is sent back (as a
    write or a rotation does), with ``Cache-Control: private``; else only ``Vary: Cookie``.

    The headers go in as the library puts them, through the header map's item assignment (no
    per-call checks: the library checks its parts once); the cookie is the one received, with
    the attributes of the library's under the benchmark's settings, so it has the same length.
    """

    sends_cookie = False
    attributes = _cookie_attributes()

    def get(self) -> None:
        headers = self._headers
        headers["Vary"] = "Cookie"
        if self.sends_cookie:
            headers["Set-Cookie"] = self.request.headers["Cookie"] + self.attributes
            headers["Cache-Control"] = "private"
        self.write("n=0")


class SessionHeadersSent(SessionHeaders):
    sends_cookie = True


class Client:
    """A minimal HTTP/1.1 keep-alive client: GET, a Cookie header, Content-Length bodies."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def get(self, path: str, cookie: str | None) -> str | None:
        """Send one request; return the response's ``name=value`` Set-Cookie pair, if any.

        It reads a response at one cost whatever headers it holds: a scenario's extra headers
        (``Set-Cookie``, ``Cache-Control``, ``Vary``) cost the server that writes them, and
        must not cost this client a line of parsing each, which would count as the library's.
        """
        head = f"GET {path} HTTP/1.1\r\nHost: bench\r\n"
        if cookie:
            head += f"Cookie: {cookie}\r\n"
        self.writer.write((head + "\r\n").encode("latin-1"))
        raw = await self.reader.readuntil(b"\r\n\r\n")
        if not raw.startswith(b"HTTP/1.1 200"):
            status = raw.split(b"\r\n", 1)[0].decode("latin-1")
            raise RuntimeError(f"{path}: {status}")
        # Tornado writes header names normalized: these are exact.
        at = raw.find(b"\r\nContent-Length: ")
        if at >= 0:
            start = at + len(b"\r\nContent-Length: ")
            length = int(raw[start : raw.index(b"\r\n", start)])
            if length:
                await self.reader.readexactly(length)
        at = raw.rfind(b"\r\nSet-Cookie: ")  # the last one, as a browser keeps it
        if at < 0:
            return None
        start = at + len(b"\r\nSet-Cookie: ")
        return raw[start : raw.index(b"\r\n", start)].split(b";", 1)[0].decode("latin-1")


def routes(first: str | None = None) -> list[Any]:
    """The benchmark's rules, the one of path ``first`` first.

    Tornado tries the rules in order, a regular expression each, so a handler further down the
    list costs every request a match per rule above it: that is the router's, not the
    library's, and each scenario is measured on an application where its handler comes first,
    as the bare handler does.
    """
    cookie_store = CookieSessionStore("bench-cookie-secret-0123456789abcdef")

    def on_cookies(cls: type[Any]) -> type[Any]:
        return type(f"{cls.__name__}Cookie", (cls,), {"session_store": cookie_store})

    rules = [
        (r"/bare", bench_app.Bare),
        (r"/untouched", bench_app.Untouched),
        (r"/read", bench_app.Read),
        (r"/write", bench_app.Write),
        (r"/new", NewRealistic),
        (r"/cookie/read", on_cookies(bench_app.Read)),
        (r"/cookie/new", on_cookies(NewRealistic)),
        (r"/headers/read", SessionHeaders),
        (r"/headers/write", SessionHeadersSent),
    ]
    rules.sort(key=lambda rule: rule[0] != first)  # stable: the others keep their order
    return rules


async def measure(requests: int, repeats: int, *, events: bool = False) -> dict[str, Any]:
    bench_app.STATS = bench_app.Stats(bench_app.CommandCounter())
    assert MemorySessionStore is not None
    common: dict[str, Any] = {
        "session_settings": SETTINGS,
        "session_store": MemorySessionStore(max_sessions=100_000),
        "log_function": lambda handler: None,
    }
    if events:  # one listener that does nothing: what the event hooks themselves cost
        common["session_events"] = [lambda event: None]
    servers: dict[str, tuple[tornado.httpserver.HTTPServer, int]] = {}
    for name, (path, _setup, rotating) in SCENARIOS.items():
        rotator = bench_app.EveryRequest() if rotating else NeverRotator()
        application = tornado.web.Application(routes(path), session_rotator=rotator, **common)
        server = tornado.httpserver.HTTPServer(application)
        sockets = tornado.netutil.bind_sockets(0, address="127.0.0.1")
        server.add_sockets(sockets)
        servers[name] = (server, sockets[0].getsockname()[1])
    per_request = dict.fromkeys(SCENARIOS, float("inf"))
    clients: dict[str, tuple[Client, str | None]] = {}
    try:
        for name, (path, setup, _rotating) in SCENARIOS.items():
            reader, writer = await asyncio.open_connection("127.0.0.1", servers[name][1])
            client = Client(reader, writer)
            cookie = await client.get(setup, None) if setup else None
            for _ in range(requests // 5):  # warm-up
                cookie = await client.get(path, cookie) or cookie
            clients[name] = (client, cookie)
        # Round-robin over the scenarios, so a disturbance hits them all alike; keep the best.
        for _ in range(repeats):
            for name, (path, _setup, rotating) in SCENARIOS.items():
                client, cookie = clients[name]
                issued = 0
                gc.collect()
                start = time.thread_time()
                for _ in range(requests):
                    sent = await client.get(path, cookie)
                    if sent:
                        cookie = sent
                        issued += 1
                elapsed = time.thread_time() - start
                if rotating and issued != requests:
                    raise RuntimeError(f"{name}: {issued} of {requests} responses rotated")
                clients[name] = (client, cookie)
                per_request[name] = min(per_request[name], elapsed / requests * 1e6)
    finally:
        for client, _cookie in clients.values():
            client.writer.close()
        for server, _port in servers.values():
            server.stop()
    if bench_app.STATS.misses:
        raise RuntimeError(f"{bench_app.STATS.misses} requests lost their session")
    bare = per_request["bare"]
    extra = {k: v - bare for k, v in per_request.items() if k != "bare"}
    share = {
        name: extra[floor]
        for name, floor in TORNADO_SHARE.items()
        if name in extra and floor in extra  # a subset of the scenarios may be measured
    }
    return {
        "method": f"in-process, sequential, best of {repeats} x {requests} requests",
        "session": "10 keys (bench/cpu.py realistic_session)",
        "cpu_us_per_request": {k: round(v, 1) for k, v in per_request.items()},
        "library_cpu_us": {k: round(v, 1) for k, v in extra.items() if k in TARGETS},
        "tornado_share_us": {k: round(v, 1) for k, v in share.items()},
        "library_own_us": {k: round(extra[k] - v, 1) for k, v in share.items()},
        "ratios": {
            name: {
                "ratio": round(extra[name] / bare, 3),
                "target": target,
                "met": extra[name] / bare <= target,
            }
            for name, target in TARGETS.items()
            if name in extra
        },
        "library": str(Path(tornado_mongo_session.__file__ or "?").parent),
    }


def table(result: dict[str, Any]) -> list[str]:
    """The result as lines: each scenario's extra CPU, its ratio to the bare handler, target."""
    bare = result["cpu_us_per_request"]["bare"]
    lines = [f"bare handler: {bare:.0f} µs CPU per request ({result['method']})"]
    lines.append(
        f"{'scenario':<18} {'extra µs':>9} {'Tornado':>8} {'own':>6} {'ratio':>7} {'target':>7}"
        "  verdict"
    )
    share, own = result["tornado_share_us"], result["library_own_us"]
    for name, row in result["ratios"].items():
        split = f"{share[name]:>8.1f} {own[name]:>6.1f}" if name in share else f"{'':>8} {'':>6}"
        lines.append(
            f"{name:<18} {result['library_cpu_us'][name]:>9.1f} {split} {row['ratio']:>+6.2f}x "
            f"{row['target']:>6.2f}x  {'met' if row['met'] else 'MISSED'}"
        )
    lines.append(
        "Tornado: its share of the extra (the session's Cookie header parsed, the response's "
        "session headers written; the headers: scenarios); own: the library's"
    )
    return lines


def profile(scenario: str, requests: int) -> None:
    """Print where ``scenario``'s extra time goes: cProfile's own time per function per
    request, the bare handler's subtracted (measured the same way, in the same process)."""
    import cProfile
    import pstats

    stats: dict[str, dict[Any, tuple[int, float]]] = {}
    for name in ("bare", scenario):
        only = {name: SCENARIOS[name]}
        saved = dict(SCENARIOS)
        SCENARIOS.clear()
        SCENARIOS.update(only)
        profiler = cProfile.Profile()
        try:
            profiler.enable()
            asyncio.run(_run_only(name, requests))
            profiler.disable()
        finally:
            SCENARIOS.clear()
            SCENARIOS.update(saved)
        raw = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
        stats[name] = {key: (row[1], row[2]) for key, row in raw.items()}
    bare, measured = stats["bare"], stats[scenario]
    rows = []
    for key in set(bare) | set(measured):
        calls = (measured.get(key, (0, 0.0))[0] - bare.get(key, (0, 0.0))[0]) / requests
        own = (measured.get(key, (0, 0.0))[1] - bare.get(key, (0, 0.0))[1]) / requests * 1e6
        rows.append((own, calls, key))
    rows.sort(key=lambda row: row[0], reverse=True)
    print(f"{scenario}: own time per request over the bare handler's, under cProfile")
    print(f"{'µs':>7} {'calls':>6}  function")
    for own, calls, (path, line, function) in rows[:40]:
        print(f"{own:7.2f} {calls:6.2f}  {Path(path).name}:{line}({function})")


async def _run_only(name: str, requests: int) -> None:
    """``requests`` requests of one scenario, after its set-up (the profile's workload)."""
    path, setup, rotating = SCENARIOS[name]
    bench_app.STATS = bench_app.Stats(bench_app.CommandCounter())
    assert MemorySessionStore is not None
    application = tornado.web.Application(
        routes(path),
        session_rotator=bench_app.EveryRequest() if rotating else NeverRotator(),
        session_settings=SETTINGS,
        session_store=MemorySessionStore(max_sessions=100_000),
        log_function=lambda handler: None,
    )
    server = tornado.httpserver.HTTPServer(application)
    sockets = tornado.netutil.bind_sockets(0, address="127.0.0.1")
    server.add_sockets(sockets)
    reader, writer = await asyncio.open_connection("127.0.0.1", sockets[0].getsockname()[1])
    try:
        client = Client(reader, writer)
        cookie = await client.get(setup, None) if setup else None
        for _ in range(requests):
            cookie = await client.get(path, cookie) or cookie
    finally:
        writer.close()
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument(
        "--events", action="store_true", help="register one no-op session_events listener"
    )
    parser.add_argument(
        "--profile",
        choices=[name for name in SCENARIOS if name != "bare"],
        help="profile one scenario against the bare handler instead of measuring",
    )
    args = parser.parse_args()
    if args.profile:
        profile(args.profile, args.requests)
        return
    if MemorySessionStore is None:
        print(json.dumps({"pending": "MemorySessionStore is not in this tree"}))
        return
    result = asyncio.run(measure(args.requests, args.repeats, events=args.events))
    print("\n".join(table(result)))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
