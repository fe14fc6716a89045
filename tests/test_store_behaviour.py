"""One behaviour suite, run against every store through real HTTP requests to a real Tornado app.

Stores: memory, cookie, tiered (cookie + MongoDB, both drivers) and MongoDB (both drivers).
Where the stores differ by design (a cookie cannot be revoked, two overlapping cookie writes
cannot merge), the test asserts what each one really does, so the docs page stays true.
Time moves through the ``session_clock`` setting, never by sleeping.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import bson
import pytest
from bson import json_util
from handlers import JSON, STORE_ROUTES
from helpers import (
    SUITE_SECRET,
    UTC,
    VALUES,
    Browser,
    Clock,
    assert_cleared,
    b64decode_unpadded,
    canonical,
    data_of,
    session_app,
    session_id_of,
)
from mongo_helpers import TZ_AWARE, CommandLog, close_async_client, make_async_client, raw_doc
from pymongo.database import Database

from tornado_mongo_session import (
    CookieSessionStore,
    MemorySessionStore,
    MongoSessionStore,
    SessionStore,
    TieredSessionStore,
)
from tornado_mongo_session.tokens import new_session_id, new_token, parse_cookie

STORE_KINDS = [
    "memory",
    "cookie",
    "tiered-pymongo",
    "tiered-motor",
    "mongo-pymongo",
    "mongo-motor",
]


# -- reading what a store holds, without the store ---------------------------------------------


def decode_cookie_store_value(value: str) -> dict[str, Any]:
    """Decode a plain CookieSessionStore value by its documented format (no verification)."""
    prefix, _version, body, _signature = value.split(".")
    assert prefix == "c1"
    raw = b64decode_unpadded(body)
    flags, content = raw[0], raw[1:]
    assert flags in (0, 1), f"unexpected flags {flags}"
    if flags == 1:
        content = zlib.decompress(content)
    payload = bson.decode(content, codec_options=TZ_AWARE)
    return {
        "_id": payload["i"],
        "data": payload["d"],
        "created_at": payload["c"],
        "accessed_at": payload["a"],
        "rotated_at": payload["r"],
        "expires_at": payload["e"],
    }


@dataclass
class StoreCase:
    """A store under test and how to look behind it."""

    kind: str
    store: SessionStore
    log: CommandLog | None
    sync_db: Database[Any] | None
    secret: str = SUITE_SECRET

    @property
    def anonymous_on_server(self) -> bool:
        """Anonymous sessions live in a server record (revocable, overlapping writes merge)."""
        return self.kind == "memory" or self.kind.startswith("mongo")

    @property
    def login_on_server(self) -> bool:
        """Sessions live in a server record once regenerated (login)."""
        return self.kind != "cookie"

    def is_server_cookie(self, value: str) -> bool:
        return parse_cookie(value) is not None

    def raw(self, cookie_value: str) -> dict[str, Any] | None:
        """The stored record the cookie names (for the cookie tier: the cookie itself)."""
        if cookie_value.startswith("c1."):
            return decode_cookie_store_value(cookie_value)
        return self.raw_by_id(session_id_of(cookie_value))

    def raw_by_id(self, session_id: str) -> dict[str, Any] | None:
        if isinstance(self.store, MemorySessionStore):
            return self.store.document(session_id)
        assert self.sync_db is not None
        return raw_doc(self.sync_db, session_id, tz_aware=True)

    def db_commands(self) -> int:
        return 0 if self.log is None else self.log.count()


@pytest.fixture(params=STORE_KINDS)
async def case(
    request: pytest.FixtureRequest, mongo_url: str, db_name: str, sync_db: Database[Any]
) -> AsyncIterator[StoreCase]:
    kind: str = request.param
    if kind == "memory":
        yield StoreCase(kind, MemorySessionStore(), None, None)
        return
    cookie = CookieSessionStore(SUITE_SECRET)
    if kind == "cookie":
        yield StoreCase(kind, cookie, None, None)
        return
    driver = kind.split("-")[1]
    log = CommandLog()
    client = make_async_client(driver, mongo_url, tz_aware=True, event_listeners=[log])
    try:
        mongo = MongoSessionStore(client[db_name]["sessions"])
        store: SessionStore = (
            mongo if kind.startswith("mongo") else TieredSessionStore(cookie=cookie, server=mongo)
        )
        yield StoreCase(kind, store, log, sync_db)
    finally:
        await close_async_client(client)


# -- the suite --------------------------------------------------------------------------------


async def test_store_satisfies_protocol(case: StoreCase) -> None:
    assert isinstance(case.store, SessionStore)


async def test_round_trip_keeps_values_exactly(case: StoreCase) -> None:
    clock = Clock()
    async with session_app(case.store, clock) as server:
        browser = Browser(server)
        response = await browser.set(**VALUES)

        line = response.set_cookies[0]
        assert re.match(r"session=[A-Za-z0-9_.-]+;", line), line
        for attribute in ("HttpOnly", "Path=/", "SameSite=Lax", "Secure", "Max-Age=600"):
            assert attribute in line, line
        assert browser.cookie is not None
        if case.anonymous_on_server:
            assert case.is_server_cookie(browser.cookie)
        else:
            assert browser.cookie.startswith("c1.")
        raw = case.raw(browser.cookie)
        assert raw is not None
        assert canonical(raw["data"]) == canonical(VALUES)
        assert raw["expires_at"] == clock.now + timedelta(seconds=600)

        seen = await browser.get()
        assert seen["new"] is False
        assert seen["id"] == raw["_id"]
        assert canonical(seen["data"]) == canonical(VALUES)


async def test_untouched_and_read_only_requests_set_no_cookie(case: StoreCase) -> None:
    async with session_app(case.store, Clock()) as server:
        browser = Browser(server)
        response = await browser.fetch("/untouched")
        assert response.set_cookies == []
        assert case.db_commands() == 0

        await browser.set(n=1)
        if case.log is not None:
            case.log.clear()
        for path in ("/get", "/untouched"):
            response = await browser.fetch(path)
            assert response.code == 200
            assert response.set_cookies == [], path
        # A request with a cookie costs one find for a MongoDB session (prepare() loads it even
        # for a handler that never reads it), nothing for a cookie session.
        if case.log is not None:
            assert case.log.names() == (["find", "find"] if case.anonymous_on_server else [])


async def test_delete_key(case: StoreCase) -> None:
    async with session_app(case.store, Clock()) as server:
        browser = Browser(server)
        await browser.set(a=1, b=2)
        await browser.post("/del?k=a")
        assert (await browser.get())["data"] == {"b": 2}
        assert browser.cookie is not None
        raw = case.raw(browser.cookie)
        assert raw is not None
        assert raw["data"] == {"b": 2}


async def test_idle_expiry(case: StoreCase) -> None:
    clock = Clock()
    start = clock.now
    async with session_app(case.store, clock, idle_timeout=60, touch_interval=10) as server:
        browser = Browser(server)
        await browser.set(n=1)
        clock.advance(50)
        assert (await browser.get())["data"] == {"n": 1}  # touched: idle deadline now t+110
        assert browser.cookie is not None
        raw = case.raw(browser.cookie)
        assert raw is not None
        assert raw["expires_at"] == start + timedelta(seconds=110)
        clock.advance(50)
        assert (await browser.get())["data"] == {"n": 1}
        last = browser.cookie
        assert last is not None

        clock.advance(61)
        response = await browser.fetch("/get")
        assert response.code == 200
        seen = json_util.loads(response.body, json_options=JSON)
        assert seen["new"] is True
        assert seen["data"] == {}
        assert response.set_cookies == []  # the browser's own Max-Age ends it
        assert await data_of(server, last) == {}


async def test_absolute_expiry(case: StoreCase) -> None:
    clock = Clock()
    start = clock.now
    async with session_app(
        case.store, clock, idle_timeout=60, absolute_timeout=150, touch_interval=0
    ) as server:
        browser = Browser(server)
        await browser.set(n=1)
        for _ in range(2):
            clock.advance(50)
            assert (await browser.get())["data"] == {"n": 1}
        clock.advance(40)  # t+140: alive, but the deadline is capped at t+150
        assert (await browser.get())["data"] == {"n": 1}
        assert browser.cookie is not None
        raw = case.raw(browser.cookie)
        assert raw is not None
        assert raw["expires_at"] == start + timedelta(seconds=150)

        clock.advance(11)  # t+151: idle would allow it, the absolute timeout does not
        seen = await browser.get()
        assert seen["new"] is True
        assert seen["data"] == {}


async def test_regenerate_gives_new_id_and_keeps_data(case: StoreCase) -> None:
    async with session_app(case.store, Clock()) as server:
        browser = Browser(server)
        await browser.set(cart=3)
        old_cookie = browser.cookie
        assert old_cookie is not None
        old_id = (await browser.get())["id"]

        response = await browser.post("/login")
        new_id = response.text
        assert new_id != old_id
        assert browser.cookie is not None
        assert browser.cookie != old_cookie
        assert (await browser.get()) == {
            "id": new_id,
            "new": False,
            "data": {"cart": 3, "user": "ada"},
        }
        raw = case.raw(browser.cookie)
        assert raw is not None
        assert raw["_id"] == new_id
        assert raw["data"] == {"cart": 3, "user": "ada"}
        if case.login_on_server:
            assert case.is_server_cookie(browser.cookie)

        # Fixation defeated everywhere: the old cookie never opens the logged-in session.
        old_view = await data_of(server, old_cookie)
        assert "user" not in old_view
        if case.anonymous_on_server:
            assert old_view == {}  # the old record is gone
            assert case.raw_by_id(old_id) is None
        else:
            # A signed cookie cannot be revoked: it still opens the anonymous data it carries.
            assert old_view == {"cart": 3}

        # A second regenerate, from a logged-in session.
        logged_in_cookie = browser.cookie
        await browser.post("/login")
        if case.login_on_server:
            assert await data_of(server, logged_in_cookie) == {}
            assert case.raw_by_id(new_id) is None
        else:
            assert await data_of(server, logged_in_cookie) == {"cart": 3, "user": "ada"}


async def test_invalidate_expires_cookie_and_record(case: StoreCase) -> None:
    async with session_app(case.store, Clock()) as server:
        browser = Browser(server)
        await browser.set(cart=1)
        await browser.post("/login")
        cookie = browser.cookie
        assert cookie is not None
        session_id = (await browser.get())["id"]

        response = await browser.post("/logout")
        assert_cleared(response)
        assert browser.cookie is None
        if case.login_on_server:
            assert case.raw_by_id(session_id) is None
            assert await data_of(server, cookie) == {}
        else:
            # Said plainly in docs/stores.md: a copied cookie outlives logout until it expires.
            assert await data_of(server, cookie) == {"cart": 1, "user": "ada"}
        seen = await browser.get()
        assert seen["new"] is True
        assert seen["data"] == {}


async def test_invalidate_anonymous_session(case: StoreCase) -> None:
    async with session_app(case.store, Clock()) as server:
        browser = Browser(server)
        await browser.set(cart=1)
        session_id = (await browser.get())["id"]
        assert_cleared(await browser.post("/logout"))
        if case.anonymous_on_server:
            assert case.raw_by_id(session_id) is None


def bad_cookies(valid: str) -> dict[str, str]:
    """Cookies that must each open a new, empty session."""
    middle = len(valid) // 2
    while valid[middle] == ".":
        middle += 1
    flipped = "A" if valid[middle] != "A" else "B"
    return {
        "garbage": "garbage",
        "dots": "a.b.c.d",
        "truncated by one": valid[:-1],
        "truncated by half": valid[: len(valid) // 2],
        "tampered": valid[:middle] + flipped + valid[middle + 1 :],
        "extended": valid + "A",
        "long": "x" * 3000,
        "unknown id": f"{new_session_id()}.{new_token()}",
        "cookie-store form, unknown version": "c1.7." + valid.split(".")[-2] + ".sig",
        "wrong secret": CookieSessionStore("another secret entirely")._seal(
            {
                "i": "x",
                "d": {"user": "eve"},
                "c": datetime.now(UTC),
                "a": datetime.now(UTC),
                "r": datetime.now(UTC),
                "e": datetime.now(UTC) + timedelta(days=1),
            }
        ),
    }


async def test_bad_cookies_open_a_new_empty_session(case: StoreCase) -> None:
    async with session_app(case.store, Clock()) as server:
        browser = Browser(server)
        await browser.set(secret="mine")
        assert browser.cookie is not None
        for name, cookie in bad_cookies(browser.cookie).items():
            response = await server.fetch("/get", cookie=cookie)
            assert response.code == 200, (name, response.code, response.text)
            seen = json_util.loads(response.body, json_options=JSON)
            assert seen["new"] is True, name
            assert seen["data"] == {}, name
            assert response.set_cookies == [], name  # proves nothing stale: left alone
        # The real cookie still works, and no bad cookie created or changed a record.
        assert (await browser.get())["data"] == {"secret": "mine"}


async def test_overlapping_writes(case: StoreCase) -> None:
    """Two requests load the same session, then each writes its own key."""
    async with session_app(case.store, Clock()) as server:
        browser = Browser(server)
        await browser.set(base=0)
        assert browser.cookie is not None
        first, second = await server.gather(
            server.fetch("/wait?k=a&v=1", cookie=browser.cookie, method="POST"),
            server.fetch("/wait?k=b&v=2", cookie=browser.cookie, method="POST"),
        )
        assert (first.code, second.code) == (200, 200)
        if case.anonymous_on_server:
            # Deltas: both keys kept, whichever cookie the browser ends up with.
            assert await data_of(server, browser.cookie) == {"base": 0, "a": "1", "b": "2"}
            raw = case.raw(browser.cookie)
            assert raw is not None
            assert raw["data"] == {"base": 0, "a": "1", "b": "2"}
        else:
            # The cookie is the record: each response carries only its own write, and the
            # browser keeps whichever arrives last (documented in docs/stores.md).
            first_cookie, second_cookie = first.cookie_value(), second.cookie_value()
            assert first_cookie is not None
            assert second_cookie is not None
            assert await data_of(server, first_cookie) == {"base": 0, "a": "1"}
            assert await data_of(server, second_cookie) == {"base": 0, "b": "2"}


async def test_overlapping_writes_while_rotating_after_login(case: StoreCase) -> None:
    """Both requests want to rotate: one does, the other's data is still written."""
    if not case.login_on_server:
        pytest.skip("cookie sessions have no server record to merge into")
    clock = Clock()
    async with session_app(case.store, clock) as server:
        browser = Browser(server)
        await browser.post("/login")
        cookie = browser.cookie
        assert cookie is not None
        clock.advance(6)  # past token_ttl: both requests decide to rotate
        first, second = await server.gather(
            server.fetch("/wait?k=a&v=1", cookie=cookie, method="POST"),
            server.fetch("/wait?k=b&v=2", cookie=cookie, method="POST"),
        )
        assert (first.code, second.code) == (200, 200)
        cookies = [first.cookie_value(), second.cookie_value()]
        # The loser sends no cookie: its token still opens the session, and resending it could
        # take the browser back behind the rotated one.
        assert cookies.count(None) == 1
        rotated = next(value for value in cookies if value is not None)
        assert rotated is not None
        raw = case.raw(rotated)
        assert raw is not None
        assert raw["data"] == {"user": "ada", "a": "1", "b": "2"}
        assert len(raw["tokens"]) == 2
        for value in (cookie, rotated):
            assert await data_of(server, value) == {"user": "ada", "a": "1", "b": "2"}


async def test_handler_class_store_overrides_application_store(case: StoreCase) -> None:
    decoy = MemorySessionStore()
    handlers = [
        (path, type(f"Own{h.__name__}", (h,), {"session_store": case.store}), *options)
        for path, h, *options in STORE_ROUTES
    ]
    async with session_app(decoy, Clock(), handlers=handlers) as server:
        browser = Browser(server)
        await browser.set(where="class attribute")
        assert decoy.session_count == 0
        assert browser.cookie is not None
        raw = case.raw(browser.cookie)
        assert raw is not None
        assert raw["data"] == {"where": "class attribute"}
