"""Issue 11, tokens, theft, login and logout: real HTTP to a real Tornado app and a real server,
both drivers, raw ``Set-Cookie`` headers and raw documents.

- a slow request (its body sent in pieces by a raw socket) overtaken by rotations from another
  tab is served as the user, without rotating and without touching the cookie;
- only a request presenting the newest token rotates;
- an active thief: the reuse of a token retired long before ends the session for every holder
  (``reuse_detection="revoke"``) or is only logged (``"log"``), with no token in the log;
- ``regenerate()`` keeps the absolute deadline and can keep only named keys;
- ``invalidate()`` then an exception still logs out; ``flush()`` then ``regenerate()`` is refused;
- a write racing a login that ended its session answers 409, never 200.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import timedelta
from functools import partial
from typing import Any

import pytest
import tornado.web
from handlers import Login, Logout, ReadJSON, WriteJSON
from helpers import Clock, LogRecords, Server, assert_cleared, cookie_parts, serve, session_settings
from mongo_helpers import doc_of, raw_doc

from tornado_mongo_session import MongoSessionStore, SessionMixin
from tornado_mongo_session.tokens import hash_token

TOKEN_TTL = 5.0
LEEWAY = 30.0  # the default reuse_leeway


class Upload(SessionMixin, tornado.web.RequestHandler):
    """``POST``: answers ``{id, loaded, user, bytes}`` for the body it received."""

    async def post(self) -> None:
        self.write(
            {
                "id": self.session.id,
                "loaded": not self.session.is_new,
                "user": self.session.get("user"),
                "bytes": len(self.request.body),
            }
        )


class LoginKeeping(SessionMixin, tornado.web.RequestHandler):
    """``POST``: ``regenerate(keep=("cart",))`` then sets ``user``."""

    async def post(self) -> None:
        self.session.regenerate(keep=("cart",))
        self.session["user"] = "ada"
        self.write(self.session.id)


class LogoutThenFail(SessionMixin, tornado.web.RequestHandler):
    async def post(self) -> None:
        self.session.invalidate()
        raise RuntimeError("the handler fails after the logout")


class FlushThenLogin(SessionMixin, tornado.web.RequestHandler):
    async def post(self) -> None:
        self.write("head ")
        await self.flush()
        try:
            self.session.regenerate()
        except RuntimeError as exc:
            self.write(str(exc))


class SlowWrite(SessionMixin, tornado.web.RequestHandler):
    """``POST ?v=``: loads the session, waits for the app's ``release`` event, sets ``late``."""

    async def post(self) -> None:
        _ = self.session["user"]
        self.settings["loaded"].set()
        await asyncio.wait_for(self.settings["release"].wait(), 10)
        self.session["late"] = self.get_argument("v")
        self.write("saved")


ROUTES = [
    ("/write", WriteJSON),
    ("/read", ReadJSON),
    ("/upload", Upload),
    ("/login", Login, {"user": "ada"}),
    ("/login-keeping", LoginKeeping),
    ("/logout", Logout),
    ("/logout-fail", LogoutThenFail),
    ("/flush-login", FlushThenLogin),
    ("/slow-write", SlowWrite),
]

settings = partial(session_settings, token_ttl=TOKEN_TTL, tokens_kept=3)


@pytest.fixture
def store(collection: Any) -> MongoSessionStore:
    return MongoSessionStore(collection)


@asynccontextmanager
async def theft_app(
    store: MongoSessionStore,
    clock: Clock | None,
    events: list[Any] | None = None,
    **overrides: Any,
) -> AsyncIterator[Server]:
    extra: dict[str, Any] = {} if clock is None else {"session_clock": clock}
    if events is not None:
        extra["session_events"] = events.append
    async with serve(
        ROUTES,
        session_store=store,
        session_settings=settings(**overrides),
        loaded=asyncio.Event(),
        release=asyncio.Event(),
        **extra,
    ) as server:
        yield server


@pytest.fixture
async def app(store: MongoSessionStore, clock: Clock) -> AsyncIterator[Server]:
    async with theft_app(store, clock) as server:
        yield server


