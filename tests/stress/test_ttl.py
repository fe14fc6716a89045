"""The server itself deletes an expired session document, through the TTL index on expires_at.

The library never loads an expired session (it checks ``expires_at``); deleting the document is
the server's job where it has TTL indexes: MongoDB's TTL monitor runs every 60 s, FerretDB 2's
DocumentDB deletes through a pg_cron job once a minute. The wait is bounded (about 2 minutes).
FerretDB 1.x refuses the index (``purge_expired()`` is the way there): the test skips.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import pytest
from helpers import Clock, serve, session_id_of
from mongo_helpers import close_async_client, make_async_client
from reliability_report import FAIL, PASS, record
from stress_support import ROUTES, LoadClient, server_description

from tornado_mongo_session import MongoSessionStore, SessionSettings
from tornado_mongo_session.clock import utc_now

pytestmark = [pytest.mark.stress, pytest.mark.timeout(300)]

MAX_WAIT = 150.0
POLL = 2.0
IDLE_TIMEOUT = 600.0


async def new_session(store: MongoSessionStore, clock: Clock) -> str:
    settings = SessionSettings(cookie_secure=False, idle_timeout=IDLE_TIMEOUT)
    async with serve(
        ROUTES, session_store=store, session_settings=settings, session_clock=clock
    ) as app:
        client = LoadClient(app.base)
        try:
            outcome = await client.fetch("/w?k=a&v=1", method="POST")
        finally:
            client.close()
    assert outcome.code == 200
    assert outcome.response is not None
    cookie = outcome.response.cookie_value()
    assert cookie is not None
    return session_id_of(cookie)


async def test_the_server_deletes_an_expired_session_document(
    mongo_url: str, db_name: str, sync_db: Any
) -> None:
    client = make_async_client("pymongo", mongo_url)
    try:
        store = MongoSessionStore(client[db_name]["sessions"])
        await store.ensure_indexes()
        ttl = [
            index
            for index in sync_db.sessions.index_information().values()
            if "expireAfterSeconds" in index
        ]
        if not ttl:
            pytest.skip("the server refused the TTL index: purge_expired() deletes there")
        # Made "earlier" by a clock set back: its idle deadline passed a minute ago.
        expired = await new_session(store, Clock(utc_now() - timedelta(seconds=IDLE_TIMEOUT + 60)))
        live = await new_session(store, Clock())
    finally:
        await close_async_client(client)

    started = time.monotonic()
    gone_after: float | None = None
    while time.monotonic() - started < MAX_WAIT:
        if sync_db.sessions.find_one({"_id": expired}) is None:
            gone_after = time.monotonic() - started
            break
        await asyncio.sleep(POLL)
    live_kept = sync_db.sessions.find_one({"_id": live}) is not None

    ok = gone_after is not None and live_kept
    record(
        "the server deletes an expired session (TTL index)",
        group="5",
        done=(
            "ensure_indexes(), then two sessions through HTTP: one whose expires_at passed a "
            "minute ago, one live; the raw collection polled every 2 s for at most "
            f"{MAX_WAIT:.0f} s"
        ),
        measured={
            "server": server_description(mongo_url),
            "TTL index": ttl[0].get("key"),
            "expired document deleted after s": (
                round(gone_after, 1) if gone_after is not None else "never"
            ),
            "live document kept": live_kept,
        },
        verdict=PASS if ok else FAIL,
    )
    assert gone_after is not None, f"the expired document was still there after {MAX_WAIT:.0f} s"
    assert live_kept
