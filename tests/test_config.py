"""config.py: application settings read once per application; the session cookie's header."""

from __future__ import annotations

import gc
from typing import Any

import pytest
import tornado.web
from helpers import Response, serve

from tornado_mongo_session import (
    MemorySessionStore,
    NeverRotator,
    SessionConfigError,
    SessionMixin,
    SessionSettings,
)
from tornado_mongo_session.config import SessionConfig, config_of
from tornado_mongo_session.tokens import parse_cookie

VALUE = "A" * 24 + "." + "b-_" * 14 + "c"


class TornadoSetsIt(tornado.web.RequestHandler):
    """Tornado's own set_cookie, with the attributes the session cookie gets."""

    def get(self) -> None:
        config = SessionConfig(self.settings)
        age = self.get_argument("max_age", "")
        max_age = int(age) if age else None
        self.set_cookie(config.cookie_name, VALUE, max_age=max_age, **config.cookie_attrs)


@pytest.mark.parametrize(
    "settings",
    [
        SessionSettings(),
        SessionSettings(cookie_secure=False, cookie_httponly=False, cookie_samesite=None),
        SessionSettings(cookie_domain="example.org", cookie_path="/app", cookie_name="sid"),
        SessionSettings(cookie_name="__Host-session", cookie_samesite="Strict"),
    ],
    ids=["defaults", "no flags", "domain and path", "host prefix"],
)
@pytest.mark.parametrize("max_age", [7200, 0, None])
async def test_the_cookie_header_is_the_one_tornado_writes(
    settings: SessionSettings, max_age: int | None
) -> None:
    async with serve([("/", TornadoSetsIt)], session_settings=settings) as server:
        response = await server.fetch(f"/?max_age={'' if max_age is None else max_age}")
    header = SessionConfig({"session_settings": settings}).cookie_header(VALUE, max_age)
    assert response.set_cookies == [header]


@pytest.mark.parametrize("value", ['"quoted"', "a b", "a;b", "é", ""])
def test_a_value_that_would_need_quoting_is_left_to_tornado(value: str) -> None:
    assert SessionConfig({}).cookie_header(value, 60) is None


@pytest.mark.parametrize(
    ("name", "value"), [("cookie_path", "/a;b"), ("cookie_domain", "a b"), ("cookie_path", "/\n")]
)
def test_cookie_attributes_tornado_would_refuse_are_refused_at_once(name: str, value: str) -> None:
    with pytest.raises(SessionConfigError, match=name):
        SessionConfig({"session_settings": SessionSettings(**{name: value})})


@pytest.mark.parametrize(
    ("setting", "value"), [("session_settings", {"a": 1}), ("session_rotator", "every 5 s")]
)
def test_a_setting_of_the_wrong_type_is_named(setting: str, value: Any) -> None:
    with pytest.raises(SessionConfigError, match=f"'{setting}'"):
        SessionConfig({setting: value})


def test_read_once_per_application_and_forgotten_with_it() -> None:
    rotator = NeverRotator()
    app = tornado.web.Application(session_rotator=rotator)
    config = config_of(app)
    assert config.rotator is rotator
    assert config_of(app) is config
    assert not hasattr(app, "_tornado_mongo_session_config")  # nothing added to the app
    assert config_of(tornado.web.Application()) is not config
    count = len(gc.get_referrers(config))
    del app
    gc.collect()
    assert len(gc.get_referrers(config)) < count


async def fetch_once(handler: type[tornado.web.RequestHandler]) -> Response:
    """One GET of ``handler`` on a fresh app with a memory store; the response."""
    async with serve(
        [("/", handler)],
        session_store=MemorySessionStore(),
        session_settings=SessionSettings(cookie_secure=False),
    ) as server:
        return await server.fetch("/")


class SetsTheSessionCookieToo(SessionMixin, tornado.web.RequestHandler):
    def get(self) -> None:
        self.set_cookie("session", "the-handler-s-own")
        self.session["n"] = 1


async def test_the_session_cookie_wins_over_one_the_handler_set_of_the_same_name() -> None:
    """As with Tornado's set_cookie alone: one Set-Cookie per name, the last one set."""
    response = await fetch_once(SetsTheSessionCookieToo)
    assert len(response.set_cookies) == 1
    value = response.cookie_value()
    assert value is not None
    assert parse_cookie(value) is not None


class AddsItsOwnSetCookieHeader(SessionMixin, tornado.web.RequestHandler):
    def get(self) -> None:
        self.add_header("Set-Cookie", "theme=dark; Path=/")  # a raw header, not set_cookie
        self.session["n"] = 1


async def test_a_set_cookie_header_the_handler_added_is_kept_beside_the_session_cookie() -> None:
    """A raw Set-Cookie header the handler added stays, first, beside the session cookie's."""
    response = await fetch_once(AddsItsOwnSetCookieHeader)
    assert response.set_cookies[0] == "theme=dark; Path=/"
    assert len(response.set_cookies) == 2
    value = response.cookie_value()
    assert value is not None
    assert parse_cookie(value) is not None
    assert response.set_cookies[1].startswith(f"session={value}; ")
