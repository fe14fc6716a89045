"""Shared test helpers: a real Tornado server on loopback, a settable clock, cookie parsing."""

from __future__ import annotations

import asyncio
import http.cookies
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import tornado.httpclient
import tornado.httpserver
import tornado.netutil
import tornado.web

from tornado_mongo_session.clock import utc_now


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
