"""Sessions bound to users: ``bind_user``, ``current_user`` and ``@authenticated``, the device
fields in the raw document, and listing and revoking a user's sessions (UserSessionStore) on
the MongoDB store (both drivers), the memory store and the tiered store; the cookie store
refuses. Through real HTTP where a user would see it; store calls counted in round trips."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest
import tornado.web
from helpers import Clock, Server, assert_cleared, serve, session_id_of, session_settings
from mongo_helpers import CommandLog, close_async_client, make_async_client, raw_doc
from pymongo.database import Database

from tornado_mongo_session import (
    CookieSessionStore,
    MemorySessionStore,
    MongoSessionStore,
    NewSession,
    SessionConfigError,
    SessionMixin,
    SessionStore,
    TieredSessionStore,
    UserSession,
    UserSessionStore,
)
from tornado_mongo_session.clock import utc_now
from tornado_mongo_session.session import Session
from tornado_mongo_session.tokens import session_handle

SECRET = "users-test-secret-0123456789abcdef0123"
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
PHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) Mobile/15E148 Safari/604.1"


# -- the app ------------------------------------------------------------------------------------


class Login(SessionMixin, tornado.web.RequestHandler):
    """``POST ?user=``: binds the user (``user=`` empty: unbinds); answers ``ok``."""

    async def post(self) -> None:
        self.session.bind_user(self.get_argument("user") or None)
        self.session.setdefault("cart", ["tea"])
        self.write("ok")


class Whoami(SessionMixin, tornado.web.RequestHandler):
    """``GET``, ``@authenticated``: ``{"user": current_user, "handle": the session's}``."""

    @tornado.web.authenticated
    async def get(self) -> None:
        self.write({"user": self.current_user, "handle": self.session.handle})


class WhoamiLoaded(Whoami):
    """:class:`Whoami` with an async user loader: ``current_user`` is the app's user record."""

    async def load_current_user(self, user_id: str) -> Any:
        await asyncio.sleep(0)  # a lookup that waits, as a database query would
        self.settings["loader_calls"].append(user_id)
        return self.settings["users"].get(user_id)


class Devices(SessionMixin, tornado.web.RequestHandler):
    """``GET``, ``@authenticated``: the user's sessions (``list_user_sessions``) as JSON."""

    @tornado.web.authenticated
    async def get(self) -> None:
        store: UserSessionStore = self.settings["session_store"]
        found = await store.list_user_sessions(self.current_user, current=self.session.handle)
        self.write({"sessions": [as_json(session) for session in found]})


class Revoke(SessionMixin, tornado.web.RequestHandler):
    """``POST ?handle=`` (this device), ``?others=1`` (everywhere else) or nothing
    (everywhere), for the signed-in user; answers ``{"revoked": n}``."""

    @tornado.web.authenticated
    async def post(self) -> None:
        store: UserSessionStore = self.settings["session_store"]
        handle = self.get_argument("handle", None)
        if handle is not None:
            revoked = int(await store.revoke_session(handle, user_id=self.current_user))
        else:
            keep = self.session.handle if self.get_argument("others", None) else None
            revoked = await store.revoke_user(self.current_user, keep=keep)
        self.write({"revoked": revoked})


class OwnUserBase(tornado.web.RequestHandler):
    """An application's base handler with its own ``get_current_user`` (a signed cookie)."""

    def get_current_user(self) -> Any:
        return self.get_signed_cookie("user")


class WhoamiOwn(SessionMixin, OwnUserBase):
    """``GET``: ``current_user`` where the application's base handler finds it first."""

    async def get(self) -> None:
        user = self.current_user
        self.write({"user": user.decode() if isinstance(user, bytes) else user})


class Regenerate(SessionMixin, tornado.web.RequestHandler):
    """``POST``: ``regenerate()``; answers ``ok``."""

    async def post(self) -> None:
        self.session.regenerate()
        self.write("ok")


ROUTES: list[tuple[Any, ...]] = [
    ("/regenerate", Regenerate),
    ("/whoami-own", WhoamiOwn),
    ("/login", Login),
    ("/whoami", Whoami),
    ("/whoami-loaded", WhoamiLoaded),
    ("/devices", Devices),
    ("/revoke", Revoke),
]


def as_json(session: UserSession) -> dict[str, Any]:
    return {
        "handle": session.handle,
        "created_at": session.created_at.isoformat(),
        "accessed_at": session.accessed_at.isoformat(),
        "ip": session.ip,
        "user_agent": session.user_agent,
        "current": session.current,
    }


@asynccontextmanager
async def user_app(store: SessionStore, clock: Clock, **settings: Any) -> AsyncIterator[Server]:
    async with serve(
        ROUTES,
        session_store=store,
        session_settings=session_settings(**settings),
        session_clock=clock,
        login_url="/login",
        cookie_secret=SECRET,
        users={"ada": {"name": "Ada Lovelace"}},
        loader_calls=[],
    ) as server:
        yield server


class Device:
    """A browser on one device: its own User-Agent and cookie jar."""

    def __init__(self, server: Server, user_agent: str = FIREFOX) -> None:
        self.server = server
        self.user_agent = user_agent
        self.cookie: str | None = None

    async def fetch(self, path: str, *, method: str = "GET") -> Any:
        response = await self.server.fetch(
            path,
            cookie=self.cookie,
            method=method,
            headers={"User-Agent": self.user_agent},
        )
        morsel = response.cookie()
        if morsel is not None:
            self.cookie = morsel.value or None
        return response

    async def login(self, user: str = "ada") -> None:
        response = await self.fetch(f"/login?user={user}", method="POST")
        assert response.code == 200, response.text

    async def whoami(self) -> dict[str, Any]:
        response = await self.fetch("/whoami")
        assert response.code == 200, (response.code, response.text)
        result: dict[str, Any] = json.loads(response.body)
        return result

    async def devices(self) -> list[dict[str, Any]]:
        response = await self.fetch("/devices")
        assert response.code == 200, (response.code, response.text)
        result: list[dict[str, Any]] = json.loads(response.body)["sessions"]
        return result

    async def revoke(self, query: str = "") -> int:
        response = await self.fetch(f"/revoke{query}", method="POST")
        assert response.code == 200, (response.code, response.text)
        revoked: int = json.loads(response.body)["revoked"]
        return revoked


# -- stores -------------------------------------------------------------------------------------


@pytest.fixture(params=["mongo", "memory", "tiered"])
def store(request: pytest.FixtureRequest, collection: Any) -> SessionStore:
    """Each store with the capability (MongoDB through the ``driver`` fixture's client)."""
    if request.param == "mongo":
        return MongoSessionStore(collection)
    if request.param == "memory":
        return MemorySessionStore()
    return TieredSessionStore(
        cookie=CookieSessionStore(SECRET), server=MongoSessionStore(collection)
    )


def document(store: SessionStore, sync_db: Database[Any], session_id: str) -> dict[str, Any] | None:
    """The raw document of a session, from MongoDB, or the memory store's copy of it."""
    if isinstance(store, MemorySessionStore):
        return store.document(session_id)
    return raw_doc(sync_db, session_id)


class Minimal:
    """A third-party store without the capability."""

    async def load(self, cookie_value: str, *, now: Any) -> None:
        return None

    async def save(self, request: Any) -> Any:
        raise NotImplementedError

    async def delete(self, record: Any) -> None:
        return None


def test_the_stores_have_the_capability_and_the_protocol_stays_optional() -> None:
    memory = MemorySessionStore()
    assert isinstance(memory, UserSessionStore)
    tiered = TieredSessionStore(cookie=CookieSessionStore(SECRET), server=memory)
    assert isinstance(tiered, UserSessionStore)
    assert isinstance(Minimal(), SessionStore)  # still a SessionStore
    assert not isinstance(Minimal(), UserSessionStore)


async def test_tiered_store_without_the_capability_says_so() -> None:
    tiered = TieredSessionStore(cookie=CookieSessionStore(SECRET), server=Minimal())
    with pytest.raises(SessionConfigError, match="cannot list or revoke"):
        await tiered.list_user_sessions("ada")
    with pytest.raises(SessionConfigError, match="session_alive"):
        await tiered.session_alive("x", now=utc_now())


# -- bind_user and current_user -----------------------------------------------------------------


async def test_login_binds_the_user_and_records_the_device(
    store: SessionStore, sync_db: Database[Any], clock: Clock
) -> None:
    async with user_app(store, clock) as server:
        phone = Device(server, PHONE)
        await phone.fetch("/login?user=", method="POST")  # anonymous, with data
        anonymous = session_id_of(phone.cookie)
        await phone.login()
        session_id = session_id_of(phone.cookie)
        assert session_id != anonymous  # bind_user() regenerated the session
        assert document(store, sync_db, anonymous) is None
        doc = document(store, sync_db, session_id)
        assert doc is not None
        assert doc["user_id"] == "ada"
        assert doc["handle"] == session_handle(session_id)
        assert doc["ip"] == "127.0.0.1"
        assert doc["ua"] == PHONE
        assert doc["data"] == {"cart": ["tea"]}  # the data came along
        assert phone.cookie is not None
        token = phone.cookie.split(".")[1]
        assert token not in json.dumps(doc, default=str)  # never a token, not even in the ua
        assert await phone.whoami() == {"user": "ada", "handle": session_handle(session_id)}


async def test_regenerate_keeps_the_user_and_the_device_of_the_login(
    collection: Any, sync_db: Database[Any], clock: Clock
) -> None:
    async with user_app(MongoSessionStore(collection), clock) as server:
        phone = Device(server, PHONE)
        await phone.login()
        first = session_id_of(phone.cookie)
        phone.user_agent = "something else now"
        assert (await phone.fetch("/regenerate", method="POST")).code == 200
        second = session_id_of(phone.cookie)
        assert second != first
        doc = raw_doc(sync_db, second)
        assert doc is not None
        assert (doc["user_id"], doc["ua"], doc["handle"]) == ("ada", PHONE, session_handle(second))
        assert (await phone.whoami())["user"] == "ada"


async def test_bind_user_none_unbinds_and_authenticated_redirects(
    collection: Any, sync_db: Database[Any], clock: Clock
) -> None:
    async with user_app(MongoSessionStore(collection), clock) as server:
        browser = Device(server)
        response = await browser.fetch("/whoami")
        assert response.code == 302  # nobody bound: @authenticated sends to login_url
        assert response.headers["Location"].startswith("/login?next=%2Fwhoami")
        await browser.login()
        bound = session_id_of(browser.cookie)
        await browser.fetch("/login?user=", method="POST")
        unbound = session_id_of(browser.cookie)
        assert unbound != bound
        doc = raw_doc(sync_db, unbound)
        assert doc is not None
        assert {"user_id", "handle", "ip", "ua"}.isdisjoint(doc)
        assert (await browser.fetch("/whoami")).code == 302


async def test_an_applications_own_get_current_user_still_comes_first(
    collection: Any, clock: Clock
) -> None:
    async with user_app(MongoSessionStore(collection), clock) as server:
        browser = Device(server)
        assert json.loads((await browser.fetch("/whoami-own")).body) == {"user": None}
        await browser.login()
        assert json.loads((await browser.fetch("/whoami-own")).body) == {"user": "ada"}
        signed = tornado.web.create_signed_value(SECRET, "user", "grace").decode()
        response = await server.fetch(
            "/whoami-own", headers={"Cookie": f"user={signed}; session={browser.cookie}"}
        )
        assert json.loads(response.body) == {"user": "grace"}


async def test_current_user_is_nobody_while_the_store_is_unreachable(clock: Clock) -> None:
    """Tornado reads current_user in every render(): a page that does not use the session
    keeps working through an outage, and @authenticated fails closed."""
    client = make_async_client("pymongo", "mongodb://127.0.0.1:9/", serverSelectionTimeoutMS=100)
    try:
        store = MongoSessionStore(client["nowhere"]["sessions"])
        async with user_app(store, clock) as server:
            cookie = "A" * 24 + "." + "B" * 43  # well formed: the store is asked, and fails
            response = await server.fetch("/whoami-own", cookie=cookie)
            assert response.code == 200
            assert json.loads(response.body) == {"user": None}
            response = await server.fetch("/whoami", cookie=cookie)
            assert response.code == 302
    finally:
        await close_async_client(client)


async def test_current_user_costs_no_round_trip(
    collection: Any, command_log: CommandLog, clock: Clock
) -> None:
    async with user_app(MongoSessionStore(collection), clock) as server:
        browser = Device(server)
        await browser.login()
        command_log.clear()
        assert (await browser.whoami())["user"] == "ada"
        assert command_log.names() == ["find"]  # the session's own read, nothing more


async def test_login_round_trips_are_those_of_regenerate(
    collection: Any, command_log: CommandLog, clock: Clock
) -> None:
    async with user_app(MongoSessionStore(collection), clock) as server:
        browser = Device(server)
        await browser.login()  # a new session: the indexes (once per store), one insert
        assert command_log.names() == ["createIndexes", "createIndexes", "insert"]
        command_log.clear()
        await browser.login("grace")  # a loaded session: find, insert the new, delete the old
        assert command_log.names() == ["find", "insert", "delete"]


async def test_an_async_user_loader_runs_in_prepare(
    collection: Any, command_log: CommandLog, clock: Clock
) -> None:
    async with user_app(MongoSessionStore(collection), clock) as server:
        calls: list[str] = server.app.settings["loader_calls"]
        browser = Device(server)
        assert (await browser.fetch("/whoami-loaded")).code == 302
        assert calls == []  # no session, no user: the loader is not called
        await browser.login()
        command_log.clear()
        response = await browser.fetch("/whoami-loaded")
        assert json.loads(response.body)["user"] == {"name": "Ada Lovelace"}
        assert calls == ["ada"]
        assert command_log.names() == ["find"]
        await browser.login("grace")  # a user the loader does not know: not authenticated
        response = await browser.fetch("/whoami-loaded")
        assert response.code == 302
        assert calls == ["ada", "grace"]


async def test_remember_device_off_stores_neither_ip_nor_user_agent(
    collection: Any, sync_db: Database[Any], clock: Clock
) -> None:
    async with user_app(MongoSessionStore(collection), clock, remember_device=False) as server:
        browser = Device(server)
        await browser.login()
        doc = raw_doc(sync_db, session_id_of(browser.cookie))
        assert doc is not None
        assert doc["user_id"] == "ada"
        assert "ip" not in doc
        assert "ua" not in doc
        assert (await browser.devices())[0]["user_agent"] is None


async def test_a_long_user_agent_is_truncated(
    collection: Any, sync_db: Database[Any], clock: Clock
) -> None:
    async with user_app(MongoSessionStore(collection), clock) as server:
        browser = Device(server, "X" * 5000)
        await browser.login()
        doc = raw_doc(sync_db, session_id_of(browser.cookie))
        assert doc is not None
        assert doc["ua"] == "X" * 256


def test_bind_user_refuses_what_is_not_a_user_id() -> None:
    session = Session()
    for bad in (42, "", "x" * 1025, b"ada"):
        with pytest.raises(TypeError, match="bind_user"):
            session.bind_user(bad)  # type: ignore[arg-type]
    assert session.user_id is None
    session.bind_user("ada")
    assert session.user_id == "ada"
    assert session.user_bound
    session.invalidate()
    assert session.user_id is None


# -- your devices: list and revoke -------------------------------------------------------------


async def test_list_revoke_this_device_and_everywhere_else(
    store: SessionStore, sync_db: Database[Any], clock: Clock
) -> None:
    async with user_app(store, clock) as server:
        laptop, phone, tablet = Device(server), Device(server, PHONE), Device(server, "Tablet")
        await laptop.login()
        clock.advance(60)
        await phone.login()
        clock.advance(60)
        await tablet.login()
        other = Device(server)
        await other.login("grace")
        await Device(server).fetch("/login?user=", method="POST")  # anonymous: never listed

        listed = await laptop.devices()
        assert [d["user_agent"] for d in listed] == ["Tablet", PHONE, FIREFOX]  # newest first
        assert [d["current"] for d in listed] == [False, False, True]
        assert {d["ip"] for d in listed} == {"127.0.0.1"}
        handles = {d["user_agent"]: d["handle"] for d in listed}
        assert handles[FIREFOX] == session_handle(session_id_of(laptop.cookie))

        # Another user's handle, sent by a signed-in user: revokes nothing.
        grace_handle = (await other.devices())[0]["handle"]
        assert await laptop.revoke(f"?handle={grace_handle}") == 0
        assert (await other.whoami())["user"] == "grace"

        # "Log out this device" (the phone, from the laptop).
        assert await laptop.revoke(f"?handle={handles[PHONE]}") == 1
        response = await phone.fetch("/whoami")
        assert response.code == 302  # its next request opens nothing
        assert_cleared(response)
        assert await laptop.revoke(f"?handle={handles[PHONE]}") == 0  # already gone

        # "Log out everywhere else".
        assert await laptop.revoke("?others=1") == 1
        assert (await tablet.fetch("/whoami")).code == 302
        assert [d["current"] for d in await laptop.devices()] == [True]

        # "Log out everywhere".
        assert await laptop.revoke() == 1
        assert (await laptop.fetch("/whoami")).code == 302
        assert (await other.whoami())["user"] == "grace"  # other users keep theirs


async def test_expired_sessions_are_not_listed(collection: Any, clock: Clock) -> None:
    store = MongoSessionStore(collection)
    async with user_app(store, clock, idle_timeout=600) as server:
        await Device(server).login()
        clock.advance(700)
        await Device(server).login()
        assert len(await store.list_user_sessions("ada", now=clock())) == 1
        assert len(await store.list_user_sessions("ada", now=clock() - timedelta(seconds=700))) == 2


async def test_round_trips_of_list_and_revoke(
    collection: Any, command_log: CommandLog, clock: Clock
) -> None:
    store = MongoSessionStore(collection)
    async with user_app(store, clock) as server:
        for _ in range(3):
            await Device(server).login()
    command_log.clear()
    listed = await store.list_user_sessions("ada", now=clock())
    assert len(listed) == 3
    assert command_log.names() == ["find"]
    command_log.clear()
    assert await store.revoke_session(listed[0].handle)  # an operator's tool: no user id
    assert command_log.names() == ["delete"]
    command_log.clear()
    assert await store.revoke_user("ada", keep=listed[1].handle) == 1
    assert command_log.names() == ["delete"]
    assert [s.handle for s in await store.list_user_sessions("ada", now=clock())] == [
        listed[1].handle
    ]


async def test_revoked_on_one_process_opens_nothing_on_another(
    driver: str, mongo_url: str, db_name: str, sync_db: Database[Any], clock: Clock
) -> None:
    """Two apps, each with its own client, one database: as two Tornado processes."""
    first = make_async_client(driver, mongo_url)
    second = make_async_client(driver, mongo_url)
    try:
        store_a = MongoSessionStore(first[db_name]["sessions"])
        store_b = MongoSessionStore(second[db_name]["sessions"])
        async with user_app(store_a, clock) as app_a, user_app(store_b, clock) as app_b:
            on_a = Device(app_a)
            await on_a.login()
            assert (await on_a.whoami())["user"] == "ada"
            on_b = Device(app_b, PHONE)
            await on_b.login()
            listed = await on_b.devices()
            assert len(listed) == 2
            assert await on_b.revoke("?others=1") == 1
            response = await on_a.fetch("/whoami")
            assert response.code == 302
            assert_cleared(response)
            assert (await on_b.whoami())["user"] == "ada"
            assert sync_db.sessions.count_documents({"user_id": "ada"}) == 1
    finally:
        await close_async_client(first)
        await close_async_client(second)


async def test_store_calls_check_their_arguments(collection: Any) -> None:
    store = MongoSessionStore(collection)
    for call in (
        store.list_user_sessions(""),
        store.revoke_user(42),  # type: ignore[arg-type]
        store.revoke_session(None),  # type: ignore[arg-type]
        store.revoke_session("h", user_id=""),
    ):
        with pytest.raises(TypeError):
            await call


# -- the tiered and the cookie store -------------------------------------------------------------


async def test_tiered_store_moves_a_bound_session_to_the_server(
    collection: Any, sync_db: Database[Any], command_log: CommandLog, clock: Clock
) -> None:
    store = TieredSessionStore(
        cookie=CookieSessionStore(SECRET), server=MongoSessionStore(collection)
    )
    new = NewSession(data={}, created_at=clock(), now=clock(), expires_at=clock(), user_id="ada")
    result = await store.save(new)  # a bound session, even unpromoted, goes to the server
    assert result.cookie_value is not None
    assert not result.cookie_value.startswith("c1.")
    doc = raw_doc(sync_db, result.session_id)
    assert doc is not None
    assert doc["user_id"] == "ada"
    async with user_app(store, clock) as server:
        browser = Device(server)
        await browser.login()
        assert browser.cookie is not None
        assert not browser.cookie.startswith("c1.")
        assert len(await browser.devices()) == 1


async def test_cookie_store_cannot_revoke_but_knows_its_user(clock: Clock) -> None:
    store = CookieSessionStore(SECRET)
    for call in (
        store.list_user_sessions("ada"),
        store.revoke_session("h"),
        store.revoke_user("ada"),
    ):
        with pytest.raises(SessionConfigError, match="cannot list or revoke"):
            await call
    async with user_app(store, clock) as server:
        browser = Device(server)
        await browser.login()
        assert (await browser.whoami())["user"] == "ada"  # the id is signed into the cookie
        response = await browser.fetch("/devices")
        assert response.code == 500


async def test_memory_store_lists_with_its_clock() -> None:
    clock = Clock()
    store = MemorySessionStore(clock=clock)
    now = utc_now()
    await store.save(
        NewSession(
            data={}, created_at=now, now=now, expires_at=now + timedelta(seconds=60), user_id="u"
        )
    )
    assert len(await store.list_user_sessions("u")) == 1
    clock.advance(61)
    assert await store.list_user_sessions("u") == []
