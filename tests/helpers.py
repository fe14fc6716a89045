"""Shared test helpers: a real Tornado server on loopback, a settable clock, cookie parsing,
settings for plain-HTTP test apps, and the store behaviour suite's app with a browser for it.

Driver clients and raw documents are in ``mongo_helpers.py``, handlers in ``handlers.py``.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import http.cookies
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import tornado.httpclient
import tornado.httpserver
import tornado.netutil
import tornado.web
from bson import json_util
from handlers import JSON, STORE_ROUTES

from tornado_mongo_session import SessionSettings, SessionStore
from tornado_mongo_session.clock import utc_now
from tornado_mongo_session.tokens import parse_cookie

UTC = timezone.utc


class Clock:
    """A settable clock for the ``session_clock`` setting: tests move time, never sleep."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or utc_now()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Response:
    code: int
    body: bytes
    headers: tornado.httputil.HTTPHeaders

    @property
    def text(self) -> str:
        return self.body.decode()

    @property
    def set_cookies(self) -> list[str]:
        """The raw Set-Cookie header lines."""
        return self.headers.get_list("Set-Cookie")

    def cookie(self, name: str = "session") -> http.cookies.Morsel[str] | None:
        """The parsed Set-Cookie for ``name``, or None when the response sets none."""
        found = None
        for line in self.set_cookies:
            jar: http.cookies.SimpleCookie = http.cookies.SimpleCookie()
            jar.load(line)
            if name in jar:
                found = jar[name]
        return found

    def cookie_value(self, name: str = "session") -> str | None:
        morsel = self.cookie(name)
        return None if morsel is None else morsel.value


class Server:
    """A Tornado application listening on 127.0.0.1, with a client that keeps nothing."""

    def __init__(self, app: tornado.web.Application, port: int) -> None:
        self.app = app
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.client = tornado.httpclient.AsyncHTTPClient(force_instance=True)

    async def fetch(
        self,
        path: str,
        *,
        cookie: str | None = None,
        cookie_name: str = "session",
        method: str = "GET",
        body: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        all_headers = dict(headers or {})
        if cookie is not None:
            all_headers["Cookie"] = f"{cookie_name}={cookie}"
        if method == "POST" and body is None:
            body = ""
        response = await self.client.fetch(
            self.base + path,
            method=method,
            body=body,
            headers=all_headers,
            raise_error=False,
            follow_redirects=False,
            request_timeout=30,
        )
        return Response(response.code, response.body or b"", response.headers)

    async def gather(self, *requests: Any) -> list[Response]:
        return list(await asyncio.gather(*requests))


@asynccontextmanager
async def serve(handlers: Sequence[Any], **settings: Any) -> AsyncIterator[Server]:
    """Run ``handlers`` on a free loopback port for the duration of the block."""
    app = tornado.web.Application(list(handlers), **settings)
    sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
    server = tornado.httpserver.HTTPServer(app)
    server.add_sockets(sockets)
    port = sockets[0].getsockname()[1]
    running = Server(app, port)
    try:
        yield running
    finally:
        running.client.close()
        server.stop()
        await server.close_all_connections()


# -- settings, cookies, synchronisation -------------------------------------------------------


def session_settings(**overrides: Any) -> SessionSettings:
    """``SessionSettings`` for a test app on plain http://127.0.0.1: ``cookie_secure=False``,
    then ``overrides``. A module with defaults of its own binds them with ``functools.partial``.
    """
    return SessionSettings(**{"cookie_secure": False, **overrides})


def cookie_parts(cookie: str | None) -> tuple[str, str]:
    """``(session id, token)`` of a server-store cookie value; fails the test for anything else."""
    assert cookie is not None
    parsed = parse_cookie(cookie)
    assert parsed is not None, cookie
    return parsed


def session_id_of(cookie: str | None) -> str:
    """The session id of a server-store cookie value (see :func:`cookie_parts`)."""
    return cookie_parts(cookie)[0]


def b64decode_unpadded(text: str) -> bytes:
    """URL-safe base64 without its ``=`` padding (tokens, ids, cookie bodies) to bytes."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64encode_unpadded(data: bytes) -> str:
    """Bytes to URL-safe base64 without ``=`` padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def assert_cleared(response: Response) -> None:
    """The raw Set-Cookie expires the session cookie: an empty value and a past Expires."""
    morsel = response.cookie()
    assert morsel is not None, response.set_cookies
    assert morsel.value == ""
    assert email.utils.parsedate_to_datetime(morsel["expires"]) < datetime.now(UTC)
    assert morsel["path"] == "/"


class LogRecords(logging.Handler):
    """A logging handler that keeps every record it is handed (at ``level`` and up)."""

    def __init__(self, level: int = logging.DEBUG) -> None:
        super().__init__(level=level)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class Barrier:
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


# -- the store behaviour suite's app ----------------------------------------------------------

SUITE_SECRET = "behaviour-suite-secret-0123456789abcdef"
SUITE_DEFAULTS: dict[str, Any] = {
    "idle_timeout": 600,
    "absolute_timeout": 3600,
    "token_ttl": 5,
    "touch_interval": 60,
}
"""The suite's settings: idle 600 s, absolute 3600 s, rotate every 5 s, touch every 60 s."""

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
"""A session of every common value type, for round trips."""


def canonical(data: Any) -> Any:
    """Data as canonical extended JSON: tells int32/int64/double, bytes and datetimes apart."""
    return json_util.loads(json_util.dumps(data, json_options=JSON), object_hook=lambda d: d)


@asynccontextmanager
async def session_app(
    store: SessionStore | None,
    clock: Clock,
    handlers: list[tuple[Any, ...]] | None = None,
    **settings: Any,
) -> AsyncIterator[Server]:
    """:data:`handlers.STORE_ROUTES` (or ``handlers``) behind ``store``, with the suite's
    settings updated by ``settings``; ``cookie_secret`` and ``key_version`` go to the app."""
    app_settings = {
        key: settings.pop(key) for key in ("cookie_secret", "key_version") if key in settings
    }
    app_settings.setdefault("cookie_secret", SUITE_SECRET)
    async with serve(
        handlers or STORE_ROUTES,
        session_store=store,
        session_settings=SessionSettings(**{**SUITE_DEFAULTS, **settings}),
        session_clock=clock,
        barrier=Barrier(2),
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
