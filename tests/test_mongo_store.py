"""stores/mongo.py against the real server, with both drivers: documents, indexes, errors."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from handlers import Counter, Untouched
from helpers import serve, session_settings
from mongo_helpers import close_async_client, make_async_client

from tornado_mongo_session import (
    MongoSessionStore,
    NewSession,
    Rotation,
    SessionSettings,
    SessionStore,
    SessionStoreUnavailable,
    SessionUpdate,
)
from tornado_mongo_session.clock import utc_now
from tornado_mongo_session.tokens import encode_cookie, hash_token, new_token


@pytest.fixture
def store(collection: Any) -> MongoSessionStore:
    return MongoSessionStore(collection)


async def insert(store: MongoSessionStore, data: dict[str, Any]) -> tuple[str, str]:
    """Insert a session through the store; return (cookie value, session id)."""
    now = utc_now()
    request = NewSession(data=data, created_at=now, now=now, expires_at=now + timedelta(hours=1))
    result = await store.save(request)
    assert result.cookie_value == encode_cookie(request.session_id, request.token)
    return result.cookie_value, request.session_id


def test_implements_the_protocol(store: MongoSessionStore) -> None:
    assert isinstance(store, SessionStore)


async def test_insert_load_and_raw_document(store: MongoSessionStore, sync_db: Any) -> None:
    cookie, session_id = await insert(store, {"a": 1})
    doc = sync_db.sessions.find_one({"_id": session_id})
    assert set(doc) == {
        "_id",
        "tokens",
        "created_at",
        "accessed_at",
        "rotated_at",
        "expires_at",
        "data",
    }
    assert doc["tokens"] == [hash_token(cookie.split(".")[1])]
    record = await store.load(cookie, now=utc_now())
    assert record is not None
    assert record.data == {"a": 1}
    assert record.token == cookie.split(".")[1]
    assert record.created_at.tzinfo is not None


async def test_load_refuses_expired_and_wrong_token(store: MongoSessionStore) -> None:
    cookie, session_id = await insert(store, {"a": 1})
    assert await store.load(cookie, now=utc_now() + timedelta(hours=2)) is None
    assert await store.load(encode_cookie(session_id, new_token()), now=utc_now()) is None
    assert await store.load("not a cookie", now=utc_now()) is None


async def test_malformed_document_is_absent_not_an_error(
    store: MongoSessionStore, sync_db: Any, caplog: pytest.LogCaptureFixture
) -> None:
    cookie, session_id = await insert(store, {"a": 1})
    sync_db.sessions.update_one({"_id": session_id}, {"$unset": {"created_at": ""}})
    with caplog.at_level(logging.WARNING):
        assert await store.load(cookie, now=utc_now()) is None
    assert "malformed" in caplog.text
    assert cookie.split(".")[1] not in caplog.text


async def test_rotation_is_compare_and_set(store: MongoSessionStore, sync_db: Any) -> None:
    cookie, session_id = await insert(store, {"a": 1})
    now = utc_now()
    loaded = await store.load(cookie, now=now)
    assert loaded is not None

    def rotation(changed: dict[str, Any]) -> SessionUpdate:
        return SessionUpdate(
            loaded=loaded,
            changed=changed,
            now=now + timedelta(seconds=6),
            rotation=Rotation(keep=3),
            expires_at=now + timedelta(hours=1),
        )

    results = await asyncio.gather(*(store.save(rotation({f"k{i}": i})) for i in range(10)))
    assert sum(r.rotated for r in results) == 1
    doc = sync_db.sessions.find_one({"_id": session_id})
    assert len(doc["tokens"]) == 2
    # Every writer's key survived, rotated or not.
    assert doc["data"] == {"a": 1, **{f"k{i}": i for i in range(10)}}


async def test_ensure_indexes_is_idempotent_and_warns_at_most_once(
    store: MongoSessionStore, sync_db: Any, caplog: pytest.LogCaptureFixture, command_log: Any
) -> None:
    with caplog.at_level(logging.WARNING):
        await store.ensure_indexes()
        await store.ensure_indexes()
        await insert(store, {"a": 1})
    # Two commands, once: the TTL index, and the sparse user indexes (user_id, handle).
    assert command_log.count("createIndexes") == 2
    indexes = {ix["name"]: ix for ix in sync_db.sessions.list_indexes()}
    assert indexes["user_id"]["sparse"]
    assert indexes["handle"]["sparse"]
    ttl = [ix for ix in indexes.values() if ix["name"] == "expires_at_ttl"]
    warnings = [r for r in caplog.records if "TTL index" in r.getMessage()]
    # A server with TTL indexes has one now; one without (FerretDB) said so once.
    assert (len(ttl), len(warnings)) in {(1, 0), (0, 1)}
    if ttl:
        assert ttl[0]["expireAfterSeconds"] == 0


async def test_purge_expired(store: MongoSessionStore, sync_db: Any) -> None:
    await insert(store, {"a": 1})
    await insert(store, {"b": 2})
    assert await store.purge_expired(now=utc_now()) == 0
    assert await store.purge_expired(now=utc_now() + timedelta(hours=2)) == 2
    assert sync_db.sessions.count_documents({}) == 0


async def test_from_settings_owns_its_client(mongo_url: str, db_name: str, sync_db: Any) -> None:
    settings = SessionSettings(mongodb_url=mongo_url, database=db_name, collection="custom")
    store = MongoSessionStore.from_settings(settings)
    try:
        await insert(store, {"x": 1})
        assert sync_db.custom.count_documents({}) == 1
    finally:
        await store.close()


async def test_unreachable_server_is_store_unavailable(driver: str) -> None:
    client = make_async_client(driver, "mongodb://127.0.0.1:9/", serverSelectionTimeoutMS=100)
    store = MongoSessionStore(client.db.sessions)
    try:
        with pytest.raises(SessionStoreUnavailable) as info:
            await store.load("a" * 24 + "." + "b" * 43, now=utc_now())
        assert info.value.__cause__ is not None
        with pytest.raises(SessionStoreUnavailable):
            await insert(store, {"a": 1})
    finally:
        await close_async_client(client)


@pytest.fixture
async def outage_store(private_server: Any, driver: str) -> AsyncIterator[MongoSessionStore]:
    client = make_async_client(driver, private_server.url, serverSelectionTimeoutMS=500)
    try:
        yield MongoSessionStore(client.outage.sessions)
    finally:
        await close_async_client(client)


async def test_app_recovers_when_the_server_returns(
    private_server: Any, outage_store: MongoSessionStore, caplog: pytest.LogCaptureFixture
) -> None:
    async with serve(
        [("/count", Counter), ("/plain", Untouched)],
        session_store=outage_store,
        session_settings=session_settings(),
    ) as app:
        first = await app.fetch("/count")
        cookie = first.cookie_value()
        assert cookie is not None
        private_server.stop()
        with caplog.at_level(logging.ERROR):
            down = await app.fetch("/count", cookie=cookie)
        assert down.code == 503
        assert "Traceback" not in down.text
        assert "unreachable" in caplog.text
        # A handler that never touches the session is unaffected, cookie or not.
        assert (await app.fetch("/plain", cookie=cookie)).code == 200
        assert (await app.fetch("/plain")).code == 200
        private_server.start()
        for _ in range(50):  # the driver rediscovers the server on its own
            back = await app.fetch("/count", cookie=cookie)
            if back.code == 200:
                break
            await asyncio.sleep(0.1)
        assert back.code == 200
        assert back.text == "2"  # the acknowledged write before the outage survived


async def test_index_refused_for_any_reason_is_one_warning_and_sessions_work(
    store: MongoSessionStore, sync_db: Any, caplog: pytest.LogCaptureFixture, command_log: Any
) -> None:
    # An index someone made by hand under the name the store uses, on another key: MongoDB
    # refuses the TTL index as a conflict (FerretDB refuses it as NotImplemented before that).
    sync_db.sessions.create_index("created_at", name="expires_at_ttl")
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            cookie, _session_id = await insert(store, {"a": 1})
            assert await store.load(cookie, now=utc_now()) is not None
    warnings = [r for r in caplog.records if "TTL index" in r.getMessage()]
    assert len(warnings) == 1
    assert command_log.count("createIndexes") == 1
