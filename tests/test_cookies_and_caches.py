"""Issue 11, cookies and caches: cookie tossing (several values of the session cookie's name),
the ``__Host-`` prefix, responses that carry the token kept out of shared caches, ``Vary:
Cookie``, and the warning for a Secure cookie over plain http. Real HTTP, raw headers, raw
documents."""

from __future__ import annotations

import json
import weakref
from collections.abc import AsyncIterator
from typing import Any

import pytest
import tornado.web
from handlers import Logout, ReadJSON, Untouched, WriteJSON
from helpers import Clock, LogRecords, Response, Server, assert_cleared, serve, session_id_of
from mongo_helpers import CommandLog, raw_doc

from tornado_mongo_session import (
    MongoSessionStore,
    SessionMixin,
    SessionSettings,
    _request_cookie,
    _response,
)

HOST = "__Host-session"


class PublicRead(ReadJSON):
    """``GET``: the session as :class:`ReadJSON`, after setting a public Cache-Control."""

    async def get(self) -> None:
        self.set_header("Cache-Control", "public, max-age=300, s-maxage=600")
        await super().get()


class PublicWrite(WriteJSON):
    """``GET ?k=&v=``: a write (a new session for a new visitor), publicly cacheable."""

    async def get(self) -> None:
        self.set_header("Cache-Control", "public, max-age=300")
        await super().get()


class PublicLogout(Logout):
    """``GET``: a logout (the cookie is cleared), publicly cacheable."""

    async def get(self) -> None:
        self.set_header("Cache-Control", "public, max-age=300")
        await super().get()


class PublicUntouched(SessionMixin, tornado.web.RequestHandler):
    """``GET``: public Cache-Control, never touches the session."""

    async def get(self) -> None:
        self.set_header("Cache-Control", "public, max-age=300")
        self.set_header("Vary", "Accept-Encoding")
        self.write("plain")


ROUTES = [
    ("/read", ReadJSON),
    ("/write", WriteJSON),
    ("/public-read", PublicRead),
    ("/public-write", PublicWrite),
    ("/public-logout", PublicLogout),
    ("/untouched", Untouched),
    ("/public-untouched", PublicUntouched),
]


@pytest.fixture
async def app(collection: Any, clock: Clock) -> AsyncIterator[Server]:
    async with serve(
        ROUTES,
        session_store=MongoSessionStore(collection),
        session_settings=SessionSettings(cookie_secure=False),
        session_clock=clock,
    ) as server:
        yield server


def body(response: Response) -> dict[str, Any]:
    assert response.code == 200, (response.code, response.text)
    loaded: dict[str, Any] = json.loads(response.body)
    return loaded


async def new_session(app: Server) -> str:
    cookie = (await app.fetch("/write?k=user&v=victim")).cookie_value()
    assert cookie is not None
    return cookie


# -- item 5: cookie tossing ----------------------------------------------------------------------


@pytest.mark.parametrize("valid_first", [True, False], ids=["valid;junk", "junk;valid"])
async def test_a_tossed_duplicate_neither_hides_nor_clears_the_valid_cookie(
    app: Server, command_log: CommandLog, valid_first: bool
) -> None:
    cookie = await new_session(app)
    junk = session_id_of(cookie)[:-1] + "A." + "Z" * 43  # well-formed, opens nothing
    pair = [cookie, junk] if valid_first else [junk, cookie]
    command_log.clear()
    response = await app.fetch("/read", headers={"Cookie": f"session={pair[0]}; session={pair[1]}"})
    read = body(response)
    assert read["loaded"]
    assert read["data"] == {"user": "victim"}
    assert response.set_cookies == []  # no clear, no new cookie
    # Each value until one opens a session: one find, or two when the junk came first.
    assert command_log.names() == (["find"] if valid_first else ["find", "find"])


async def test_duplicates_that_open_nothing_never_clear(app: Server, sync_db: Any) -> None:
    cookie = await new_session(app)
    junk = session_id_of(cookie) + ".not-a-token"
    response = await app.fetch("/read", headers={"Cookie": f"session={junk}; session=also-junk"})
    assert not body(response)["loaded"]
    assert response.set_cookies == []  # expiring the name could delete the client's own cookie
    assert raw_doc(sync_db, session_id_of(cookie)) is not None


async def test_values_tried_are_bounded(app: Server, command_log: CommandLog) -> None:
    cookie = await new_session(app)
    junk = [f"{session_id_of(cookie)[:-1]}{c}.{'Z' * 43}" for c in "ABCDE"]
    header = "; ".join(f"session={value}" for value in [*junk, cookie])
    command_log.clear()
    response = await app.fetch("/read", headers={"Cookie": header})
    assert not body(response)["loaded"]  # the valid value came sixth: past the bound
    assert command_log.names() == ["find"] * _request_cookie.MAX_COOKIE_VALUES
    assert response.set_cookies == []


def test_cookie_values_splits_as_tornado_does() -> None:
    values = _request_cookie.cookie_values
    assert values('a=1; session=x; b=2; session="y"; session=; session', "session") == ["x", "y"]
    assert values("sessionx=1; xsession=2", "session") == []
    assert values(" session = v ", "session") == ["v"]
    assert values("; ".join(["session=v"] * 9), "session") == ["v"] * 4


