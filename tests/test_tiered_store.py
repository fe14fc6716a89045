"""TieredSessionStore: anonymous sessions in the cookie (no database), moved to MongoDB on login
or when they outgrow 4 KB, then rotating like any MongoDB session."""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from typing import Any

import pytest
from helpers import VALUES, Browser, Clock, assert_cleared, canonical, cookie_parts, session_app
from mongo_helpers import CommandLog, raw_doc
from pymongo.database import Database

from tornado_mongo_session import (
    CookieSessionStore,
    MemorySessionStore,
    MongoSessionStore,
    TieredSessionStore,
)
from tornado_mongo_session.tokens import hash_token

SECRET = "tiered-store-test-secret-0123456789abcdef"


@pytest.fixture
def tiered(collection: Any) -> TieredSessionStore:
    return TieredSessionStore(
        cookie=CookieSessionStore(SECRET), server=MongoSessionStore(collection)
    )


async def test_anonymous_sessions_cost_no_database_commands(
    tiered: TieredSessionStore, command_log: CommandLog
) -> None:
    clock = Clock()
    async with session_app(tiered, clock) as server:
        browser = Browser(server)
        await browser.set(cart=[1, 2], locale="en")
        assert browser.cookie is not None
        assert browser.cookie.startswith("c2.")
        assert (await browser.get())["data"] == {"cart": [1, 2], "locale": "en"}
        await browser.post("/del?k=locale")
        await browser.fetch("/untouched")
        clock.advance(120)  # rotation and touch due: the cookie is re-signed
        before = browser.cookie
        await browser.get()
        assert browser.cookie != before
        assert browser.cookie.startswith("c2.")
        await server.fetch("/get", cookie="garbage")
        assert_cleared(await browser.post("/logout"))
        assert command_log.names() == []


async def test_login_moves_the_session_into_mongodb(
    tiered: TieredSessionStore, command_log: CommandLog, sync_db: Database[Any]
) -> None:
    async with session_app(tiered, Clock()) as server:
        browser = Browser(server)
        await browser.set(**VALUES)
        anonymous = await browser.get()
        anonymous_cookie = browser.cookie
        assert command_log.names() == []

        response = await browser.post("/login")
        assert command_log.names() == ["createIndexes", "insert"]
        # One Set-Cookie for the session name: the server cookie replaces the signed copy.
        assert len(response.set_cookies) == 1
        assert response.set_cookies[0].startswith("__Host-session=")
        session_id, token = cookie_parts(browser.cookie)
        assert session_id == response.text
        assert session_id != anonymous["id"]

        doc = raw_doc(sync_db, session_id, tz_aware=True)
        assert doc is not None
        assert doc["tokens"] == [hash_token(token)]
        assert canonical(doc["data"]) == canonical({**VALUES, "user": "ada"})

        command_log.clear()
        seen = await browser.get()
        assert command_log.names() == ["find"]
        assert seen["id"] == session_id
        assert canonical(seen["data"]) == canonical({**anonymous["data"], "user": "ada"})

        # The anonymous cookie never opens the logged-in session.
        assert anonymous_cookie is not None
        old = await Browser(server, anonymous_cookie).get()
        assert old["id"] == anonymous["id"]
        assert "user" not in old["data"]


async def test_outgrowing_the_cookie_moves_the_session(
    tiered: TieredSessionStore, command_log: CommandLog, sync_db: Database[Any]
) -> None:
    clock = Clock()
    created = clock.now
    async with session_app(tiered, clock) as server:
        browser = Browser(server)
        await browser.set(small=1)
        anonymous_id = (await browser.get())["id"]
        assert browser.cookie is not None
        assert browser.cookie.startswith("c2.")
        clock.advance(10)

        blob = secrets.token_urlsafe(4000)  # past 4 KB even compressed
        response = await browser.set(blob=blob)
        assert command_log.names() == ["createIndexes", "insert"]
        assert len(response.set_cookies) == 1
        session_id, _ = cookie_parts(browser.cookie)
        assert session_id != anonymous_id
        doc = raw_doc(sync_db, session_id, tz_aware=True)
        assert doc is not None
        assert doc["data"] == {"small": 1, "blob": blob}
        assert doc["created_at"] == created  # the absolute timeout still counts from creation
        assert doc["expires_at"] == clock.now + timedelta(seconds=600)
        assert (await browser.get())["data"] == {"small": 1, "blob": blob}

        # Small again: it stays a server session.
        command_log.clear()
        await browser.post("/del?k=blob")
        assert command_log.names() == ["find", "update"]
        assert cookie_parts(browser.cookie)[0] == session_id
        doc = raw_doc(sync_db, session_id, tz_aware=True)
        assert doc is not None
        assert doc["data"] == {"small": 1}


