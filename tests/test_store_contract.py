"""The SessionStore contract, checked on every store without HTTP (Django's SessionTestsMixin
in spirit): what a save writes, a load returns, a rotation and a delete do.

Where the stores differ by design the test says so: a cookie cannot be revoked, and a cookie
store answers every save with a new cookie value.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from tornado_mongo_session import (
    CookieSessionStore,
    MemorySessionStore,
    MongoSessionStore,
    NewSession,
    Rotation,
    SaveResult,
    SessionRecord,
    SessionStore,
    SessionUpdate,
    TieredSessionStore,
)
from tornado_mongo_session.clock import utc_now

KINDS = ["memory", "cookie", "tiered", "mongo-pymongo", "mongo-motor"]
SECRET = "store-contract-secret-0123456789abcdef"
HOUR = timedelta(hours=1)


@pytest.fixture(params=KINDS)
async def store(request: pytest.FixtureRequest, mongo_url: str, db_name: str) -> AsyncIterator[Any]:
    kind: str = request.param
    client: Any = None
    if kind == "mongo-pymongo":
        client = AsyncMongoClient(mongo_url, tz_aware=True)
    elif kind == "mongo-motor":
        motor = pytest.importorskip("motor.motor_asyncio")
        client = motor.AsyncIOMotorClient(mongo_url, tz_aware=True)
    if client is not None:
        yield MongoSessionStore(client[db_name]["sessions"])
        closed = client.close()
        if closed is not None:
            await closed
    elif kind == "memory":
        yield MemorySessionStore()
    elif kind == "cookie":
        yield CookieSessionStore(SECRET)
    else:
        yield TieredSessionStore(cookie=CookieSessionStore(SECRET), server=MemorySessionStore())


def in_cookie(store: Any) -> bool:
    return isinstance(store, (CookieSessionStore, TieredSessionStore))


async def new_session(store: SessionStore, data: dict[str, Any], now: datetime) -> str:
    result = await store.save(NewSession(data=data, created_at=now, now=now, expires_at=now + HOUR))
    assert result.rotated
    assert result.cookie_value is not None
    return result.cookie_value


async def test_a_new_session_loads_as_it_was_saved(store: SessionStore) -> None:
    assert isinstance(store, SessionStore)
    now = utc_now()
    new = NewSession(
        data={"n": 1, "pair": (1, 2), "when": datetime(2030, 1, 2, 3, 4, 5, 678901)},
        created_at=now - timedelta(seconds=5),
        now=now,
        expires_at=now + HOUR,
    )
    result = await store.save(new)
    assert result.session_id == new.session_id
    assert result.cookie_value is not None
    record = await store.load(result.cookie_value, now=now)
    assert record is not None
    assert record.id == new.session_id
    assert record.data["n"] == 1
    assert record.data["pair"] == [1, 2]  # as BSON gives it back
    assert record.data["when"] == datetime(2030, 1, 2, 3, 4, 5, 678000).replace(tzinfo=now.tzinfo)
    assert (record.created_at, record.accessed_at, record.rotated_at) == (new.created_at, now, now)
    assert record.expires_at == now + HOUR
    assert record.in_cookie == in_cookie(store)


@pytest.mark.parametrize("value", ["", "garbage", "a.b.c.d", "c1.0.x.y", "A" * 24 + "." + "B" * 43])
async def test_a_cookie_that_opens_nothing_loads_as_none(store: SessionStore, value: str) -> None:
    assert await store.load(value, now=utc_now()) is None


async def test_an_expired_session_loads_as_none(store: SessionStore) -> None:
    now = utc_now()
    cookie = await new_session(store, {"n": 1}, now)
    assert await store.load(cookie, now=now + HOUR - timedelta(milliseconds=1)) is not None
    assert await store.load(cookie, now=now + HOUR) is None


async def test_an_update_writes_what_changed_and_pushes_the_deadline(store: SessionStore) -> None:
    now = utc_now()
    cookie = await new_session(store, {"a": 1, "b": 2, "c": 3}, now)
    loaded = await store.load(cookie, now=now)
    assert loaded is not None
    later = now + timedelta(seconds=10)
    update = SessionUpdate(
        loaded=loaded, now=later, expires_at=later + HOUR, changed={"b": 20, "d": 4}, removed=("c",)
    )
    result = await store.save(update)
    assert result.session_id == loaded.id
    assert not result.rotated
    # A server store leaves the client's cookie as it is; a cookie store must send a new one.
    assert (result.cookie_value is not None) == in_cookie(store)
    record = await store.load(result.cookie_value or cookie, now=later)
    assert record is not None
    assert record.data == {"a": 1, "b": 20, "d": 4}
    assert (record.accessed_at, record.expires_at) == (later, later + HOUR)
    assert record.rotated_at == loaded.rotated_at


async def test_a_rotation_issues_a_new_cookie_and_keeps_the_newest_tokens(
    store: SessionStore,
) -> None:
    now = utc_now()
    cookies = [await new_session(store, {"n": 0}, now)]
    for step in range(1, 4):
        at = now + timedelta(seconds=10 * step)
        loaded = await store.load(cookies[-1], now=at)
        assert loaded is not None
        update = SessionUpdate(
            loaded=loaded,
            now=at,
            expires_at=at + HOUR,
            changed={"n": step},
            rotation=Rotation(keep=2),
        )
        result = await store.save(update)
        assert result.rotated
        assert result.cookie_value is not None
        assert result.cookie_value not in cookies
        cookies.append(result.cookie_value)
    at = now + timedelta(seconds=40)
    newest = await store.load(cookies[-1], now=at)
    assert newest is not None
    assert newest.data == {"n": 3}
    assert newest.rotated_at == now + timedelta(seconds=30)
    assert await store.load(cookies[-2], now=at) is not None  # kept: 2 tokens
    opened_by_oldest = await store.load(cookies[0], now=at)
    if in_cookie(store):
        # A cookie cannot be revoked: it opens what it holds until its own deadline.
        assert opened_by_oldest is not None
        assert opened_by_oldest.data == {"n": 0}
    else:
        # Evicted: a server store still recognises it as retired (when, for the policy to
        # judge against the request's arrival: issue 11), but it is no longer among the tokens.
        assert opened_by_oldest is not None
        assert opened_by_oldest.token_retired_at == now + timedelta(seconds=20)
        assert not opened_by_oldest.token_newest


async def test_a_deleted_session_no_longer_loads(store: SessionStore) -> None:
    now = utc_now()
    cookie = await new_session(store, {"n": 1}, now)
    record = await store.load(cookie, now=now)
    assert record is not None
    await store.delete(record)
    # A cookie cannot be revoked: deleting is the mixin expiring it in the browser.
    assert (await store.load(cookie, now=now) is not None) == in_cookie(store)


def test_the_records_a_store_receives_and_returns_are_frozen() -> None:
    """SessionUpdate, Rotation and SaveResult write their fields in an ``__init__`` of their
    own (a frozen dataclass's costs a save more than the rest of building them): they stay
    frozen, compare and copy as dataclasses do, and fill in what is omitted."""
    now = utc_now()
    loaded = SessionRecord(
        id="i" * 24, data={}, created_at=now, accessed_at=now, rotated_at=now, expires_at=now
    )
    update = SessionUpdate(loaded=loaded, now=now, expires_at=now + HOUR)
    rotation = Rotation(keep=2)
    result = SaveResult(session_id="i" * 24)
    for record, field in ((update, "now"), (rotation, "keep"), (result, "rotated")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(record, field, None)
    assert (update.changed, update.removed, update.rotation) == ({}, (), None)
    assert update.changed is not SessionUpdate(loaded=loaded, now=now, expires_at=now).changed
    assert len(rotation.token) == 43
    assert rotation.token != Rotation(keep=2).token
    assert rotation.token not in repr(rotation)
    assert (result.cookie_value, result.rotated) == (None, False)
    moved = dataclasses.replace(update, changed={"a": 1}, rotation=rotation)
    assert (moved.changed, moved.rotation, moved.loaded) == ({"a": 1}, rotation, loaded)
    rotated = SaveResult(session_id="i" * 24, rotated=True)
    assert dataclasses.replace(result, rotated=True) == rotated
    assert hash(result) == hash(SaveResult(session_id="i" * 24))