async def test_default_secure_cookie_carries_the_host_prefix(collection: Any, clock: Clock) -> None:
    """The defaults (Secure, Path=/, no Domain): the cookie is ``__Host-session``, which a
    sibling subdomain cannot set; the unprefixed name is not read."""
    store = MongoSessionStore(collection)
    async with serve(
        ROUTES, session_store=store, session_settings=SessionSettings(), session_clock=clock
    ) as app:
        new = await app.fetch("/write?k=user&v=victim")
        [line] = new.set_cookies
        assert line.startswith(HOST + "=")
        assert "Secure" in line
        assert "Path=/" in line
        assert "Domain" not in line
        cookie = new.cookie_value(HOST)
        assert body(await app.fetch("/read", cookie=cookie, cookie_name=HOST))["loaded"]
        assert not body(await app.fetch("/read", cookie=cookie, cookie_name="session"))["loaded"]


@pytest.mark.parametrize(
    ("overrides", "name"),
    [
        ({}, HOST),
        ({"cookie_name": "sid"}, "__Host-sid"),
        ({"cookie_secure": False}, "session"),  # plain-http development
        ({"cookie_host_prefix": False}, "session"),
        ({"cookie_domain": "example.test"}, "session"),
        ({"cookie_path": "/app"}, "session"),
        ({"cookie_name": "__Secure-sid"}, "__Secure-sid"),
        ({"cookie_name": HOST}, HOST),
    ],
)
def test_effective_cookie_name(overrides: dict[str, Any], name: str) -> None:
    assert SessionSettings(**overrides).effective_cookie_name == name


# -- item 4: caches --------------------------------------------------------------------------


async def test_a_response_carrying_a_token_is_never_publicly_cacheable(
    app: Server, library_log: LogRecords, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_response, "_cache_warned", weakref.WeakSet())
    new = await app.fetch("/public-write?k=a&v=1")
    assert new.cookie_value() is not None
    assert new.headers["Cache-Control"] == "private, max-age=300"
    again = await app.fetch("/public-write?k=a&v=2")
    assert again.headers["Cache-Control"] == "private, max-age=300"
    warnings = [r for r in library_log.records if "Cache-Control" in r.getMessage()]
    assert len(warnings) == 1  # once per handler class
    assert "PublicWrite" in warnings[0].getMessage()


async def test_a_cleared_cookie_response_is_private(app: Server) -> None:
    cookie = await new_session(app)
    logout = await app.fetch("/public-logout", cookie=cookie)
    assert_cleared(logout)
    assert logout.headers["Cache-Control"] == "private, max-age=300"
    assert logout.headers["Vary"] == "Cookie"


async def test_a_plain_response_with_a_new_cookie_gets_private(app: Server) -> None:
    new = await app.fetch("/write?k=a&v=1")
    assert new.cookie_value() is not None
    assert new.headers["Cache-Control"] == "private"
    assert new.headers["Vary"] == "Cookie"


async def test_a_read_varies_on_cookie_without_setting_one(app: Server) -> None:
    cookie = await new_session(app)
    read = await app.fetch("/public-read", cookie=cookie)
    assert read.set_cookies == []
    assert read.headers["Vary"] == "Cookie"
    # No cookie set: the handler's own caching stands (the response varies on the cookie).
    assert read.headers["Cache-Control"] == "public, max-age=300, s-maxage=600"


async def test_untouched_handlers_get_no_vary_and_keep_their_headers(app: Server) -> None:
    cookie = await new_session(app)
    for response in (
        await app.fetch("/untouched"),
        await app.fetch("/public-untouched"),
        await app.fetch("/public-untouched", cookie=cookie),
    ):
        assert "Cookie" not in response.headers.get("Vary", "")
        assert response.set_cookies == []
    plain = await app.fetch("/public-untouched")
    assert plain.headers["Cache-Control"] == "public, max-age=300"
    assert plain.headers["Vary"] == "Accept-Encoding"


# -- item 12: a Secure cookie over plain http -----------------------------------------------------


async def test_secure_cookie_over_plain_http_warns_once_per_process(
    collection: Any, clock: Clock, library_log: LogRecords, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_response, "_insecure_warned", False)
    store = MongoSessionStore(collection)
    async with serve(
        ROUTES, session_store=store, session_settings=SessionSettings(), session_clock=clock
    ) as app:
        # Loopback (development through 127.0.0.1 / localhost): no warning.
        await app.fetch("/write?k=a&v=1")
        await app.fetch("/write?k=a&v=1", headers={"Host": "localhost"})
        assert not [r for r in library_log.records if "cookie_secure" in r.getMessage()]
        # A public host name over plain http: browsers drop the Secure cookie.
        for _ in range(3):
            response = await app.fetch("/write?k=a&v=1", headers={"Host": "shop.example.com"})
            assert response.code == 200
            assert response.cookie_value(HOST) is not None  # behaviour unchanged
    warned = [r for r in library_log.records if "cookie_secure" in r.getMessage()]
    assert len(warned) == 1
    assert "xheaders" in warned[0].getMessage()
    assert "shop.example.com" in warned[0].getMessage()


def test_loopback_hosts() -> None:
    for host in ("127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost", "app.localhost"):
        assert _response._is_loopback(host), host
    for host in ("example.com", "10.0.0.1", "192.168.1.2", "localhost.example.com"):
        assert not _response._is_loopback(host), host
