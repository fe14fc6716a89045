"""One behaviour suite, run against every store through real HTTP requests to a real Tornado app.

Stores: memory, cookie, tiered (cookie + MongoDB, both drivers) and MongoDB (both drivers).
Where the stores differ by design (a cookie cannot be revoked, two overlapping cookie writes
cannot merge), the test asserts what each one really does, so the docs page stays true.
Time moves through the ``session_clock`` setting, never by sleeping.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import re
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import bson
import pytest
import tornado.web
from bson import json_util
from bson.codec_options import CodecOptions
from bson.json_util import JSONMode, JSONOptions
from conftest import CommandLog, close_async_client, make_async_client
from helpers import Clock, Response, Server, serve
from pymongo.database import Database

from tornado_mongo_session import (
    CookieSessionStore,
    MemorySessionStore,
    MongoSessionStore,
    SessionMixin,
    SessionSettings,
    SessionStore,
    TieredSessionStore,
)
from tornado_mongo_session.tokens import new_session_id, new_token, parse_cookie

SECRET = "behaviour-suite-secret-0123456789abcdef"
UTC = timezone.utc
JSON = JSONOptions(json_mode=JSONMode.CANONICAL, tz_aware=True, tzinfo=UTC)
TZ_AWARE: CodecOptions[dict[str, Any]] = CodecOptions(
    document_class=dict, tz_aware=True, tzinfo=UTC
)
STORE_KINDS = [
    "memory",
    "cookie",
    "tiered-pymongo",
    "tiered-motor",
    "mongo-pymongo",
    "mongo-motor",
]
# Suite defaults: idle 600 s, absolute 3600 s, rotate every 5 s, touch every 60 s.
DEFAULTS: dict[str, Any] = {
    "idle_timeout": 600,
    "absolute_timeout": 3600,
    "token_ttl": 5,
    "touch_interval": 60,
}


# -- reading what a store holds, without the store ---------------------------------------------


def decode_cookie_store_value(value: str) -> dict[str, Any]:
    """Decode a plain CookieSessionStore value by its documented format (no verification)."""
    prefix, _version, body, _signature = value.split(".")
    assert prefix == "c1"
    raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
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


def canonical(data: Any) -> Any:
    """Data as canonical extended JSON: tells int32/int64/double, bytes and datetimes apart."""
    return json_util.loads(json_util.dumps(data, json_options=JSON), object_hook=lambda d: d)


@dataclass
class StoreCase:
    """A store under test and how to look behind it."""

    kind: str
    store: SessionStore
    log: CommandLog | None
    sync_db: Database[Any] | None
    secret: str = SECRET

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
        parsed = parse_cookie(cookie_value)
        assert parsed is not None, cookie_value
        return self.raw_by_id(parsed[0])

    def raw_by_id(self, session_id: str) -> dict[str, Any] | None:
        if isinstance(self.store, MemorySessionStore):
            return self.store.document(session_id)
        assert self.sync_db is not None
        sessions = self.sync_db.get_collection("sessions", codec_options=TZ_AWARE)
        found: dict[str, Any] | None = sessions.find_one({"_id": session_id})
        return found

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
    cookie = CookieSessionStore(SECRET)
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


# -- the application --------------------------------------------------------------------------


class Gate:
    """Release waiters once ``parties`` of them arrived (asyncio.Barrier is 3.11+)."""

    def __init__(self, parties: int) -> None:
        self.parties = parties
        self.count = 0
        self.event = asyncio.Event()

    async def wait(self) -> None:
        self.count += 1
        if self.count >= self.parties:
            self.event.set()
        await asyncio.wait_for(self.event.wait(), 10)


class Get(SessionMixin, tornado.web.RequestHandler):
    async def get(self) -> None:
        session = self.session
        body = {"id": session.id, "new": session.is_new, "data": dict(session)}
        self.set_header("Content-Type", "application/json")
        self.write(json_util.dumps(body, json_options=JSON))


class Set(SessionMixin, tornado.web.RequestHandler):
    """Update the session with the canonical extended JSON document in the body."""

    async def post(self) -> None:
        self.session.update(json_util.loads(self.request.body, json_options=JSON))
        self.write("ok")


class Delete(SessionMixin, tornado.web.RequestHandler):
    async def post(self) -> None:
        del self.session[self.get_argument("k")]
        self.write("ok")


class Login(SessionMixin, tornado.web.RequestHandler):
    async def post(self) -> None:
        self.session.regenerate()
        self.session["user"] = "ada"
        self.write(self.session.id)


class Logout(SessionMixin, tornado.web.RequestHandler):
    async def post(self) -> None:
        self.session.invalidate()
        self.write("bye")


class Wait(SessionMixin, tornado.web.RequestHandler):
    """Set ``?k=`` to ``?v=`` once two requests have loaded their session."""

    async def post(self) -> None:
        _ = self.session  # loaded in prepare(); the gate makes both requests overlap
        await self.settings["gate"].wait()
        self.session[self.get_argument("k")] = self.get_argument("v")
        self.write("ok")


class Untouched(SessionMixin, tornado.web.RequestHandler):
    async def get(self) -> None:
        self.write("plain")


HANDLERS = [
    ("/get", Get),
    ("/set", Set),
    ("/del", Delete),
    ("/login", Login),
    ("/logout", Logout),
    ("/wait", Wait),
    ("/untouched", Untouched),
]


@asynccontextmanager
async def session_app(
    store: SessionStore | None,
    clock: Clock,
    handlers: list[tuple[str, Any]] | None = None,
    **settings: Any,
) -> AsyncIterator[Server]:
    app_settings = {
        key: settings.pop(key) for key in ("cookie_secret", "key_version") if key in settings
    }
    app_settings.setdefault("cookie_secret", SECRET)
    async with serve(
        handlers or HANDLERS,
        session_store=store,
        session_settings=SessionSettings(**{**DEFAULTS, **settings}),
        session_clock=clock,
        gate=Gate(2),
        **app_settings,
    ) as server:
        yield server


class Browser:
    """Keeps the session cookie the way a browser would: set, replaced, or expired."""

    def __init__(self, server: Server, cookie: str | None = None) -> None:
        self.server = server
        self.cookie = cookie

    async def fetch(self, path: str, *, method: str = "GET", body: str | None = None) -> Response:
        response = await self.server.fetch(path, cookie=self.cookie, method=method, body=body)
        morsel = response.cookie()
        if morsel is not None:
            self.cookie = morsel.value or None
        return response

    async def set(self, **values: Any) -> Response:
        body = json_util.dumps(values, json_options=JSON)
        response = await self.fetch("/set", method="POST", body=body)
        assert response.code == 200, response.text
        return response

    async def get(self) -> dict[str, Any]:
        response = await self.fetch("/get")
        assert response.code == 200, response.text
        result: dict[str, Any] = json_util.loads(response.body, json_options=JSON)
        return result

    async def post(self, path: str) -> Response:
        response = await self.fetch(path, method="POST", body="")
        assert response.code == 200, response.text
        return response


async def data_of(server: Server, cookie: str) -> dict[str, Any]:
    """What a session cookie opens now, seen by a client that holds only that cookie."""
    return (await Browser(server, cookie).get())["data"]


def assert_cleared(response: Response) -> None:
    """The raw Set-Cookie expires the session cookie: an empty value and a past Expires."""
    morsel = response.cookie()
    assert morsel is not None, response.set_cookies
    assert morsel.value == ""
    assert email.utils.parsedate_to_datetime(morsel["expires"]) < datetime.now(UTC)
    assert morsel["path"] == "/"


# -- the suite --------------------------------------------------------------------------------

VALUES: dict[str, Any] = {
    "text": "héllo ✓",
    "small": 7,
    "big": 2**40,
    "ratio": 0.25,
    "yes": True,
    "nothing": None,
    "nested": {"a": [1, {"b": "c"}], "empty": {}},
    "when": datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=UTC),
    "blob": b"\x00\xff",
}


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
        assert_cleared(response)
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
            assert_cleared(response)
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
        (path, type(f"Own{h.__name__}", (h,), {"session_store": case.store}))
        for path, h in HANDLERS
    ]
    async with session_app(decoy, Clock(), handlers=handlers) as server:
        browser = Browser(server)
        await browser.set(where="class attribute")
        assert decoy.session_count == 0
        assert browser.cookie is not None
        raw = case.raw(browser.cookie)
        assert raw is not None
        assert raw["data"] == {"where": "class attribute"}
