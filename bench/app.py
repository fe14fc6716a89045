"""The Tornado process the benchmark drives: every scenario of bench/run.py is a route here.

Two applications share one event loop, one PyMongo ``AsyncMongoClient`` and one collection:

- the main one (rotation off: ``NeverRotator``, so a read costs one ``find``): the bare handler,
  the mixin handlers (untouched, read, write; Mongo, memory and cookie stores), the floors
  (hand-written ``find_one`` / ``find_one`` + ``update_one``) and the original design;
- the rotating one (:class:`EveryRequest`: a token is due on every request).

A PyMongo ``CommandListener`` on the client counts the commands every request sends; ``GET
/_stats`` answers those counts, how many scenario requests were served, how many sessions that
should have loaded did not, and the process's CPU time, so the driver can turn deltas into
per-request figures. ``GET /_profile/start`` and ``/_profile/stop`` wrap a pyinstrument or
cProfile profile of the loop thread around a run. Not part of the library: benchmark code.

Usage: ``python bench/app.py --mongo-url URL --db NAME --port P --rotate-port Q
[--profile-dir DIR]``; prints ``READY`` on stdout once both ports listen.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import pstats
import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator, MutableMapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import tornado.httpserver
import tornado.web
from pymongo import AsyncMongoClient, monitoring

import tornado_mongo_session as _library
from tornado_mongo_session import (
    MongoSessionStore,
    NeverRotator,
    SessionMixin,
    SessionSettings,
    SessionStore,
    TokenRotator,
)

try:  # the stores other helpers write; the benchmark runs without them
    from tornado_mongo_session.stores.memory import MemorySessionStore
except ImportError:  # pragma: no cover - depends on the tree
    MemorySessionStore = None  # type: ignore[assignment,misc]
try:
    from tornado_mongo_session.stores.cookie import CookieSessionStore
except ImportError:  # pragma: no cover - depends on the tree
    CookieSessionStore = None  # type: ignore[assignment,misc]

# Handshake and monitoring chatter, not work a request asked for.
_NOT_REQUEST_WORK = frozenset(
    {"hello", "ismaster", "isMaster", "ping", "endSessions", "buildInfo", "buildinfo"}
    | {"saslStart", "saslContinue", "getnonce", "authenticate"}
)


class CommandCounter(monitoring.CommandListener):
    """Count the commands the app's client sends, by name (handshakes excluded)."""

    def __init__(self) -> None:
        self.by_name: Counter[str] = Counter()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name not in _NOT_REQUEST_WORK:
            self.by_name[event.command_name] += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


class Stats:
    """What ``/_stats`` reports: the driver takes deltas around each measured run."""

    def __init__(self, commands: CommandCounter) -> None:
        self.commands = commands
        self.requests = 0
        self.misses = 0  # a request whose valid cookie did not open its session

    def snapshot(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "misses": self.misses,
            "commands": dict(self.commands.by_name),
            "cpu_s": time.process_time(),
        }


STATS: Stats  # set in main()


class EveryRequest(TokenRotator):
    """Rotate on every request (keep 3 tokens): the rotating scenarios' rotator.

    Not ``IntervalRotator(every=1e-6)``: the library's clock is cut to whole milliseconds (what
    BSON stores), so requests faster than a millisecond would find their token not yet due.
    """

    keep = 3

    def should_rotate(self, *, rotated_at: datetime, now: datetime) -> bool:
        return True


class Counted(tornado.web.RequestHandler):
    """Count every finished scenario request."""

    def on_finish(self) -> None:
        STATS.requests += 1
        super().on_finish()

    def check_xsrf_cookie(self) -> None:  # GET only; nothing to check
        pass


# -- scenarios ---------------------------------------------------------------------------------


class Bare(Counted):
    """No mixin: the yardstick of every ratio."""

    def get(self) -> None:
        self.write("ok")


class Untouched(SessionMixin, Counted):
    """The mixin is there; the handler never looks at the session."""

    def get(self) -> None:
        self.write("ok")


class Read(SessionMixin, Counted):
    """Read one key of a valid session."""

    def get(self) -> None:
        n = self.session.get("n")
        if self.session.is_new:
            STATS.misses += 1
        self.write(f"n={n}")


class Write(SessionMixin, Counted):
    """Change one key of a valid session."""

    def get(self) -> None:
        if self.session.is_new:
            STATS.misses += 1
        n = int(self.session.get("n", 0)) + 1
        self.session["n"] = n
        self.write(f"n={n}")


