"""SessionMixin on a tornado.websocket.WebSocketHandler, driven by Tornado's websocket client.

The session is loaded during the handshake (Tornado runs ``prepare`` before the upgrade) and
readable in ``open()`` and ``on_message()``; the handshake response sets no cookie and nothing
is saved when it finishes, even with the token due for rotation; ``save_session()`` writes the
changes (one update, no rotation); ``session_still_valid()`` is one find and sees a revocation.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import tornado.httpclient
import tornado.web
import tornado.websocket
from helpers import Clock, Server, serve, session_id_of, session_settings
from mongo_helpers import CommandLog, raw_doc
from pymongo.database import Database

from tornado_mongo_session import (
    CookieSessionStore,
    MemorySessionStore,
    MongoSessionStore,
    SessionDataError,
    SessionMixin,
    SessionStore,
    TieredSessionStore,
)

SECRET = "websocket-test-secret-0123456789abcdef"


class Login(SessionMixin, tornado.web.RequestHandler):
    """``POST ?user=``: binds the user, sets ``n`` to 0; answers ``ok``."""

    async def post(self) -> None:
        self.session.bind_user(self.get_argument("user", "ada"))
        self.session["n"] = 0
        self.write("ok")


class Read(SessionMixin, tornado.web.RequestHandler):
    """``GET``: answers the session's ``n`` (a plain HTTP request: it rotates when due)."""

    async def get(self) -> None:
        self.write(str(self.session.get("n")))


class Socket(SessionMixin, tornado.websocket.WebSocketHandler):
    """Says ``{"user", "n"}`` on open; answers ``incr`` (adds one to ``n`` and saves),
    ``check`` (``session_still_valid()``) and ``regenerate`` (refused over a socket)."""

    def open(self, *args: str, **kwargs: str) -> None:
        self.write_message({"user": self.current_user, "n": self.session.get("n")})

    async def on_message(self, message: str | bytes) -> None:
        if message == "incr":
            self.session["n"] = self.session.get("n", 0) + 1
            try:
                await self.save_session()
            except SessionDataError as exc:
                self.write_message({"error": str(exc)})
            else:
                self.write_message({"n": self.session["n"]})
        elif message == "save":  # nothing changed: nothing to send
            await self.save_session()
            self.write_message({"saved": True})
        elif message == "check":
            self.write_message({"valid": await self.session_still_valid()})
        elif message in ("regenerate", "bind"):
            if message == "bind":
                self.session.bind_user("grace")
            else:
                self.session.regenerate()
            try:
                await self.save_session()
            except SessionDataError as exc:
                self.write_message({"error": str(exc)})


class AuthenticatedSocket(Socket):
    @tornado.web.authenticated
    async def get(self, *args: str, **kwargs: str) -> None:
        await super().get(*args, **kwargs)


@asynccontextmanager
async def socket_app(store: SessionStore, clock: Clock, **extra: Any) -> AsyncIterator[Server]:
    async with serve(
        [("/login", Login), ("/read", Read), ("/ws", Socket), ("/ws-auth", AuthenticatedSocket)],
        session_store=store,
        session_settings=session_settings(token_ttl=5, touch_interval=60),
        session_clock=clock,
        login_url="/login",
        cookie_secret=SECRET,
        **extra,
    ) as server:
        yield server


async def login(server: Server, user: str = "ada") -> str:
    response = await server.fetch(f"/login?user={user}", method="POST")
    assert response.code == 200
    cookie = response.cookie_value()
    assert cookie
    return cookie


async def connect(
    server: Server, cookie: str | None, path: str = "/ws"
) -> tornado.websocket.WebSocketClientConnection:
    headers = {} if cookie is None else {"Cookie": f"session={cookie}"}
    request = tornado.httpclient.HTTPRequest(f"ws://127.0.0.1:{server.port}{path}", headers=headers)
    return await tornado.websocket.websocket_connect(request)


async def receive(connection: tornado.websocket.WebSocketClientConnection) -> dict[str, Any]:
    message = await connection.read_message()
    assert isinstance(message, str), message
    result: dict[str, Any] = json.loads(message)
    return result


async def test_session_and_current_user_in_open_and_messages(
    collection: Any, sync_db: Database[Any], command_log: CommandLog, clock: Clock
) -> None:
    async with socket_app(MongoSessionStore(collection), clock) as server:
        cookie = await login(server)
        clock.advance(120)  # token due for rotation, expiry due for a touch
        command_log.clear()
        connection = await connect(server, cookie)
        try:
            assert connection.headers.get_list("Set-Cookie") == []  # no cookie in the handshake
            assert await receive(connection) == {"user": "ada", "n": 0}
            assert command_log.names() == ["find"]  # loaded; nothing saved at the handshake
            before = raw_doc(sync_db, session_id_of(cookie))
            assert before is not None

            connection.write_message("save")
            assert await receive(connection) == {"saved": True}
            assert command_log.names() == ["find", "update"]  # the touch was due: pushed
            connection.write_message("save")
            assert await receive(connection) == {"saved": True}
            assert command_log.names() == ["find", "update"]  # nothing due: nothing sent
            command_log.clear()
            connection.write_message("incr")
            assert await receive(connection) == {"n": 1}
            connection.write_message("incr")
            assert await receive(connection) == {"n": 2}
            assert command_log.names() == ["update", "update"]
            after = raw_doc(sync_db, session_id_of(cookie))
            assert after is not None
            assert after["data"]["n"] == 2
            assert after["tokens"] == before["tokens"]  # never rotated over the socket
            assert after["expires_at"] > before["expires_at"]  # the save touched it

            connection.write_message("regenerate")
            assert "not over a WebSocket" in (await receive(connection))["error"]
        finally:
            connection.close()
        # The browser's cookie still opens the session, with what the socket saved.
        response = await server.fetch("/login?user=ada", method="POST", cookie=cookie)
        assert response.code == 200


