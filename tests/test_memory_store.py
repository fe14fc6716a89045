"""MemorySessionStore: the LRU bound, expiry, compare-and-set rotation, MongoDB-equal documents."""

from __future__ import annotations

import ast
import asyncio
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from helpers import Browser, Clock, cookie_parts, session_app, session_id_of
from mongo_helpers import close_async_client, make_async_client

from tornado_mongo_session import (
    MemorySessionStore,
    MongoSessionStore,
    NewSession,
    Rotation,
    SessionEnded,
    SessionRecord,
    SessionStoreError,
    SessionUpdate,
)
from tornado_mongo_session.clock import utc_now
from tornado_mongo_session.tokens import hash_token, new_session_id, new_token

UTC = timezone.utc
PACKAGE = Path(__file__).resolve().parent.parent / "tornado_mongo_session"


def insert_request(data: dict[str, Any], now: datetime, **ids: str) -> NewSession:
    return NewSession(
        data=data, created_at=now, now=now, expires_at=now + timedelta(hours=2), **ids
    )


async def test_least_recently_used_session_is_evicted() -> None:
    store = MemorySessionStore(max_sessions=3)
    async with session_app(store, Clock()) as server:
        a, b, c, d = (Browser(server) for _ in range(4))
        for name, browser in zip("abc", (a, b, c), strict=True):
            await browser.set(who=name)
        assert store.session_count == 3
        assert (await a.get())["data"] == {"who": "a"}  # a is now the most recently used

        await d.set(who="d")  # the fourth session: b, least recently used, goes
        assert store.session_count == 3
        assert store.document(session_id_of(b.cookie)) is None
        assert (await b.get())["data"] == {}
        for name, browser in zip("acd", (a, c, d), strict=True):
            assert (await browser.get())["data"] == {"who": name}


async def test_writes_count_as_use() -> None:
    store = MemorySessionStore(max_sessions=2)
    async with session_app(store, Clock()) as server:
        a, b, c = Browser(server), Browser(server), Browser(server)
        await a.set(n=1)
        await b.set(n=1)
        await a.set(n=2)  # an update moves a behind b
        await c.set(n=1)
        assert store.document(session_id_of(b.cookie)) is None
        assert store.document(session_id_of(a.cookie)) is not None


def test_max_sessions_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_sessions"):
        MemorySessionStore(max_sessions=0)


async def test_expired_sessions_are_not_loaded_and_purge_deletes_them() -> None:
    clock = Clock()
    store = MemorySessionStore(clock=clock)
    async with session_app(store, clock, idle_timeout=60, touch_interval=10) as server:
        old, fresh = Browser(server), Browser(server)
        await old.set(n=1)
        clock.advance(30)
        await fresh.set(n=2)
        clock.advance(31)  # old: 61 s idle, fresh: 31 s

        assert (await old.get())["data"] == {}
        assert store.document(session_id_of(fresh.cookie)) is not None
        assert store.session_count == 2  # expired, not yet purged
        assert await store.purge_expired() == 1
        assert store.session_count == 1
        assert (await fresh.get())["data"] == {"n": 2}
        assert await store.purge_expired(now=clock.now + timedelta(days=1)) == 1
        assert store.session_count == 0


async def test_concurrent_rotations_have_exactly_one_winner() -> None:
    """N saves that all loaded the same record and all ask to rotate: one rotates."""
    store = MemorySessionStore()
    start = utc_now()
    first = await store.save(insert_request({"n": 0}, start))
    assert first.cookie_value is not None
    later = start + timedelta(seconds=6)
    record = await store.load(first.cookie_value, now=later)
    assert record is not None

    async def save(index: int) -> Any:
        await asyncio.sleep(0)
        return await store.save(
            SessionUpdate(
                loaded=record,
                changed={f"k{index}": index},
                now=later,
                rotation=Rotation(keep=3),
                expires_at=later + timedelta(hours=2),
            )
        )

    results = await asyncio.gather(*(save(i) for i in range(8)))
    assert [r.rotated for r in results].count(True) == 1
    winner = next(r for r in results if r.rotated)
    losers = [r for r in results if not r.rotated]
    assert all(r.cookie_value is None for r in losers)  # they keep their token, resend nothing
    doc = store.document(record.id)
    assert doc is not None
    assert doc["data"] == {"n": 0, **{f"k{i}": i for i in range(8)}}
    assert len(doc["tokens"]) == 2
    assert doc["rotated_at"] == later
    for cookie in (first.cookie_value, winner.cookie_value):
        assert cookie is not None
        assert await store.load(cookie, now=later) is not None


async def test_concurrent_rotations_over_http() -> None:
    clock = Clock()
    store = MemorySessionStore()
    async with session_app(store, clock) as server:
        server.app.settings["barrier"].parties = 6
        browser = Browser(server)
        await browser.set(base=0)
        cookie = browser.cookie
        clock.advance(6)
        responses = await server.gather(
            *(server.fetch(f"/wait?k=k{i}&v={i}", cookie=cookie, method="POST") for i in range(6))
        )
        assert [r.code for r in responses] == [200] * 6
        cookies = [r.cookie_value() for r in responses]
        assert cookies.count(None) == 5
        doc = store.document(session_id_of(cookie))
        assert doc is not None
        assert doc["data"] == {"base": 0, **{f"k{i}": str(i) for i in range(6)}}
        assert len(doc["tokens"]) == 2


