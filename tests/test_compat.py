"""The legacy decorator (tornado_mongo_session.compat): handlers written in AsyncMongo-Sessions'
style, on plain RequestHandlers, through real HTTP, with raw cookies and raw documents."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial
from typing import Any, ClassVar

import pytest
import tornado.web
from helpers import Clock, Server, assert_cleared, cookie_parts, serve, session_settings
from mongo_helpers import doc_of
from pydantic import ValidationError

from tornado_mongo_session import MongoSessionStore, SessionConfigError, SessionMixin
from tornado_mongo_session.compat import (
    LEGACY_SETTING_NAMES,
    LegacySession,
    asyncmongosession,
    legacy_settings,
)
from tornado_mongo_session.tokens import hash_token


class Main(tornado.web.RequestHandler):
    """The original README's example, as written there (less ``@tornado.web.asynchronous``)."""

    @asyncmongosession
    def get(self) -> None:
        session: Any = self.session  # type: ignore[attr-defined]
        if session.has_key("test"):
            session["test"] += 1
        else:
            session["test"] = 0
        self.write(str(session["test"]))


class Read(tornado.web.RequestHandler):
    """A coroutine method; ``get(key, default)`` and the session's own attributes."""

    @asyncmongosession
    async def get(self) -> None:
        session: Any = self.session  # type: ignore[attr-defined]
        self.write(
            {
                "test": session.get("test"),
                "user": session.get("user", "nobody"),
                "id": session.get_id(),
                "new": session.is_new,
                "legacy": isinstance(session, LegacySession),
            }
        )


class Login(tornado.web.RequestHandler):
    """Login the new way, through the wrapper: ``regenerate()`` then a key; then a redirect."""

    @asyncmongosession
    def post(self) -> None:
        session: Any = self.session  # type: ignore[attr-defined]
        session.regenerate()
        session["user"] = self.get_argument("user")
        self.redirect("/read")


class Logout(tornado.web.RequestHandler):
    """Logout the original way: ``self.session.delete()``."""

    @asyncmongosession
    def post(self) -> None:
        self.session.delete()  # type: ignore[attr-defined]
        self.write("bye")


class Mapping(tornado.web.RequestHandler):
    """The rest of the dict protocol through the wrapper, and the wrapped Session."""

    @asyncmongosession
    def get(self) -> None:
        session: Any = self.session  # type: ignore[attr-defined]
        session["drop"] = 1
        del session["drop"]
        self.write(
            {
                "keys": sorted(session),
                "len": len(session),
                "has_test": "test" in session,
                "wrapped": type(session.session).__name__,
                "repr": repr(session).startswith("<LegacySession of <Session id=…"),
                "private": hasattr(session, "_snapshot"),
            }
        )


class Hooks(tornado.web.RequestHandler):
    """A handler with its own prepare() and finish(): each must still run exactly once."""

    calls: ClassVar[list[str]] = []

    def prepare(self) -> None:
        self.calls.append("prepare")

    def finish(self, chunk: Any = None) -> Any:
        self.calls.append("finish")
        return super().finish(chunk)

    @asyncmongosession
    def get(self) -> None:
        self.session["hooked"] = True  # type: ignore[attr-defined]
        self.finish("explicit")  # finishes inside the method, as render() does


class Plain(tornado.web.RequestHandler):
    """No decorator: no session, no cookie, no store command."""

    def get(self) -> None:
        self.write(str(hasattr(self, "session")))


class Modern(SessionMixin, tornado.web.RequestHandler):
    """Already on the mixin: the decorator leaves it alone."""

    @asyncmongosession
    async def get(self) -> None:
        self.session["modern"] = type(self.session).__name__
        self.write(type(self.session).__name__)


ROUTES = [
    ("/", Main),
    ("/read", Read),
    ("/login", Login),
    ("/logout", Logout),
    ("/mapping", Mapping),
    ("/hooks", Hooks),
    ("/plain", Plain),
    ("/modern", Modern),
]
settings = partial(session_settings, token_ttl=5, tokens_kept=3, touch_interval=60)


@pytest.fixture
async def app(collection: Any, clock: Clock) -> AsyncIterator[Server]:
    async with serve(
        ROUTES,
        session_store=MongoSessionStore(collection),
        session_settings=settings(),
        session_clock=clock,
    ) as server:
        yield server


async def test_count_and_persist(app: Server, sync_db: Any, command_log: Any) -> None:
    response = await app.fetch("/")
    assert response.text == "0"
    cookie = response.cookie_value()
    session_id, _ = cookie_parts(cookie)
    assert doc_of(sync_db, cookie)["data"] == {"test": 0}  # type: ignore[index]
    command_log.clear()
    for expected in ("1", "2"):
        response = await app.fetch("/", cookie=cookie)
        assert response.text == expected
        assert response.set_cookies == []  # the token did not change: no Set-Cookie
    assert command_log.names() == ["find", "update"] * 2  # as with the mixin
    assert doc_of(sync_db, cookie)["data"] == {"test": 2}  # type: ignore[index]
    read = await app.fetch("/read", cookie=cookie)
    assert read.code == 200
    assert tornado.escape.json_decode(read.body) == {
        "test": 2,
        "user": "nobody",
        "id": session_id,
        "new": False,
        "legacy": True,
    }