async def test_still_valid_sees_a_revocation_in_one_find(
    collection: Any, command_log: CommandLog, clock: Clock
) -> None:
    store = MongoSessionStore(collection)
    async with socket_app(store, clock) as server:
        cookie = await login(server)
        connection = await connect(server, cookie)
        try:
            await receive(connection)
            command_log.clear()
            connection.write_message("check")
            assert await receive(connection) == {"valid": True}
            assert command_log.names() == ["find"]
            assert await store.revoke_user("ada") == 1
            connection.write_message("check")
            assert await receive(connection) == {"valid": False}
        finally:
            connection.close()


async def test_still_valid_outlives_rotations_by_the_browser(clock: Clock) -> None:
    """HTTP requests of the same browser rotate the token the socket was opened with."""
    store = MemorySessionStore()
    async with socket_app(store, clock) as server:
        cookie = await login(server)
        connection = await connect(server, cookie)
        try:
            await receive(connection)
            browser = cookie
            for _ in range(5):  # five rotations: the socket's token is long evicted
                clock.advance(6)
                response = await server.fetch("/read", cookie=browser)
                browser = response.cookie_value() or browser
            assert browser != cookie
            assert (await server.fetch("/read", cookie=cookie)).cookie_value() == ""  # evicted
            connection.write_message("check")
            assert await receive(connection) == {"valid": True}
            clock.advance(3 * 3600)  # past the idle timeout
            connection.write_message("check")
            assert await receive(connection) == {"valid": False}
        finally:
            connection.close()


async def test_anonymous_socket_and_authenticated_handshake(clock: Clock) -> None:
    async with socket_app(MemorySessionStore(), clock) as server:
        connection = await connect(server, None)
        try:
            assert await receive(connection) == {"user": None, "n": None}
            connection.write_message("bind")  # a new session bound to a user needs a cookie
            assert "not over a WebSocket" in (await receive(connection))["error"]
            connection.write_message("check")
            assert await receive(connection) == {"valid": False}
        finally:
            connection.close()
        with pytest.raises(tornado.httpclient.HTTPClientError) as refused:
            await connect(server, None, "/ws-auth")
        assert refused.value.code == 302  # to login_url
        connection = await connect(server, await login(server), "/ws-auth")
        try:
            assert (await receive(connection))["user"] == "ada"
        finally:
            connection.close()


async def test_cookie_and_tiered_stores_over_a_socket(collection: Any, clock: Clock) -> None:
    cookie_store = CookieSessionStore(SECRET)
    async with socket_app(cookie_store, clock) as server:
        cookie = await login(server)
        assert cookie.startswith("c1.")
        connection = await connect(server, cookie)
        try:
            assert await receive(connection) == {"user": "ada", "n": 0}  # signed into the cookie
            connection.write_message("check")  # no server to ask: the signed expiry
            assert await receive(connection) == {"valid": True}
            connection.write_message("incr")  # the data lives in the cookie: not over a socket
            assert "not over a WebSocket" in (await receive(connection))["error"]
            clock.advance(3 * 3600)
            connection.write_message("check")
            assert await receive(connection) == {"valid": False}
        finally:
            connection.close()

    tiered = TieredSessionStore(cookie=cookie_store, server=MongoSessionStore(collection))
    async with socket_app(tiered, clock) as server:
        cookie = await login(server)
        assert not cookie.startswith("c1.")  # a bound session is on the server
        connection = await connect(server, cookie)
        try:
            await receive(connection)
            connection.write_message("check")
            assert await receive(connection) == {"valid": True}
            assert await tiered.revoke_user("ada") == 1
            connection.write_message("check")
            assert await receive(connection) == {"valid": False}
        finally:
            connection.close()


async def test_save_session_is_a_saved_event(clock: Clock) -> None:
    seen: list[str] = []
    store = MemorySessionStore()
    async with socket_app(store, clock, session_events=lambda e: seen.append(e.name)) as server:
        cookie = await login(server)
        connection = await connect(server, cookie)
        try:
            await receive(connection)
            seen.clear()
            connection.write_message("incr")
            assert await receive(connection) == {"n": 1}
            assert seen == ["saved"]
        finally:
            connection.close()
