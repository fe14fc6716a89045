"""Issue 11 item 14: values some servers refuse never fail another user's request.

FerretDB 1.x drops the connection over NaN, MinKey, MaxKey, Code and Decimal128 (and refuses
infinities), which made the driver pause its pool and failed other users' requests. The Mongo
store asks the server's ``buildInfo`` once, before its first write, and on such a server refuses
those values before sending (``TypeError`` naming the key: a 500 for that request, nothing
written). MongoDB and FerretDB 2 store them, and the store sends them as they are.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Iterator
from typing import Any

import mongo_server
import pytest
from bson import json_util
from handlers import JSON
from helpers import Browser, Clock, LogRecords, session_app
from mongo_helpers import close_async_client, lacks_atomic_updates, make_async_client

from tornado_mongo_session import MongoSessionStore
from tornado_mongo_session._bson import FERRETDB1_REFUSED, check_refused

SPECIAL = {
    "nan": {"$numberDouble": "NaN"},
    "infinity": {"$numberDouble": "Infinity"},
    "minkey": {"$minKey": 1},
    "maxkey": {"$maxKey": 1},
    "code": {"$code": "function () {}"},
    "decimal": {"$numberDecimal": "1.5"},
    "nested nan": {"a": [1, {"b": {"$numberDouble": "NaN"}}]},
}


def special(name: str) -> str:
    return json_util.dumps({"k": SPECIAL[name]}, json_options=JSON).replace(
        '"k"', f'"{name.replace(" ", "_")}"', 1
    )


@pytest.fixture(scope="module")
def ferretdb1() -> Iterator[mongo_server.PrivateServer]:
    server = mongo_server.PrivateServer(kind="ferretdb1")
    try:
        server.start()
    except Exception as exc:
        pytest.skip(f"FerretDB 1.24 cannot run here: {exc}")
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
async def old_ferretdb_store(
    ferretdb1: mongo_server.PrivateServer, driver: str
) -> AsyncIterator[MongoSessionStore]:
    client = make_async_client(driver, ferretdb1.url, serverSelectionTimeoutMS=2000)
    try:
        yield MongoSessionStore(client.values[f"s_{driver}"])
    finally:
        await close_async_client(client)


async def test_refused_values_fail_only_their_own_request_on_ferretdb1(
    old_ferretdb_store: MongoSessionStore, library_log: LogRecords
) -> None:
    clock = Clock()
    async with session_app(old_ferretdb_store, clock, cookie_secure=False) as server:
        victim, other = Browser(server), Browser(server)
        await victim.set(cart=[1, 2])
        await other.set(n=0)

        async def others_reads() -> list[int]:
            codes = []
            for _ in range(30):
                codes.append((await server.fetch("/get", cookie=other.cookie)).code)
            return codes

        async def refused_writes() -> list[tuple[int, str]]:
            answers = []
            for name in SPECIAL:
                response = await victim.fetch("/set", method="POST", body=special(name))
                answers.append((response.code, name))
            return answers

        reads, writes = await asyncio.gather(others_reads(), refused_writes())
        assert set(reads) == {200}  # nobody else's request failed
        assert writes == [(500, name) for name in SPECIAL]
        assert (await victim.get())["data"] == {"cart": [1, 2]}  # nothing written
        messages = [r.getMessage() for r in library_log.records]
        for name in SPECIAL:
            key = name.replace(" ", "_")
            assert any(f"session key '{key}'" in m for m in messages), (key, messages)
        # The same values in a new session (an insert) are refused alike.
        fresh = Browser(server)
        assert (await fresh.fetch("/set", method="POST", body=special("nan"))).code == 500
        assert fresh.cookie is None


async def test_mongodb_and_ferretdb2_store_them(store: MongoSessionStore, sync_client: Any) -> None:
    if lacks_atomic_updates(sync_client):
        pytest.skip("the shared server is FerretDB 1.x, which refuses them")
    clock = Clock()
    async with session_app(store, clock, cookie_secure=False) as server:
        browser = Browser(server)
        for name in SPECIAL:
            assert (await browser.fetch("/set", method="POST", body=special(name))).code == 200
        data = (await browser.get())["data"]
    assert math.isnan(data["nan"])
    assert data["infinity"] == math.inf
    assert set(data) == {name.replace(" ", "_") for name in SPECIAL}


@pytest.fixture
def store(collection: Any) -> MongoSessionStore:
    return MongoSessionStore(collection)


def test_check_refused_names_the_key() -> None:
    check_refused({"a": 1.5, "b": [1, {"c": "x"}]}, FERRETDB1_REFUSED)
    with pytest.raises(TypeError, match=r"session key .deep..*NaN"):
        check_refused({"ok": 1, "deep": {"x": [0, math.nan]}}, FERRETDB1_REFUSED)
    with pytest.raises(TypeError, match=r"session key .inf..*infinite"):
        check_refused({"inf": -math.inf}, FERRETDB1_REFUSED)
