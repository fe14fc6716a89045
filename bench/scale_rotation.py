"""The rotation's load: database writes per second per active user, measured in one process.

Each group is an application with its own ``MongoSessionStore`` (its own client, whose command
listener counts what the group sends) and settings: ``token_ttl`` as given, every other setting
at its default (``touch_interval`` 60 s, three tokens kept). Its users each open a session (one
insert, before the window), then send a read every ``gap`` seconds (±10 %, first request at a
random phase) through bench/cpu.py's keep-alive client, following ``Set-Cookie`` as a browser
does. Over the window, every ``update`` the group sends is the rotation's (a read changes no
data; the deadline is pushed by the rotation's own update, or by a touch every 60 s).
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tornado.httpserver
import tornado.netutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

import scale_app
from cpu import Client
from pymongo import AsyncMongoClient

from tornado_mongo_session import MongoSessionStore


@dataclass
class Group:
    token_ttl: float
    gap: float
    users: int


async def _user(
    port: int, group: Group, start: float, until: float, rng: random.Random
) -> tuple[int, int]:
    """One user: requests sent and new cookies received during the window."""
    # Sessions open at random times over the lead-in, so that when the window starts their
    # rotations are spread over a whole period instead of all falling due together.
    lead_in = max(group.token_ttl, group.gap) + group.gap
    await asyncio.sleep(max(0.0, start - rng.uniform(0, lead_in) - time.monotonic()))
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    client = Client(reader, writer)
    requests = rotations = 0
    try:
        cookie = await client.get("/new", None)
        while True:
            delay = group.gap * rng.uniform(0.9, 1.1)
            if time.monotonic() + delay >= until:
                break
            await asyncio.sleep(delay)
            counted = start <= time.monotonic() < until
            new = await client.get("/read", cookie)
            requests += counted
            if new and new != cookie:
                rotations += counted
                cookie = new
    finally:
        writer.close()
    return requests, rotations


def lead_in_s(groups: list[Group]) -> float:
    """How long before the window the sessions start to open."""
    return max(max(g.token_ttl, g.gap) + g.gap for g in groups) + 1.0


async def rotation_load(
    mongo_url: str, db: str, groups: list[Group], seconds: float
) -> list[dict[str, Any]]:
    """Run every group at once for ``seconds``; their writes per second per user."""
    rng = random.Random(14)
    setups = []
    for index, group in enumerate(groups):
        counter, _pool = scale_app.install_stats()
        client: AsyncMongoClient[Any] = AsyncMongoClient(
            mongo_url, tz_aware=True, event_listeners=[counter]
        )
        store = MongoSessionStore(client[db][f"sessions_{index}"])
        app = scale_app.application(
            store, rotator=None, session_settings=scale_app.settings(token_ttl=group.token_ttl)
        )
        server = tornado.httpserver.HTTPServer(app)
        sockets = tornado.netutil.bind_sockets(0, address="127.0.0.1")
        server.add_sockets(sockets)
        setups.append((group, counter, client, server, sockets[0].getsockname()[1]))
    out = []
    try:
        start = time.monotonic() + lead_in_s(groups)
        until = start + seconds
        tasks = [
            asyncio.ensure_future(_user(port, group, start, until, rng))
            for group, _counter, _client, _server, port in setups
            for _ in range(group.users)
        ]
        await asyncio.sleep(max(0.0, start - time.monotonic()))
        before = [dict(counter.by_name) for _g, counter, _c, _s, _p in setups]
        await asyncio.sleep(max(0.0, until - time.monotonic()))
        after = [dict(counter.by_name) for _g, counter, _c, _s, _p in setups]
        elapsed = time.monotonic() - start
        results = await asyncio.gather(*tasks)
        at = 0
        for (group, *_rest), counts, final in zip(setups, before, after, strict=True):
            mine = results[at : at + group.users]
            at += group.users
            updates = final.get("update", 0) - counts.get("update", 0)
            inserts = final.get("insert", 0) - counts.get("insert", 0)
            requests = sum(r for r, _ in mine)
            out.append(
                {
                    "token_ttl": group.token_ttl,
                    "gap_s": group.gap,
                    "users": group.users,
                    "seconds": round(elapsed, 1),
                    "requests": requests,
                    "rotations_seen": sum(r for _, r in mine),
                    "updates": updates,
                    "inserts_in_window": inserts,
                    "writes_per_user_s": round(updates / group.users / elapsed, 4),
                    "requests_per_user_s": round(requests / group.users / elapsed, 3),
                }
            )
    finally:
        for _group, _counter, client, server, _port in setups:
            server.stop()
            await client.drop_database(db)
            await client.close()
    return out