async def test_rotation_evicts_the_oldest_token() -> None:
    clock = Clock()
    store = MemorySessionStore()
    async with session_app(store, clock, tokens_kept=3) as server:
        browser = Browser(server)
        await browser.set(n=1)
        issued = [browser.cookie]
        for _ in range(3):
            clock.advance(6)
            await browser.get()
            issued.append(browser.cookie)
        assert len(set(issued)) == 4
        doc = store.document(session_id_of(browser.cookie))
        assert doc is not None
        tokens = [cookie_parts(cookie)[1] for cookie in issued]
        assert doc["tokens"] == [hash_token(t) for t in reversed(tokens[1:])]  # newest first
        assert (await Browser(server, issued[0]).get())["data"] == {}
        for cookie in issued[1:]:
            assert (await Browser(server, cookie).get())["data"] == {"n": 1}


async def test_updating_a_vanished_session_matches_mongodb() -> None:
    """Like update_one on a missing _id: nothing is written, and the write is refused."""
    store = MemorySessionStore()
    now = utc_now()
    result = await store.save(insert_request({"n": 1}, now))
    assert result.cookie_value is not None
    record = await store.load(result.cookie_value, now=now)
    assert record is not None
    await store.delete(record)
    with pytest.raises(SessionEnded, match="nothing was written"):
        await store.save(
            SessionUpdate(
                loaded=record, changed={"n": 2}, now=now, expires_at=now + timedelta(hours=1)
            )
        )
    assert store.session_count == 0


async def test_insert_refuses_an_id_in_use() -> None:
    store = MemorySessionStore()
    now = utc_now()
    await store.save(insert_request({"n": 1}, now, session_id="A" * 24))
    with pytest.raises(SessionStoreError, match="collision"):
        await store.save(insert_request({"n": 2}, now, session_id="A" * 24))


async def test_documents_equal_mongodb_documents(driver: str, mongo_url: str, db_name: str) -> None:
    """The same saves on both stores leave identical documents: values round-trip alike."""
    client = make_async_client(driver, mongo_url, tz_aware=True)
    try:
        mongo = MongoSessionStore(client[db_name]["sessions"])
        memory = MemorySessionStore()
        now = utc_now()
        data: dict[str, Any] = {
            "pair": (1, 2),
            "when": datetime(2024, 1, 2, 3, 4, 5, 678901),  # naive, microseconds
            "deep": {"a": {"b": [1.5, None, b"\x01"]}},
            "big": 2**62,
        }
        session_id, token = new_session_id(), new_token()
        request = insert_request(data, now, session_id=session_id, token=token)
        results = [await store.save(request) for store in (mongo, memory)]
        assert results[0] == results[1]
        cookie = results[0].cookie_value
        assert cookie is not None

        loaded: list[SessionRecord] = []
        for store in (mongo, memory):
            record = await store.load(cookie, now=now)
            assert record is not None
            loaded.append(record)
        assert loaded[0] == loaded[1]
        assert loaded[1].data["pair"] == [1, 2]
        assert loaded[1].data["when"] == datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)

        later = now + timedelta(seconds=10)
        update = SessionUpdate(
            loaded=loaded[0],
            changed={  # each kind of scalar too: each must come back as MongoDB's does
                "pair": [3],
                "big": 2**40,
                "small": 7,
                "flag": True,
                "zero": -0.0,
                "text": "é",
                "raw": b"\x00",
                "none": None,
                "later": datetime(2024, 1, 2, 3, 4, 5, 678901),
            },
            removed=("when",),
            now=later,
            rotation=Rotation(keep=3),
            expires_at=later + timedelta(hours=1),
        )
        results = [await store.save(update) for store in (mongo, memory)]
        assert results[0] == results[1]
        stored = await client[db_name]["sessions"].find_one({"_id": session_id})
        held = memory.document(session_id)
        assert stored == held
        assert held is not None
        assert stored is not None
        # Equal is not enough (Int64(2**40) == 2**40, -0.0 == 0.0): the types must match too.
        assert {k: type(v) for k, v in held["data"].items()} == {
            k: type(v) for k, v in stored["data"].items()
        }
        assert str(held["data"]["zero"]) == str(stored["data"]["zero"]) == "-0.0"
    finally:
        await close_async_client(client)


@pytest.mark.parametrize("module", ["memory.py", "cookie.py", "tiered.py"])
def test_store_modules_do_not_import_tornado(module: str) -> None:
    tree = ast.parse((PACKAGE / "stores" / module).read_text())
    imported: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.append(node.module)
    assert imported  # the walk did find the imports
    assert not [name for name in imported if name.split(".")[0] == "tornado"]
