"""One app process of tests/test_multiprocess.py: a Tornado app with its own database client.

Several of these, each a separate OS process, serve the same sessions (same database), as
several Tornado processes or hosts do in production::

    python tests/multiprocess_app.py --url URL --db NAME --driver pymongo|motor \\
        --token-ttl SECONDS --tokens-kept N

It listens on a free 127.0.0.1 port, prints ``port <n>`` on stdout, and serves until SIGTERM.
Routes: the stress tests' ``POST /w?k=&v=`` (sets one key, answers ``{id, loaded}``) and
``GET /r`` (answers ``{id, loaded, data}``); ``POST /login?user=`` binds a user (answers
``ok``), ``GET /devices?user=`` lists the user's session handles and ``POST
/revoke?user=[&keep=]`` revokes them (answers ``{revoked}``), through this process's store;
``POST /clock?at=<epoch seconds>`` freezes its
``session_clock`` there (``/clock`` without ``at``: the real clock again), so that several
processes can agree that a token has aged without sleeping. The rotator is the default one
(``IntervalRotator``).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from datetime import datetime, timezone
from typing import Any

import pymongo
import tornado.httpserver
import tornado.netutil
import tornado.web
from stress.stress_support import ROUTES  # tests/ is sys.path[0]: this script's folder

from tornado_mongo_session import MongoSessionStore, SessionMixin, SessionSettings


class SettableClock:
    """The real clock, or a frozen instant the test sets through ``/clock``."""

    def __init__(self) -> None:
        self.frozen: datetime | None = None

    def __call__(self) -> datetime:
        return self.frozen or datetime.now(timezone.utc)


class Clock(tornado.web.RequestHandler):
    def post(self) -> None:
        clock: SettableClock = self.settings["session_clock"]
        at = self.get_argument("at", None)
        clock.frozen = None if at is None else datetime.fromtimestamp(float(at), timezone.utc)
        self.write({"frozen": at})


class Login(SessionMixin, tornado.web.RequestHandler):
    def post(self) -> None:
        self.session.bind_user(self.get_argument("user"))
        self.write("ok")


class Devices(tornado.web.RequestHandler):
    async def get(self) -> None:
        store: MongoSessionStore = self.settings["session_store"]
        found = await store.list_user_sessions(self.get_argument("user"))
        self.write({"handles": [session.handle for session in found]})

    async def post(self) -> None:
        store: MongoSessionStore = self.settings["session_store"]
        keep = self.get_argument("keep", None)
        self.write({"revoked": await store.revoke_user(self.get_argument("user"), keep=keep)})


def make_client(driver: str, url: str) -> Any:
    if driver == "pymongo":
        return pymongo.AsyncMongoClient(url, serverSelectionTimeoutMS=5000)
    from motor.motor_asyncio import AsyncIOMotorClient

    return AsyncIOMotorClient(url, serverSelectionTimeoutMS=5000)


async def serve(args: argparse.Namespace) -> None:
    client = make_client(args.driver, args.url)
    settings = SessionSettings(
        cookie_secure=False, token_ttl=args.token_ttl, tokens_kept=args.tokens_kept
    )
    app = tornado.web.Application(
        [
            *ROUTES,
            ("/clock", Clock),
            ("/login", Login),
            ("/devices", Devices),
            ("/revoke", Devices),
        ],
        session_store=MongoSessionStore(client[args.db]["sessions"]),
        session_settings=settings,
        session_clock=SettableClock(),
    )
    sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
    server = tornado.httpserver.HTTPServer(app)
    server.add_sockets(sockets)
    stopped = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopped.set)
    print(f"port {sockets[0].getsockname()[1]}", flush=True)
    try:
        await stopped.wait()
    finally:
        server.stop()
        await server.close_all_connections()
        result = client.close()
        if asyncio.iscoroutine(result):
            await result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--url", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--driver", choices=["pymongo", "motor"], default="pymongo")
    parser.add_argument("--token-ttl", type=float, required=True)
    parser.add_argument("--tokens-kept", type=int, required=True)
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