@pytest.fixture
def security_events() -> Iterator[LogRecords]:
    records = LogRecords()
    logger = logging.getLogger("tornado_mongo_session.security")
    logger.addHandler(records)
    try:
        yield records
    finally:
        logger.removeHandler(records)


def loaded(response: Any) -> bool:
    return bool(response.code == 200 and json.loads(response.body)["loaded"])


async def login(app: Server) -> str:
    response = await app.fetch("/login", method="POST")
    assert response.code == 200
    cookie = response.cookie_value()
    assert cookie
    return cookie


# -- 1. a slow request --------------------------------------------------------------------------


async def slow_post(
    port: int, path: str, cookie: str, body: bytes, pieces: int, pause: float
) -> bytes:
    """POST ``body`` over a raw socket in ``pieces``, pausing ``pause`` s between them; return
    the raw response (headers and body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nCookie: session={cookie}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        writer.write(head.encode())
        step = -(-len(body) // pieces)
        for start in range(0, len(body), step):
            await writer.drain()
            await asyncio.sleep(pause)
            writer.write(body[start : start + step])
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 20)
    finally:
        writer.close()


def raw_set_cookies(raw: bytes) -> list[str]:
    head = raw.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    return [
        line.split(":", 1)[1].strip()
        for line in head.split("\r\n")
        if line.lower().startswith("set-cookie:")
    ]


async def test_a_slow_upload_overtaken_by_rotations_is_served_without_rotating(
    store: MongoSessionStore, sync_db: Any
) -> None:
    """The upload's token is evicted by three rotations of another tab while its body arrives
    (real clock, token_ttl 0.2 s): it is served as the user, rotates nothing, sets no cookie."""
    ttl = 0.2
    async with theft_app(store, None, token_ttl=ttl) as app:
        upload_cookie = await login(app)
        session_id, upload_token = cookie_parts(upload_cookie)
        upload = asyncio.ensure_future(
            slow_post(app.port, "/upload", upload_cookie, b"x" * 4000, pieces=4, pause=0.4)
        )
        tab = upload_cookie
        for _ in range(4):  # the other tab polls, rotating every time
            await asyncio.sleep(ttl + 0.05)
            response = await app.fetch("/read", cookie=tab)
            assert loaded(response)
            tab = response.cookie_value() or tab
        doc = raw_doc(sync_db, session_id)
        assert doc is not None
        assert hash_token(upload_token) not in doc["tokens"]  # evicted before the body ended
        assert hash_token(upload_token) in [entry["h"] for entry in doc["retired"]]
        raw = await upload
        after = raw_doc(sync_db, session_id)
        # The other tab's cookie still opens the session.
        assert loaded(await app.fetch("/read", cookie=tab))
    assert raw.startswith(b"HTTP/1.1 200"), raw[:200]
    body = json.loads(raw.split(b"\r\n\r\n", 1)[1])
    assert body == {"id": session_id, "loaded": True, "user": "ada", "bytes": 4000}
    assert raw_set_cookies(raw) == []  # neither rotated nor cleared
    assert after is not None
    assert after["tokens"] == doc["tokens"]  # the upload rotated nothing


# -- 2. newest-only rotation and the thief -------------------------------------------------------


async def test_only_a_request_with_the_newest_token_rotates(
    app: Server, clock: Clock, sync_db: Any
) -> None:
    first = await login(app)
    clock.advance(TOKEN_TTL)
    second = (await app.fetch("/read", cookie=first)).cookie_value()
    assert second
    assert second != first
    clock.advance(TOKEN_TTL)
    older = await app.fetch("/read", cookie=first)  # kept, due, but not the newest
    assert loaded(older)
    assert older.set_cookies == []
    assert len(doc_of(sync_db, first)["tokens"]) == 2  # type: ignore[index]
    newest = await app.fetch("/read", cookie=second)
    assert loaded(newest)
    assert newest.cookie_value() not in (None, second)


async def thief_scenario(app: Server, clock: Clock) -> tuple[str, str, str]:
    """The thief copies the victim's cookie and replays it every 5 s, rotating its copy (it
    holds the newest token); three rotations evict the victim's token. Returns (session id,
    the victim's cookie, the thief's newest cookie)."""
    victim = await login(app)
    thief = victim
    for _ in range(3):
        clock.advance(TOKEN_TTL)
        response = await app.fetch("/read", cookie=thief)
        assert loaded(response)
        thief = response.cookie_value() or thief
    assert thief != victim
    return cookie_parts(victim)[0], victim, thief


@pytest.mark.parametrize("mode", ["revoke", "log"])
async def test_an_active_thief_is_caught_by_token_reuse(
    store: MongoSessionStore, clock: Clock, sync_db: Any, security_events: LogRecords, mode: str
) -> None:
    events: list[Any] = []
    async with theft_app(store, clock, events, reuse_detection=mode) as app:
        session_id, victim, thief = await thief_scenario(app, clock)
        # Moments after its eviction the victim's token is refused, its cookie left alone.
        clock.advance(1)
        late = await app.fetch("/read", cookie=victim)
        assert not loaded(late)
        assert late.set_cookies == []
        assert raw_doc(sync_db, session_id) is not None
        assert security_events.records == []
        # Well after (past reuse_leeway): reuse, which only a copied cookie explains.
        clock.advance(LEEWAY)
        reused = await app.fetch("/read", cookie=victim)
        assert not loaded(reused)
        assert_cleared(reused)
        [event] = security_events.records
        text = event.getMessage()
        assert event.levelno == logging.WARNING
        assert "token reuse" in text
        assert session_id[-4:] in text
        assert session_id not in text
        assert cookie_parts(victim)[1] not in text
        assert cookie_parts(thief)[1] not in text
        names = [event.name for event in events]
        assert names.count("theft_detected") == 1
        assert names.count("revoked") == (1 if mode == "revoke" else 0)
        thief_after = await app.fetch("/read", cookie=thief)
        if mode == "revoke":
            assert raw_doc(sync_db, session_id) is None  # ended for every holder
            assert not loaded(thief_after)
            assert "session revoked" in text
        else:
            assert raw_doc(sync_db, session_id) is not None
            assert loaded(thief_after)
            assert "logged only" in text


async def test_a_thief_replaying_a_token_the_victim_moved_past_ends_the_session(
    app: Server, clock: Clock, sync_db: Any, security_events: LogRecords
) -> None:
    """The victim keeps using the site; the thief's copy never earns a fresh token (it is not
    the newest) and, once retired long enough, its replay revokes the session."""
    victim = await login(app)
    stolen = victim
    session_id = cookie_parts(victim)[0]
    for _ in range(3):
        clock.advance(TOKEN_TTL)
        victim = (await app.fetch("/read", cookie=victim)).cookie_value() or victim
        probe = await app.fetch("/read", cookie=stolen)
        assert probe.set_cookies == []  # served while kept, never rotated
    clock.advance(LEEWAY + 1)
    assert_cleared(await app.fetch("/read", cookie=stolen))
    assert raw_doc(sync_db, session_id) is None
    assert not loaded(await app.fetch("/read", cookie=victim))
    assert len(security_events.records) == 1


# -- 7. regenerate --------------------------------------------------------------------------------


async def test_regenerate_keeps_the_absolute_deadline(
    store: MongoSessionStore, clock: Clock, sync_db: Any
) -> None:
    async with theft_app(store, clock, absolute_timeout=100, touch_interval=0) as app:
        start = clock.now
        first = (await app.fetch("/write?k=cart&v=3")).cookie_value()
        clock.advance(60)
        cookie = (await app.fetch("/login", method="POST", cookie=first)).cookie_value()
        doc = raw_doc(sync_db, cookie_parts(cookie)[0], tz_aware=True)
        assert doc is not None
        assert abs(doc["created_at"] - start) < timedelta(milliseconds=1)
        assert doc["expires_at"] <= start + timedelta(seconds=100)
        clock.advance(39)
        assert loaded(await app.fetch("/read", cookie=cookie))
        clock.advance(2)  # 101 s after the first visit: past the absolute deadline
        assert not loaded(await app.fetch("/read", cookie=cookie))


async def test_regenerate_can_keep_only_named_keys(app: Server, sync_db: Any) -> None:
    planted = (await app.fetch("/write?k=csrf&v=attacker-known")).cookie_value()
    cart = (await app.fetch("/write?k=cart&v=3", cookie=planted)).cookie_value() or planted
    response = await app.fetch("/login-keeping", method="POST", cookie=cart)
    assert doc_of(sync_db, response.cookie_value())["data"] == {"cart": "3", "user": "ada"}  # type: ignore[index]
    assert doc_of(sync_db, planted) is None


# -- 8, 9. logout and login in failing requests ------------------------------------------------


async def test_invalidate_then_an_exception_still_logs_out(app: Server, sync_db: Any) -> None:
    cookie = await login(app)
    response = await app.fetch("/logout-fail", method="POST", cookie=cookie)
    assert response.code == 500
    assert_cleared(response)
    assert doc_of(sync_db, cookie) is None
    assert not loaded(await app.fetch("/read", cookie=cookie))


async def test_regenerate_after_flush_is_refused_and_nothing_is_deleted(
    app: Server, sync_db: Any
) -> None:
    cookie = await login(app)
    response = await app.fetch("/flush-login", method="POST", cookie=cookie)
    assert response.code == 200
    assert "regenerate() once the response headers are sent" in response.text
    assert response.set_cookies == []
    assert doc_of(sync_db, cookie)["data"] == {"user": "ada"}  # type: ignore[index]
    assert loaded(await app.fetch("/read", cookie=cookie))


# -- 10. a write racing a login --------------------------------------------------------------------


async def test_a_write_whose_session_a_login_ended_answers_409(
    app: Server, sync_db: Any, caplog: pytest.LogCaptureFixture
) -> None:
    cookie = await login(app)
    write = asyncio.ensure_future(app.fetch("/slow-write?v=1", method="POST", cookie=cookie))
    await asyncio.wait_for(app.app.settings["loaded"].wait(), 10)
    relogin = await app.fetch("/login", method="POST", cookie=cookie)  # deletes the old document
    app.app.settings["release"].set()
    response = await write
    assert response.code == 409
    assert "nothing was saved" in response.text
    assert response.set_cookies == []
    assert doc_of(sync_db, cookie) is None
    assert "late" not in doc_of(sync_db, relogin.cookie_value())["data"]  # type: ignore[index]
    assert any("answering 409" in r.getMessage() for r in caplog.records)


async def test_the_retired_list_is_bounded_and_set_in_the_rotation_update(
    app: Server, clock: Clock, sync_db: Any, command_log: Any
) -> None:
    cookie = await login(app)
    for _ in range(25):
        clock.advance(TOKEN_TTL)
        command_log.clear()
        cookie = (await app.fetch("/read", cookie=cookie)).cookie_value() or cookie
        assert command_log.names() == ["find", "update"]  # a rotation: still 2 round trips
    doc = doc_of(sync_db, cookie)
    assert doc is not None
    assert len(doc["tokens"]) == 3
    assert len(doc["retired"]) == 16
    assert not set(doc["tokens"]) & {entry["h"] for entry in doc["retired"]}
    times = [entry["at"] for entry in doc["retired"]]
    assert times == sorted(times, reverse=True)  # newest first


async def test_a_late_request_that_writes_is_refused_not_given_a_new_cookie(
    app: Server, clock: Clock, sync_db: Any
) -> None:
    """Its token was retired moments before it arrived: the browser holds a newer one, which
    a new session's cookie would replace (a logout). The write is refused with 409 instead."""
    _, victim, _ = await thief_scenario(app, clock)  # the first cookie, retired just now
    clock.advance(1)
    before = sync_db.sessions.count_documents({})
    response = await app.fetch("/write?k=cart&v=9", cookie=victim)
    assert response.code == 409
    assert "nothing was saved" in response.text
    assert response.set_cookies == []
    assert sync_db.sessions.count_documents({}) == before