async def test_the_dict_protocol(app: Server, sync_db: Any) -> None:
    cookie = (await app.fetch("/")).cookie_value()
    response = await app.fetch("/mapping", cookie=cookie)
    assert tornado.escape.json_decode(response.body) == {
        "keys": ["test"],
        "len": 1,
        "has_test": True,
        "wrapped": "Session",
        "repr": True,
        "private": False,  # private names of the session are not reached through the wrapper
    }
    assert doc_of(sync_db, cookie)["data"] == {"test": 0}  # type: ignore[index]


async def test_untouched_and_undecorated_requests_cost_nothing(
    app: Server, command_log: Any
) -> None:
    response = await app.fetch("/plain")
    assert response.text == "False"
    response = await app.fetch("/read")  # decorated, no cookie, nothing written
    assert response.code == 200
    assert response.set_cookies == []
    assert command_log.names() == []


async def test_token_rotates_and_old_tokens_stay_valid(
    app: Server, clock: Clock, sync_db: Any
) -> None:
    first = (await app.fetch("/")).cookie_value()
    cookies = [first]
    for expected in ("1", "2", "3"):
        clock.advance(5.1)
        response = await app.fetch("/", cookie=cookies[-1])
        assert response.text == expected
        new = response.cookie_value()
        assert new is not None
        assert new != cookies[-1]
        assert cookie_parts(new)[0] == cookie_parts(first)[0]
        cookies.append(new)
    doc = doc_of(sync_db, first)
    assert doc is not None
    assert doc["tokens"] == [hash_token(cookie_parts(c)[1]) for c in reversed(cookies)][:3]
    for cookie in cookies[1:]:
        response = await app.fetch("/read", cookie=cookie)
        assert tornado.escape.json_decode(response.body)["test"] == 3
    response = await app.fetch("/read", cookie=first)  # evicted: a new, empty session
    assert tornado.escape.json_decode(response.body)["new"] is True


async def test_login_regenerates_and_delete_logs_out(app: Server, sync_db: Any) -> None:
    anonymous = (await app.fetch("/")).cookie_value()
    response = await app.fetch("/login", method="POST", body="user=ada", cookie=anonymous)
    assert response.code == 302
    assert response.headers["Location"] == "/read"
    user = response.cookie_value()
    assert cookie_parts(user)[0] != cookie_parts(anonymous)[0]
    assert doc_of(sync_db, anonymous) is None  # the old id died with the login
    assert doc_of(sync_db, user)["data"] == {"test": 0, "user": "ada"}  # type: ignore[index]

    response = await app.fetch("/logout", method="POST", cookie=user)
    assert response.text == "bye"
    assert_cleared(response)
    assert doc_of(sync_db, user) is None
    response = await app.fetch("/read", cookie=user)
    assert tornado.escape.json_decode(response.body)["user"] == "nobody"


async def test_handler_hooks_run_once_and_save_precedes_response(app: Server, sync_db: Any) -> None:
    Hooks.calls.clear()
    response = await app.fetch("/hooks")
    assert response.text == "explicit"
    assert Hooks.calls == ["prepare", "finish"]
    # Saved before the response went out: the document is there when the client has it.
    assert doc_of(sync_db, response.cookie_value())["data"] == {"hooked": True}  # type: ignore[index]


async def test_on_a_mixin_handler_the_decorator_does_nothing(app: Server, sync_db: Any) -> None:
    response = await app.fetch("/modern")
    assert response.text == "Session"
    assert doc_of(sync_db, response.cookie_value())["data"] == {"modern": "Session"}  # type: ignore[index]


async def test_no_store_is_a_clear_500(caplog: pytest.LogCaptureFixture) -> None:
    async with serve([("/", Main)], session_settings=settings()) as server:
        response = await server.fetch("/")
    assert response.code == 500
    assert "session_store" in caplog.text


def test_legacy_settings_name_by_name() -> None:
    original = {  # AsyncMongo-Sessions' settings.py, with every default changed
        "COOKIE_NAME": "asyncmongo_session",
        "DEFAULT_COOKIE_PATH": "/app",
        "SESSION_EXPIRE_TIME": 600,
        "SET_COOKIE_EXPIRES": False,
        "SESSION_TOKEN_TTL": 30,
        "UPDATE_LAST_ACTIVITY": 20,
        "MONGO_COLLECTION": "legacy_sessions",
        "MONGO_COLLECTION_SIZE": 100000,
    }
    assert set(original) == set(LEGACY_SETTING_NAMES)
    converted = legacy_settings(original, cookie_secure=False)
    assert converted.cookie_name == "asyncmongo_session"
    assert converted.cookie_path == "/app"
    assert converted.idle_timeout == 600
    assert converted.persistent_cookie is False
    assert converted.token_ttl == 30
    assert converted.touch_interval == 20
    assert converted.collection == "legacy_sessions"
    assert converted.cookie_secure is False
    assert legacy_settings({}).cookie_secure is True  # the safe default is not inherited


def test_legacy_settings_refuse_unknown_and_invalid() -> None:
    with pytest.raises(SessionConfigError, match="'SESSION_TOKEN_TIME'"):
        legacy_settings({"SESSION_TOKEN_TIME": 5})
    with pytest.raises(ValidationError, match="token_ttl"):
        legacy_settings({"SESSION_TOKEN_TTL": -1})
