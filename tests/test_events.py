"""Session events (tornado_mongo_session.events): what the mixin reports per store call, through
real HTTP; that a broken listener breaks nothing; that without listeners nothing is timed."""

from __future__ import annotations

import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from handlers import STORE_ROUTES, Counter
from helpers import Browser, Clock, LogRecords, Server, serve, session_settings
from mongo_helpers import close_async_client, make_async_client

from tornado_mongo_session import (
    MemorySessionStore,
    MongoSessionStore,
    SessionConfigError,
    SessionStoreUnavailable,
    SessionTooLarge,
)
from tornado_mongo_session.config import SessionConfig
from tornado_mongo_session.events import EVENT_NAMES, EventHooks, SessionEvent
from tornado_mongo_session.tokens import encode_cookie, new_session_id, new_token

ROUTES = [*STORE_ROUTES, ("/count", Counter)]


class Events(list[SessionEvent]):
    """A listener that keeps every event."""

    def __call__(self, event: SessionEvent) -> None:
        self.append(event)

    def names(self) -> list[str]:
        names = [event.name for event in self]
        self.clear()
        return names


@asynccontextmanager
async def app(store: Any, clock: Clock, **settings: Any) -> AsyncIterator[Server]:
    async with serve(
        ROUTES,
        session_store=store,
        session_settings=session_settings(token_ttl=5, touch_interval=60),
        session_clock=clock,
        **settings,
    ) as server:
        yield server


async def test_each_store_call_is_one_event(clock: Clock) -> None:
    events = Events()
    async with app(MemorySessionStore(clock=clock), clock, session_events=[events]) as server:
        browser = Browser(server)
        await browser.fetch("/untouched")
        assert events.names() == []  # no cookie, no store call, no event
        await browser.set(a=1)
        assert events.names() == ["created"]
        await browser.get()
        assert events.names() == ["loaded"]  # nothing due: no save
        await browser.set(b=2)
        assert events.names() == ["loaded", "saved"]
        clock.advance(6)  # the token is due
        await browser.get()
        assert events.names() == ["loaded", "rotated"]
        await browser.post("/login")
        assert events.names() == ["loaded", "created", "revoked"]
        old = browser.cookie
        await browser.post("/logout")
        assert events.names() == ["loaded", "revoked"]
        await Browser(server, old).get()
        assert events.names() == ["expired"]  # the cookie of a session that ended
        await Browser(server, "not-a-cookie").get()
        assert events.names() == ["expired"]
    for event in events:
        assert event.name in EVENT_NAMES


async def test_events_carry_operation_latency_and_no_secret(clock: Clock) -> None:
    events = Events()
    async with app(MemorySessionStore(clock=clock), clock, session_events=events) as server:
        browser = Browser(server)
        await browser.set(a=1)
        clock.advance(6)
        await browser.set(a=2)
        cookies = [browser.cookie]
    assert [(e.name, e.operation, e.outcome) for e in events] == [
        ("created", "save", "ok"),
        ("loaded", "load", "ok"),
        ("rotated", "save", "ok"),
    ]
    for event in events:
        assert 0 <= event.latency < 10
        text = repr(event)
        for cookie in cookies:
            assert cookie is not None
            session_id, token = cookie.split(".")
            assert session_id not in text
            assert token not in text


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_an_unreachable_store_is_a_store_failed_event(
    driver: str, db_name: str, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"mongodb://127.0.0.1:{_dead_port()}/"
    client = make_async_client(driver, url, serverSelectionTimeoutMS=300)
    store = MongoSessionStore(client[db_name]["sessions"])
    events = Events()
    try:
        async with app(store, clock, session_events=[events]) as server:
            with caplog.at_level(logging.CRITICAL, logger="tornado_mongo_session"):
                cookie = encode_cookie(new_session_id(), new_token())
                response = await server.fetch("/count", cookie=cookie)
                assert response.code == 503
                response = await server.fetch("/count")
                assert response.code == 503
    finally:
        await close_async_client(client)
    assert [(e.name, e.operation, e.outcome) for e in events] == [
        ("store_failed", "load", "unavailable"),
        ("store_failed", "save", "unavailable"),
    ]
    assert all(event.latency >= 0.2 for event in events)  # the server selection wait


async def test_a_listener_that_raises_breaks_nothing(clock: Clock) -> None:
    def broken(event: SessionEvent) -> None:
        raise RuntimeError("metrics backend down")

    events = Events()
    records = LogRecords()
    logger = logging.getLogger("tornado_mongo_session.events")
    logger.addHandler(records)
    try:
        store = MemorySessionStore(clock=clock)
        async with app(store, clock, session_events=[broken, events]) as server:
            browser = Browser(server)
            await browser.set(a=1)
            assert (await browser.get())["data"] == {"a": 1}
    finally:
        logger.removeHandler(records)
    assert events.names() == ["created", "loaded"]  # the next listener still ran
    assert len(records.records) == 2
    assert all("listener" in r.getMessage() for r in records.records)


async def test_without_listeners_nothing_is_timed(
    clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_timing() -> float:
        raise AssertionError("a timing was taken without any listener")

    monkeypatch.setattr("tornado_mongo_session.events.perf_counter", no_timing)
    async with app(MemorySessionStore(clock=clock), clock) as server:
        assert SessionConfig(server.app.settings).events is None
        browser = Browser(server)
        await browser.set(a=1)
        clock.advance(6)
        await browser.set(a=2)
        await browser.post("/login")
        await browser.post("/logout")
        assert (await browser.get())["data"] == {}


def test_the_setting_is_checked() -> None:
    def listener(event: SessionEvent) -> None:
        pass

    assert SessionConfig({"session_events": None}).events is None
    assert SessionConfig({"session_events": []}).events is None
    hooks = SessionConfig({"session_events": listener}).events
    assert isinstance(hooks, EventHooks)
    assert hooks.listeners == (listener,)
    with pytest.raises(SessionConfigError, match=r"session_events.*got str"):
        SessionConfig({"session_events": [listener, "counter"]})


async def test_observe_names_each_kind_of_failure() -> None:
    events = Events()
    hooks = EventHooks([events])

    async def fails(exc: Exception) -> None:
        raise exc

    for exc in (SessionStoreUnavailable("down"), SessionTooLarge("big", size=2, limit=1)):
        with pytest.raises(type(exc)):
            await hooks.observe("save", fails(exc), lambda _: "saved")
    with pytest.raises(RuntimeError):
        await hooks.observe("delete", fails(RuntimeError("driver bug")), lambda _: "revoked")
    assert [(e.name, e.operation, e.outcome) for e in events] == [
        ("store_failed", "save", "unavailable"),
        ("store_failed", "save", "refused"),
        ("store_failed", "delete", "error"),
    ]