class New(SessionMixin, tornado.web.RequestHandler):
    """Set-up only (not counted): a new session holding ``n`` and a small profile."""

    def get(self) -> None:
        self.session["n"] = 0
        self.session["user"] = {"name": "bench", "roles": ["reader"], "theme": "dark"}
        self.write("new")


def _with_store(cls: type[Any], store: SessionStore) -> type[Any]:
    """A subclass of a session handler bound to ``store`` (the mixin's class attribute)."""
    return type(f"{cls.__name__}_{type(store).__name__}", (cls,), {"session_store": store})


class FloorRead(Counted):
    """The irreducible work of a session read: one ``find_one`` by ``_id``."""

    def initialize(self, collection: Any) -> None:
        self.collection = collection

    async def get(self) -> None:
        session_id = (self.get_cookie("session") or "").partition(".")[0]
        doc = await self.collection.find_one({"_id": session_id})
        if doc is None:
            STATS.misses += 1
        self.write(f"n={doc['data'].get('n') if doc else None}")


class FloorWrite(Counted):
    """The irreducible work of a session write: ``find_one`` then one ``update_one``."""

    def initialize(self, collection: Any) -> None:
        self.collection = collection

    async def get(self) -> None:
        session_id = (self.get_cookie("session") or "").partition(".")[0]
        doc = await self.collection.find_one({"_id": session_id})
        if doc is None:
            STATS.misses += 1
            n = 1
        else:
            n = int(doc["data"].get("n", 0)) + 1
        await self.collection.update_one({"_id": session_id}, {"$set": {"data.n": n}})
        self.write(f"n={n}")


# -- the original design -----------------------------------------------------------------------