async def test_a_first_write_too_big_for_the_cookie_goes_to_mongodb(
    tiered: TieredSessionStore, command_log: CommandLog, sync_db: Database[Any]
) -> None:
    async with session_app(tiered, Clock()) as server:
        browser = Browser(server)
        blob = secrets.token_urlsafe(4000)
        await browser.set(blob=blob)
        assert command_log.names() == ["createIndexes", "insert"]
        doc = raw_doc(sync_db, cookie_parts(browser.cookie)[0], tz_aware=True)
        assert doc is not None
        assert doc["data"] == {"blob": blob}


async def test_after_the_move_tokens_rotate_as_in_mongodb(
    tiered: TieredSessionStore, command_log: CommandLog, sync_db: Database[Any]
) -> None:
    clock = Clock()
    async with session_app(tiered, clock, tokens_kept=3) as server:
        browser = Browser(server)
        await browser.set(n=1)
        await browser.post("/login")
        issued = [browser.cookie]
        for _ in range(3):
            clock.advance(6)
            command_log.clear()
            await browser.get()
            assert command_log.names() == ["find", "update"]
            issued.append(browser.cookie)

        ids = {cookie_parts(cookie)[0] for cookie in issued}
        assert len(ids) == 1
        tokens = [cookie_parts(cookie)[1] for cookie in issued]
        assert len(set(tokens)) == 4
        doc = raw_doc(sync_db, ids.pop(), tz_aware=True)
        assert doc is not None
        assert doc["tokens"] == [hash_token(t) for t in reversed(tokens[1:])]  # oldest evicted
        assert doc["rotated_at"] == clock.now
        assert (await Browser(server, issued[0]).get())["data"] == {}
        assert (await Browser(server, issued[1]).get())["data"] == {"n": 1, "user": "ada"}


async def test_logout_after_login_deletes_the_document(
    tiered: TieredSessionStore, command_log: CommandLog, sync_db: Database[Any]
) -> None:
    async with session_app(tiered, Clock()) as server:
        browser = Browser(server)
        await browser.post("/login")
        cookie = browser.cookie
        session_id, _ = cookie_parts(cookie)
        command_log.clear()
        assert_cleared(await browser.post("/logout"))
        assert command_log.names() == ["find", "delete"]
        assert raw_doc(sync_db, session_id, tz_aware=True) is None
        assert (await Browser(server, cookie).get())["data"] == {}


async def test_encrypted_cookie_tier(collection: Any, sync_db: Database[Any]) -> None:
    store = TieredSessionStore(
        cookie=CookieSessionStore(SECRET, encryption_key=os.urandom(32)),
        server=MongoSessionStore(collection),
    )
    async with session_app(store, Clock()) as server:
        browser = Browser(server)
        response = await browser.set(email="ada@example.org")
        assert "ada@example.org" not in response.set_cookies[0]
        await browser.post("/login")
        doc = raw_doc(sync_db, cookie_parts(browser.cookie)[0], tz_aware=True)
        assert doc is not None
        assert doc["data"] == {"email": "ada@example.org", "user": "ada"}


async def test_any_store_can_be_the_server_tier() -> None:
    memory = MemorySessionStore()
    store = TieredSessionStore(cookie=CookieSessionStore(SECRET), server=memory)
    async with session_app(store, Clock()) as server:
        browser = Browser(server)
        await browser.set(n=1)
        assert memory.session_count == 0
        await browser.post("/login")
        doc = memory.document(cookie_parts(browser.cookie)[0])
        assert doc is not None
        assert doc["data"] == {"n": 1, "user": "ada"}


def test_the_cookie_tier_must_be_a_cookie_store() -> None:
    with pytest.raises(TypeError, match="CookieSessionStore"):
        TieredSessionStore(cookie=MemorySessionStore(), server=MemorySessionStore())  # type: ignore[arg-type]
