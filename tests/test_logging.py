"""No credential in any log line: every log record of a full run of varied requests (new
sessions, reads, rotations, logins, logouts, bad cookies, a store outage and its recovery) is
formatted, traceback included, and searched for every token and cookie value issued."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator

import mongo_server
import pytest
from handlers import STORE_ROUTES, Counter
from helpers import Browser, Clock, LogRecords, Response, Server, serve, session_settings
from mongo_helpers import close_async_client, make_async_client

from tornado_mongo_session import MongoSessionStore
from tornado_mongo_session.events import SessionEvent
from tornado_mongo_session.tokens import encode_cookie, new_session_id, new_token, parse_cookie


class Issued(Browser):
    """A browser that remembers every session cookie value it was ever sent."""

    seen: set[str]

    def __init__(self, server: Server, cookie: str | None = None) -> None:
        super().__init__(server, cookie)
        self.seen = set()

    async def fetch(self, path: str, *, method: str = "GET", body: str | None = None) -> Response:
        response = await super().fetch(path, method=method, body=body)
        if self.cookie:
            self.seen.add(self.cookie)
        return response


@pytest.fixture
def every_record() -> Iterator[LogRecords]:
    """Every record any logger emits during the test, at DEBUG and up."""
    records = LogRecords()
    root = logging.getLogger()
    ours = logging.getLogger("tornado_mongo_session")
    levels = root.level, ours.level
    root.addHandler(records)
    root.setLevel(logging.DEBUG)
    ours.setLevel(logging.DEBUG)
    try:
        yield records
    finally:
        root.removeHandler(records)
        root.setLevel(levels[0])
        ours.setLevel(levels[1])


def failing_listener(event: SessionEvent) -> None:
    if event.name == "rotated":
        raise RuntimeError("metrics backend down")


async def test_no_token_or_cookie_in_any_log_line(
    private_server: mongo_server.PrivateServer,
    db_name: str,
    clock: Clock,
    every_record: LogRecords,
) -> None:
    # One driver: what is logged comes from the library, the same over both.
    client = make_async_client("pymongo", private_server.url, serverSelectionTimeoutMS=500)
    store = MongoSessionStore(client[db_name]["sessions"])
    browsers: list[Issued] = []
    statuses: list[int] = []
    try:
        async with serve(
            [*STORE_ROUTES, ("/count", Counter)],
            session_store=store,
            session_settings=session_settings(token_ttl=5, tokens_kept=2),
            session_clock=clock,
            session_events=[failing_listener],
        ) as server:

            async def visit(browser: Issued, path: str, method: str = "GET") -> None:
                body = "" if method == "POST" else None
                statuses.append((await browser.fetch(path, method=method, body=body)).code)

            for _ in range(3):
                browser = Issued(server)
                browsers.append(browser)
                await visit(browser, "/count")
                await visit(browser, "/count")
            first = browsers[0].cookie
            for _ in range(3):  # rotations: the first cookie goes stale
                clock.advance(6)
                await visit(browsers[0], "/count")
            await visit(browsers[1], "/login", "POST")
            await visit(browsers[1], "/count")
            await visit(browsers[2], "/logout", "POST")

            session_id, token = parse_cookie(browsers[1].cookie or "") or ("", "")
            bad = [
                first or "",  # rotated out
                f"{session_id}.{new_token()}",  # a live id, a wrong token
                f"{session_id}.{token[:-1]}",  # a token cut short
                encode_cookie(new_session_id(), new_token()),  # unknown
                "garbage!",
                "x" * 3000,
            ]
            for value in bad:
                stranger = Issued(server, value)
                stranger.seen.add(value)
                browsers.append(stranger)
                await visit(stranger, "/get")

            private_server.stop()  # the outage
            for browser in browsers[:3]:
                await visit(browser, "/count")
            await visit(Issued(server), "/count")
            private_server.start()
            # The driver finds the server again within its heartbeat: until then a request may
            # still get 503 (logged like the others), and is not counted.
            for _ in range(40):
                if (await browsers[0].fetch("/count")).code == 200:
                    break
                await asyncio.sleep(0.25)
            for browser in browsers[:2]:
                await visit(browser, "/count")
    finally:
        await close_async_client(client)

    assert statuses.count(503) == 4
    assert statuses[-2:] == [200, 200]  # recovered
    cookies = set().union(*(b.seen for b in browsers)) - {""}
    parsed = [parse_cookie(c) for c in cookies]
    tokens = {p[1] for p in parsed if p is not None}
    session_ids = {p[0] for p in parsed if p is not None}
    assert len(tokens) >= 8

    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    lines = [(r.name, formatter.format(r)) for r in every_record.records]
    ours = [line for name, line in lines if name.startswith("tornado_mongo_session")]
    assert any("unreachable" in line for line in ours), ours  # the outage was logged
    assert any("listener" in line for line in ours), ours  # so was the failing listener
    for name, line in lines:
        for secret in cookies | tokens:
            assert secret not in line, f"{name} logged a credential: {line[:300]}"
        if name.startswith("tornado_mongo_session"):
            for session_id in session_ids:
                assert session_id not in line, f"{name} logged a session id: {line[:300]}"