class OriginalSession(MutableMapping[str, Any]):
    """The original library's session object: the data dict and a "needs saving" flag."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.do_save = False

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.data[key] = value
        self.do_save = True

    def __delitem__(self, key: str) -> None:
        del self.data[key]
        self.do_save = True

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)


_background: set[asyncio.Future[Any]] = set()


class OriginalDesign(Counted):
    """AsyncMongo-Sessions' request flow, re-implemented on the same driver and server.

    Before the handler: a cookie means one ``find`` (by ``_id``: the original looked up an
    indexed ``sid`` field); no cookie, or one that opens nothing, means a new document
    ``insert``-ed right away; a token older than ``token_ttl`` means a rotation ``update`` that
    also rewrites the whole ``data``. After the response: a changed session means a separate
    ``update`` of the whole ``data``, not awaited (the original's "writes delayed until after
    the request method"). Cookie value ``<token>@<sid>``; raw tokens stored, three kept. Two of
    the original's bugs are left out, as they would only make it look worse or fail: it evicted
    the newest token instead of the oldest, and never stored the rotation time.
    """

    COOKIE = "asyncmongo_session"

    def initialize(self, collection: Any, token_ttl: float, mode: str) -> None:
        self.collection = collection
        self.token_ttl = timedelta(seconds=token_ttl)
        self.mode = mode
        self.session: OriginalSession | None = None
        self._sid = ""

    async def prepare(self) -> None:
        now = datetime.now(timezone.utc)
        cookie = self.get_cookie(self.COOKIE)
        doc: dict[str, Any] | None = None
        if cookie and "@" in cookie:
            token, _, sid = cookie.partition("@")
            doc = await self.collection.find_one({"_id": sid})
            if doc is not None and token not in doc.get("tokens", []):
                doc = None
        if doc is None:
            if cookie and self.mode != "new":
                STATS.misses += 1
            doc = {
                "_id": str(uuid.uuid4()),
                "tokens": [str(uuid.uuid4())],
                "last_token_update": now,
                "data": {},
            }
            await self.collection.insert_one(doc)
            self._set_cookie(doc)
        elif now - doc["last_token_update"] >= self.token_ttl:
            doc["tokens"] = [str(uuid.uuid4()), *doc["tokens"]][:3]
            doc["last_token_update"] = now
            await self.collection.update_one(
                {"_id": doc["_id"]},
                {
                    "$set": {
                        "data": doc["data"],
                        "tokens": doc["tokens"],
                        "last_token_update": now,
                    }
                },
            )
            self._set_cookie(doc)
        self._sid = doc["_id"]
        self.session = OriginalSession(doc["data"])

    def _set_cookie(self, doc: dict[str, Any]) -> None:
        self.set_cookie(self.COOKIE, f"{doc['tokens'][0]}@{doc['_id']}", path="/")

    def get(self) -> None:
        session = self.session
        assert session is not None
        if self.mode in ("write", "rotate_write", "new"):
            session["n"] = int(session.get("n", 0)) + 1
            if self.mode == "new":
                session["user"] = {"name": "bench", "roles": ["reader"], "theme": "dark"}
        elif self.mode in ("read", "rotate"):
            session.get("n")
        self.write("ok")

    def on_finish(self) -> None:
        if self.mode != "new":
            super().on_finish()
        session = self.session
        if session is not None and session.do_save:
            task = asyncio.ensure_future(
                self.collection.update_one({"_id": self._sid}, {"$set": {"data": session.data}})
            )
            _background.add(task)
            task.add_done_callback(_background.discard)


# -- internal routes ---------------------------------------------------------------------------


class StatsHandler(tornado.web.RequestHandler):
    def get(self) -> None:
        self.write(STATS.snapshot())


class ProfileHandler(tornado.web.RequestHandler):
    """Start or stop a profile of the event-loop thread; the text goes to ``profile_dir``."""

    active: Any = None
    kind: str = ""

    def initialize(self, profile_dir: Path | None) -> None:
        self.profile_dir = profile_dir

    def get(self, action: str) -> None:
        cls = ProfileHandler
        if self.profile_dir is None:
            raise tornado.web.HTTPError(404)
        if action == "start":
            cls.kind = self.get_argument("kind", "pyinstrument")
            if cls.kind == "pyinstrument":
                from pyinstrument import Profiler

                cls.active = Profiler(interval=0.0005, async_mode="disabled")
                cls.active.start()
            else:
                cls.active = cProfile.Profile()
                cls.active.enable()
            self.write("started")
            return
        name = self.get_argument("name")
        self.profile_dir.mkdir(parents=True, exist_ok=True)
        summary: dict[str, Any] = {"kind": cls.kind, "name": name}
        if cls.kind == "pyinstrument":
            profiler = cls.active
            profiler.stop()
            tree = profiler.output_text(unicode=False, color=False, show_all=False)
            flat = profiler.output_text(unicode=False, color=False, flat=True)
            path = self.profile_dir / f"profile-{name}.pyinstrument.txt"
            path.write_text(f"{flat}\n\n{tree}")
            summary.update(_pyinstrument_shares(profiler))
            summary["file"] = str(path)
        else:
            profile = cls.active
            profile.disable()
            out = io.StringIO()
            stats = pstats.Stats(profile, stream=out)
            stats.sort_stats("tottime").print_stats(40)
            stats.sort_stats("cumulative").print_stats("tornado_mongo_session", 40)
            path = self.profile_dir / f"profile-{name}.cprofile.txt"
            path.write_text(out.getvalue())
            summary["file"] = str(path)
        cls.active = None
        self.write(summary)


def _pyinstrument_shares(profiler: Any) -> dict[str, Any]:
    """Where the sampled time went: the library's own frames, the driver, Tornado, the rest."""
    session = profiler.last_session
    root = session.root_frame()
    buckets: Counter[str] = Counter()
    lib_functions: Counter[str] = Counter()

    def bucket(path: str, function: str) -> str:
        if function in ("epoll.poll", "select.epoll.poll", "poll"):
            return "idle"
        if path == "<built-in>":
            return "C calls (socket I/O, hashing, ...)"
        if "tornado_mongo_session" in path:
            return "library"
        if "/pymongo/" in path or "/bson/" in path:
            return "driver"
        if "/tornado/" in path:
            return "tornado"
        if "/asyncio/" in path or "selectors" in path:
            return "event loop"
        return "other"

    def walk(frame: Any) -> None:
        own = frame.total_self_time
        if own:
            name = bucket(frame.file_path or "", frame.function or "")
            buckets[name] += own
            if name == "library":
                lib_functions[f"{frame.function} ({frame.file_path_short}:{frame.line_no})"] += own
        for child in frame.children:
            if not child.is_synthetic:  # a synthetic child's time is in total_self_time
                walk(child)

    if root is not None:
        walk(root)
    idle = buckets.pop("idle", 0.0)
    total = sum(buckets.values()) or 1.0
    return {
        "busy_s": round(total, 3),
        "idle_s": round(idle, 3),
        "self_time_share": {k: round(v / total, 4) for k, v in buckets.most_common()},
        "library_top": [(k, round(v / total, 4)) for k, v in lib_functions.most_common(12)],
    }


# -- wiring ------------------------------------------------------------------------------------


def build(
    args: argparse.Namespace,
) -> tuple[tornado.web.Application, tornado.web.Application, AsyncMongoClient[Any]]:
    counter = CommandCounter()
    global STATS
    STATS = Stats(counter)
    client: AsyncMongoClient[Any] = AsyncMongoClient(
        args.mongo_url,
        tz_aware=True,
        event_listeners=[counter],
        appname="tms-bench",
        serverSelectionTimeoutMS=5000,
    )
    db = client[args.db]
    collection = db["sessions"]
    store = MongoSessionStore(collection)
    settings = SessionSettings(cookie_secure=False, mongodb_url=args.mongo_url, database=args.db)
    common: dict[str, Any] = {
        "session_settings": settings,
        "session_store": store,
        "log_function": lambda handler: None,
        "cookie_secret": "bench-only-secret",
    }
    original = db["original_sessions"]
    routes: list[Any] = [
        (r"/bare", Bare),
        (r"/untouched", Untouched),
        (r"/read", Read),
        (r"/write", Write),
        (r"/new", New),
        (r"/floor/read", FloorRead, {"collection": collection}),
        (r"/floor/write", FloorWrite, {"collection": collection}),
        (r"/_stats", StatsHandler),
        (r"/_profile/(start|stop)", ProfileHandler, {"profile_dir": args.profile_dir}),
    ]
    for mode in ("untouched", "read", "write", "new"):
        kwargs = {"collection": original, "token_ttl": 1e9, "mode": mode}
        routes.append((rf"/original/{mode}", OriginalDesign, kwargs))
    for mode in ("rotate", "rotate_write"):
        kwargs = {"collection": original, "token_ttl": 0.0, "mode": mode}
        routes.append((rf"/original/{mode}", OriginalDesign, kwargs))
    if MemorySessionStore is not None:
        memory = MemorySessionStore(max_sessions=100_000)
        routes += [
            (r"/memory/read", _with_store(Read, memory)),
            (r"/memory/write", _with_store(Write, memory)),
            (r"/memory/new", _with_store(New, memory)),
        ]
    if CookieSessionStore is not None:
        cookie = CookieSessionStore("bench-only-cookie-secret")
        routes += [
            (r"/cookie/read", _with_store(Read, cookie)),
            (r"/cookie/new", _with_store(New, cookie)),
        ]
    main_app = tornado.web.Application(routes, session_rotator=NeverRotator(), **common)
    rotate_routes: list[Any] = [
        (r"/rotate", Read),
        (r"/rotate_write", Write),
        (r"/new", New),
        (r"/_stats", StatsHandler),
    ]
    if MemorySessionStore is not None:
        rotate_routes += [
            (r"/memory/rotate", _with_store(Read, memory)),
            (r"/memory/new", _with_store(New, memory)),
        ]
    rotate_app = tornado.web.Application(rotate_routes, session_rotator=EveryRequest(), **common)
    return main_app, rotate_app, client


async def serve(args: argparse.Namespace) -> None:
    main_app, rotate_app, client = build(args)
    await client.admin.command("ping")
    # The driver drops the database before and after a run; make the collections exist now so
    # the first measured insert does not also create one.
    db = client[args.db]
    for name in ("sessions", "original_sessions"):
        await db[name].insert_one({"_id": "warm"})
        await db[name].delete_one({"_id": "warm"})
    servers = []
    for app, port in ((main_app, args.port), (rotate_app, args.rotate_port)):
        server = tornado.httpserver.HTTPServer(app, xheaders=False)
        server.listen(port, address="127.0.0.1")
        servers.append(server)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    ready = {
        "memory": MemorySessionStore is not None,
        "cookie": CookieSessionStore is not None,
        "library": str(Path(_library.__file__).parent),
    }
    print("READY", json.dumps(ready), flush=True)
    await stop.wait()
    for server in servers:
        server.stop()
    await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mongo-url", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rotate-port", type=int, required=True)
    parser.add_argument("--profile-dir", type=Path, default=None)
    args = parser.parse_args()
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
