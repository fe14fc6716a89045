"""The request flow end to end: real HTTP through Tornado, a real server, raw cookies and docs."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import pytest
import tornado.web
from handlers import Counter, DeleteKey, Login, Logout, SetKey, Untouched
from helpers import Barrier, Clock, Server, assert_cleared, serve, session_settings
from mongo_helpers import close_async_client, doc_of, make_async_client

from tornado_mongo_session import IntervalRotator, MongoSessionStore, NeverRotator, SessionMixin
from tornado_mongo_session.tokens import hash_token


class Read(SessionMixin, tornado.web.RequestHandler):
    async def get(self) -> None:
        self.write(repr(self.session.get("n")))


class Dump(SessionMixin, tornado.web.RequestHandler):
    async def get(self) -> None:
        self.write(dict(self.session))


class Nested(SessionMixin, tornado.web.RequestHandler):
    async def get(self) -> None:
        self.session.setdefault("cart", []).append(self.get_argument("item"))
        self.write("ok")


class Redirect(SessionMixin, tornado.web.RequestHandler):
    async def get(self) -> None:
        self.session["redirected"] = True
        self.redirect("/dump")


class ExplicitFinish(SessionMixin, tornado.web.RequestHandler):
    async def get(self) -> None:
        self.session["finished"] = True
        await self.finish("done")


class ClientError(SessionMixin, tornado.web.RequestHandler):
    async def get(self) -> None:
        self.session["flash"] = "bad input"
        raise tornado.web.HTTPError(400)


class ServerError(SessionMixin, tornado.web.RequestHandler):
    async def get(self) -> None:
        self.session["half"] = "written"
        raise RuntimeError("handler bug")


class FlushEarly(SessionMixin, tornado.web.RequestHandler):
    async def get(self) -> None:
        self.session["n"] = self.session.get("n", 0) + 1
        self.write("early")
        await self.flush()
        self.write("late")


BAD_KEYS = ["$where", "a.b", "nul\x00", ""]


class BadKey(SessionMixin, tornado.web.RequestHandler):
    async def get(self) -> None:
        try:
            self.session[BAD_KEYS[int(self.get_argument("i"))]] = 1
        except ValueError as exc:
            self.set_status(422)
            self.write(str(exc))


class BadValue(SessionMixin, tornado.web.RequestHandler):
    async def get(self) -> None:
        self.session["ok"] = "kept?"
        try:
            self.session["obj"] = object()
        except TypeError as exc:
            self.set_status(422)
            self.write(str(exc))


class BadNestedValue(SessionMixin, tornado.web.RequestHandler):
    async def get(self) -> None:
        self.session["ok"] = "new"
        self.session.setdefault("box", []).append(object())
        self.write("should not be sent")


class Big(SessionMixin, tornado.web.RequestHandler):
    async def get(self) -> None:
        self.session["big"] = "x" * int(self.get_argument("size"))
        self.write("ok")


# This module's settings: the shared test defaults, touch_interval pinned.
settings = partial(session_settings, touch_interval=60.0)

ROUTES = [
    ("/count", Counter),
    ("/read", Read),
    ("/plain", Untouched),
    ("/set", SetKey),
    ("/del", DeleteKey),
    ("/dump", Dump),
    ("/nested", Nested),
    ("/redirect", Redirect),
    ("/finish", ExplicitFinish),
    ("/client-error", ClientError),
    ("/server-error", ServerError),
    ("/flush", FlushEarly),
    ("/login", Login),
    ("/logout", Logout),
    ("/badkey", BadKey),
    ("/badvalue", BadValue),
    ("/badnested", BadNestedValue),
    ("/big", Big),
]


@pytest.fixture
async def store(collection: Any) -> MongoSessionStore:
    store = MongoSessionStore(collection)
    await store.ensure_indexes()
    return store


@pytest.fixture
async def app(store: MongoSessionStore, clock: Clock) -> AsyncIterator[Server]:
    async with serve(
        ROUTES,
        session_store=store,
        session_settings=settings(),
        session_clock=clock,
        barrier=Barrier(2),
    ) as server:
        yield server


async def new_session(app: Server, path: str = "/count") -> str:
    response = await app.fetch(path)
    assert response.code == 200
    value = response.cookie_value()
    assert value is not None
    return value


# -- 1. cookie value, stored document, hashes ---------------------------------------------------


async def test_new_session_cookie_and_document(app: Server, sync_db: Any) -> None:
    response = await app.fetch("/count")
    assert response.text == "1"
    [line] = response.set_cookies
    assert line.startswith("session=")
    assert "HttpOnly" in line
    assert "Path=/" in line
    assert "SameSite=Lax" in line
    assert "Max-Age=7200" in line
    value = response.cookie_value()
    assert value is not None
    session_id, token = value.split(".")
    assert len(session_id) >= 22  # >= 128 bits of URL-safe base64
    assert len(token) == 43  # 256 bits
    doc = sync_db.sessions.find_one({"_id": session_id})
    assert doc is not None
    assert doc["data"] == {"n": 1}
    assert doc["tokens"] == [hash_token(token)]
    assert token not in str(doc)
    assert doc["expires_at"] > doc["created_at"]


async def test_session_survives_round_trip(app: Server) -> None:
    cookie = await new_session(app)
    response = await app.fetch("/count", cookie=cookie)
    assert response.text == "2"
    response = await app.fetch("/read", cookie=cookie)
    assert response.text == "2"


# -- 2. lazy load, zero commands, bad cookies ---------------------------------------------------


async def test_cookieless_untouched_request_costs_nothing(
    app: Server, command_log: Any, sync_db: Any
) -> None:
    command_log.clear()
    response = await app.fetch("/plain")
    assert response.code == 200
    assert response.set_cookies == []
    assert command_log.names() == []
    assert sync_db.sessions.count_documents({}) == 0


async def test_read_of_empty_new_session_saves_nothing(
    app: Server, command_log: Any, sync_db: Any
) -> None:
    command_log.clear()
    response = await app.fetch("/read")
    assert response.text == "None"
    assert response.set_cookies == []
    assert command_log.names() == []
    assert sync_db.sessions.count_documents({}) == 0


@pytest.mark.parametrize(
    "bad",
    [
        "garbage",
        "a.b",
        "x" * 24 + "." + "y" * 43,  # well formed, unknown id
        "",
        "ü" * 10,
    ],
)
async def test_bad_cookie_means_new_empty_session(app: Server, sync_db: Any, bad: str) -> None:
    response = await app.fetch("/read", cookie=bad)
    assert response.code == 200
    assert response.text == "None"
    response = await app.fetch("/count", cookie=bad)
    assert response.text == "1"
    value = response.cookie_value()
    assert value is not None
    assert value.split(".")[0] != bad.split(".")[0]
    assert sync_db.sessions.count_documents({"_id": "x" * 24}) == 0


async def test_wrong_token_never_adopts_the_id(app: Server, sync_db: Any) -> None:
    cookie = await new_session(app)
    session_id = cookie.split(".")[0]
    forged = session_id + "." + "A" * 43
    response = await app.fetch("/count", cookie=forged)
    assert response.text == "1"
    value = response.cookie_value()
    assert value is not None
    assert value.split(".")[0] != session_id
    assert doc_of(sync_db, cookie)["data"] == {"n": 1}  # type: ignore[index]


async def test_a_cookie_that_opens_nothing_is_left_alone(app: Server) -> None:
    """Unknown, it proves nothing stale: its session may just have been replaced by a login
    whose response (with the new cookie) reached the browser first."""
    response = await app.fetch("/read", cookie="x" * 24 + "." + "y" * 43)
    assert response.code == 200
    assert response.set_cookies == []


# -- 3. rotation --------------------------------------------------------------------------------


async def test_token_rotates_after_ttl_and_old_tokens_stay_valid(
    app: Server, clock: Clock, sync_db: Any
) -> None:
    first = await new_session(app)
    cookies = [first]
    for _ in range(3):
        clock.advance(5.1)
        response = await app.fetch("/read", cookie=cookies[-1])
        assert response.text == "1"
        new = response.cookie_value()
        assert new is not None
        assert new != cookies[-1]
        assert new.split(".")[0] == first.split(".")[0]
        cookies.append(new)
    doc = doc_of(sync_db, first)
    assert doc is not None
    expected = [hash_token(c.split(".")[1]) for c in reversed(cookies)][:3]
    assert doc["tokens"] == expected  # newest first, the oldest evicted
    # The three newest tokens still open the session; the first one is dead.
    for cookie in cookies[1:]:
        assert (await app.fetch("/read", cookie=cookie)).text == "1"
    assert (await app.fetch("/read", cookie=first)).text == "None"


async def test_no_rotation_before_ttl(app: Server, clock: Clock) -> None:
    cookie = await new_session(app)
    clock.advance(4.9)
    response = await app.fetch("/count", cookie=cookie)
    assert response.text == "2"
    assert response.set_cookies == []  # same token: nothing to send


async def test_concurrent_requests_on_aged_token_rotate_exactly_once(
    app: Server, clock: Clock, sync_db: Any
) -> None:
    cookie = await new_session(app)
    clock.advance(6)
    responses = await app.gather(*(app.fetch("/read", cookie=cookie) for _ in range(20)))
    assert [r.text for r in responses] == ["1"] * 20
    issued = {r.cookie_value() for r in responses} - {None}
    assert len(issued) == 1
    [new_cookie] = issued
    assert new_cookie is not None
    doc = doc_of(sync_db, cookie)
    assert doc is not None
    assert doc["tokens"] == [hash_token(new_cookie.split(".")[1]), hash_token(cookie.split(".")[1])]
    assert (await app.fetch("/read", cookie=cookie)).text == "1"
    assert (await app.fetch("/read", cookie=new_cookie)).text == "1"


async def test_never_rotator(store: MongoSessionStore, clock: Clock, sync_db: Any) -> None:
    async with serve(
        ROUTES,
        session_store=store,
        session_settings=settings(),
        session_clock=clock,
        session_rotator=NeverRotator(),
    ) as app:
        cookie = await new_session(app)
        clock.advance(3600)
        response = await app.fetch("/count", cookie=cookie)
        assert response.text == "2"
        assert response.cookie_value() == cookie
        assert len(doc_of(sync_db, cookie)["tokens"]) == 1  # type: ignore[index]


async def test_custom_interval_rotator(
    store: MongoSessionStore, clock: Clock, sync_db: Any
) -> None:
    async with serve(
        ROUTES,
        session_store=store,
        session_settings=settings(),
        session_clock=clock,
        session_rotator=IntervalRotator(every=30, keep=2),
    ) as app:
        cookie = await new_session(app)
        clock.advance(29)
        assert (await app.fetch("/read", cookie=cookie)).cookie_value() is None
        for _ in range(3):
            clock.advance(31)
            cookie = (await app.fetch("/read", cookie=cookie)).cookie_value() or ""
        assert len(doc_of(sync_db, cookie)["tokens"]) == 2  # type: ignore[index]


# -- 4. deltas ----------------------------------------------------------------------------------


async def test_overlapping_writes_to_different_keys_both_survive(app: Server, sync_db: Any) -> None:
    cookie = await new_session(app)
    a, b = await app.gather(
        app.fetch("/set?k=a&v=1&wait=1", cookie=cookie),
        app.fetch("/set?k=b&v=2&wait=1", cookie=cookie),
    )
    assert (a.code, b.code) == (200, 200)
    assert doc_of(sync_db, cookie)["data"] == {"n": 1, "a": "1", "b": "2"}  # type: ignore[index]


async def test_write_sends_only_changed_keys(app: Server, command_log: Any, sync_db: Any) -> None:
    cookie = await new_session(app)
    await app.fetch("/set?k=other&v=x", cookie=cookie)
    command_log.clear()
    await app.fetch("/set?k=a&v=1", cookie=cookie)
    updates = command_log.commands("update")
    assert len(updates) == 1
    spec = updates[0]["updates"][0]["u"]
    assert set(spec["$set"]) == {"data.a", "expires_at", "accessed_at"}


async def test_delete_key_unsets_it(app: Server, sync_db: Any) -> None:
    cookie = await new_session(app)
    await app.fetch("/set?k=a&v=1", cookie=cookie)
    await app.fetch("/del?k=a", cookie=cookie)
    assert doc_of(sync_db, cookie)["data"] == {"n": 1}  # type: ignore[index]


async def test_nested_mutation_is_saved(app: Server, sync_db: Any) -> None:
    cookie = await new_session(app)
    await app.fetch("/nested?item=apple", cookie=cookie)
    await app.fetch("/nested?item=pear", cookie=cookie)
    assert doc_of(sync_db, cookie)["data"]["cart"] == ["apple", "pear"]  # type: ignore[index]


# -- 5. write modes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "code", "key"),
    [
        ("/count", 200, "n"),
        ("/redirect", 302, "redirected"),
        ("/finish", 200, "finished"),
        ("/client-error", 400, "flash"),
    ],
)
async def test_saved_before_response(
    app: Server, sync_db: Any, path: str, code: int, key: str
) -> None:
    cookie = await new_session(app)
    response = await app.fetch(path, cookie=cookie)
    assert response.code == code
    # The moment the response arrives, the data is in the database.
    assert key in doc_of(sync_db, cookie)["data"]  # type: ignore[index]


async def test_new_session_saved_before_redirect(app: Server, sync_db: Any) -> None:
    response = await app.fetch("/redirect")
    assert response.code == 302
    cookie = response.cookie_value()
    assert cookie is not None
    assert doc_of(sync_db, cookie)["data"] == {"redirected": True}  # type: ignore[index]


async def test_server_error_saves_nothing(app: Server, sync_db: Any) -> None:
    cookie = await new_session(app)
    response = await app.fetch("/server-error", cookie=cookie)
    assert response.code == 500
    assert "half" not in doc_of(sync_db, cookie)["data"]  # type: ignore[index]


async def test_flushed_headers_save_data_without_rotating(
    app: Server, clock: Clock, sync_db: Any
) -> None:
    cookie = await new_session(app)
    clock.advance(10)
    response = await app.fetch("/flush", cookie=cookie)
    assert response.text == "earlylate"
    assert response.set_cookies == []
    doc = doc_of(sync_db, cookie)
    assert doc is not None
    assert doc["data"] == {"n": 2}
    assert len(doc["tokens"]) == 1


async def test_after_response_mode(store: MongoSessionStore, clock: Clock, sync_db: Any) -> None:
    async with serve(
        ROUTES,
        session_store=store,
        session_clock=clock,
        session_settings=settings(write_mode="after_response"),
    ) as app:
        # A new session's insert changes the cookie: it still happens before the response.
        response = await app.fetch("/count")
        cookie = response.cookie_value()
        assert cookie is not None
        assert doc_of(sync_db, cookie)["data"] == {"n": 1}  # type: ignore[index]
        # A data-only write is deferred to on_finish; it lands shortly after.
        await app.fetch("/set?k=a&v=1", cookie=cookie)
        for _ in range(100):
            if "a" in doc_of(sync_db, cookie)["data"]:  # type: ignore[index]
                break
            await asyncio.sleep(0.02)
        assert doc_of(sync_db, cookie)["data"] == {"n": 1, "a": "1"}  # type: ignore[index]
        # A due rotation is done before the response, so the cookie carries the new token.
        clock.advance(6)
        response = await app.fetch("/read", cookie=cookie)
        new = response.cookie_value()
        assert new is not None
        assert new != cookie
        assert (await app.fetch("/read", cookie=new)).text == "1"


# -- 6. expiry ----------------------------------------------------------------------------------


async def test_idle_timeout(app: Server, clock: Clock, sync_db: Any) -> None:
    cookie = await new_session(app)
    clock.advance(7199)
    assert (await app.fetch("/read", cookie=cookie)).text == "1"
    clock.advance(7201)
    assert (await app.fetch("/read", cookie=cookie)).text == "None"


async def test_use_pushes_idle_deadline(app: Server, clock: Clock) -> None:
    cookie = await new_session(app)
    for _ in range(4):
        clock.advance(3600)
        response = await app.fetch("/count", cookie=cookie)
        cookie = response.cookie_value() or cookie
    assert (await app.fetch("/read", cookie=cookie)).text == "5"


async def test_absolute_timeout(store: MongoSessionStore, clock: Clock) -> None:
    async with serve(
        ROUTES,
        session_store=store,
        session_clock=clock,
        session_settings=settings(idle_timeout=600, absolute_timeout=1000),
    ) as app:
        cookie = await new_session(app)
        for _ in range(3):
            clock.advance(300)
            response = await app.fetch("/count", cookie=cookie)
            cookie = response.cookie_value() or cookie
            assert response.code == 200
        clock.advance(101)
        assert (await app.fetch("/read", cookie=cookie)).text == "None"


async def test_dead_session_document_is_never_loaded(
    app: Server, clock: Clock, sync_db: Any, store: MongoSessionStore
) -> None:
    cookie = await new_session(app)
    clock.advance(8000)
    assert doc_of(sync_db, cookie) is not None
    assert (await app.fetch("/read", cookie=cookie)).text == "None"
    assert await store.purge_expired(now=clock.now) == 1
    assert doc_of(sync_db, cookie) is None


@pytest.mark.parametrize("rotator", ["interval", "never"])
async def test_touch_interval_pushes_expiry_of_unchanged_session(
    store: MongoSessionStore, clock: Clock, sync_db: Any, command_log: Any, rotator: str
) -> None:
    async with serve(
        ROUTES,
        session_store=store,
        session_clock=clock,
        session_settings=settings(token_ttl=3600),
        session_rotator=IntervalRotator(every=3600) if rotator == "interval" else NeverRotator(),
    ) as app:
        cookie = await new_session(app)
        before = doc_of(sync_db, cookie)["expires_at"]  # type: ignore[index]
        clock.advance(30)
        command_log.clear()
        assert (await app.fetch("/read", cookie=cookie)).set_cookies == []
        assert command_log.names() == ["find"]
        clock.advance(31)
        command_log.clear()
        response = await app.fetch("/read", cookie=cookie)
        assert command_log.names() == ["find", "update"]
        assert doc_of(sync_db, cookie)["expires_at"] > before  # type: ignore[index]
        if rotator == "never":
            # No newer token can exist: the same cookie is resent to renew its Max-Age.
            assert response.cookie_value() == cookie
            assert "Max-Age=7200" in response.set_cookies[0]
        else:
            # A newer token may exist (a concurrent rotation): never resend an older one. The
            # Max-Age is renewed at each rotation instead.
            assert response.set_cookies == []


async def test_losers_of_a_rotation_race_send_no_cookie(
    app: Server, clock: Clock, sync_db: Any
) -> None:
    cookie = await new_session(app)
    clock.advance(6)
    responses = await app.gather(
        *(app.fetch(f"/set?k=k{i}&v={i}", cookie=cookie) for i in range(20))
    )
    assert [r.code for r in responses] == [200] * 20
    # Exactly one response carries a cookie, the rotated one: a browser that keeps the last
    # Set-Cookie it saw can never be taken back to the older token.
    issued = [r.cookie_value() for r in responses if r.set_cookies]
    assert len(issued) == 1
    assert issued[0] != cookie
    doc = doc_of(sync_db, cookie)
    assert doc is not None
    assert doc["data"] == {"n": 1, **{f"k{i}": str(i) for i in range(20)}}
    assert len(doc["tokens"]) == 2


async def test_browser_session_cookie(store: MongoSessionStore) -> None:
    async with serve(
        ROUTES, session_store=store, session_settings=settings(persistent_cookie=False)
    ) as app:
        response = await app.fetch("/count")
        [line] = response.set_cookies
        assert "Max-Age" not in line
        assert "expires" not in line.lower()


# -- 7. regenerate and invalidate ---------------------------------------------------------------


async def test_regenerate_kills_old_id_keeps_data(app: Server, sync_db: Any) -> None:
    cookie = await new_session(app)
    await app.fetch("/set?k=cart&v=full", cookie=cookie)
    response = await app.fetch("/login", cookie=cookie)
    new = response.cookie_value()
    assert new is not None
    assert new.split(".")[0] == response.text
    assert new.split(".")[0] != cookie.split(".")[0]
    assert doc_of(sync_db, cookie) is None
    assert doc_of(sync_db, new)["data"] == {"n": 1, "cart": "full", "user": "ada"}  # type: ignore[index]
    assert (await app.fetch("/read", cookie=cookie)).text == "None"
    assert (await app.fetch("/read", cookie=new)).text == "1"


async def test_invalidate_deletes_and_expires_cookie(app: Server, sync_db: Any) -> None:
    cookie = await new_session(app)
    response = await app.fetch("/logout", cookie=cookie)
    assert_cleared(response)
    assert doc_of(sync_db, cookie) is None
    assert (await app.fetch("/read", cookie=cookie)).text == "None"


# -- 8. bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize("index", range(len(BAD_KEYS)))
async def test_bad_key_is_refused_with_its_name(app: Server, index: int) -> None:
    response = await app.fetch(f"/badkey?i={index}")
    assert response.code == 422
    assert repr(BAD_KEYS[index]) in response.text
    assert response.set_cookies == []


async def test_bad_value_is_refused_and_nothing_partial(app: Server, sync_db: Any) -> None:
    response = await app.fetch("/badvalue")
    assert response.code == 422
    assert "'obj'" in response.text
    # The valid key was kept and saved; the bad one never entered the session.
    cookie = response.cookie_value()
    assert cookie is not None
    assert doc_of(sync_db, cookie)["data"] == {"ok": "kept?"}  # type: ignore[index]


async def test_bad_nested_value_fails_the_save_and_writes_nothing(
    app: Server, sync_db: Any, caplog: pytest.LogCaptureFixture
) -> None:
    cookie = await new_session(app)
    with caplog.at_level(logging.ERROR, logger="tornado_mongo_session"):
        response = await app.fetch("/badnested", cookie=cookie)
    assert response.code == 500
    assert "Traceback" not in response.text
    assert "should not be sent" not in response.text
    assert "'box'" in caplog.text
    assert doc_of(sync_db, cookie)["data"] == {"n": 1}  # type: ignore[index]


async def test_too_large_session_writes_nothing(app: Server, sync_db: Any) -> None:
    cookie = await new_session(app)
    response = await app.fetch("/big?size=300000", cookie=cookie)
    assert response.code == 500
    assert "Traceback" not in response.text
    assert doc_of(sync_db, cookie)["data"] == {"n": 1}  # type: ignore[index]
    response = await app.fetch("/big?size=1000", cookie=cookie)
    assert response.code == 200


# -- round trips --------------------------------------------------------------------------------


async def test_round_trips(app: Server, clock: Clock, command_log: Any) -> None:
    cookie = await new_session(app)
    command_log.clear()
    await app.fetch("/plain")
    assert command_log.names() == []
    await app.fetch("/read", cookie=cookie)
    assert command_log.names() == ["find"]  # read, no rotation or touch due
    command_log.clear()
    clock.advance(6)
    response = await app.fetch("/set?k=a&v=1", cookie=cookie)
    assert response.cookie_value() != cookie
    assert command_log.names() == ["find", "update"]  # write and rotate in one update
    command_log.clear()
    await app.fetch("/count")
    assert command_log.names() == ["insert"]  # new session with data


# -- 9. store down ------------------------------------------------------------------------------


async def test_store_down_gives_503_and_plain_requests_work(
    caplog: pytest.LogCaptureFixture, driver: str
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = make_async_client(driver, f"mongodb://127.0.0.1:{port}/", serverSelectionTimeoutMS=200)
    store = MongoSessionStore(client.db.sessions)
    try:
        async with serve(ROUTES, session_store=store, session_settings=settings()) as app:
            assert (await app.fetch("/plain")).code == 200
            assert (await app.fetch("/plain", cookie="a" * 24 + "." + "b" * 43)).code == 200
            with caplog.at_level(logging.ERROR, logger="tornado_mongo_session"):
                response = await app.fetch("/read", cookie="a" * 24 + "." + "b" * 43)
                assert response.code == 503
                assert "Traceback" not in response.text
                response = await app.fetch("/count")
                assert response.code == 503
                assert "Traceback" not in response.text
                assert response.set_cookies == []
            assert "503" in caplog.text
            assert "b" * 43 not in caplog.text
    finally:
        await close_async_client(client)


# -- configuration ------------------------------------------------------------------------------


async def test_missing_store_is_a_clear_error(caplog: pytest.LogCaptureFixture) -> None:
    async with serve(ROUTES, session_settings=settings()) as app:
        with caplog.at_level(logging.ERROR):
            response = await app.fetch("/count")
    assert response.code == 500
    assert "session_store" in caplog.text


async def test_handler_class_store_overrides_application(
    store: MongoSessionStore, sync_db: Any
) -> None:
    class Own(Counter):
        session_store = store

    async with serve([("/own", Own)], session_settings=settings()) as app:
        response = await app.fetch("/own")
    assert response.code == 200
    assert response.cookie_value() is not None


async def test_after_response_touch_renews_cookie_before_response(
    store: MongoSessionStore, clock: Clock, sync_db: Any
) -> None:
    async with serve(
        ROUTES,
        session_store=store,
        session_clock=clock,
        session_settings=settings(write_mode="after_response"),
        session_rotator=NeverRotator(),
    ) as app:
        cookie = await new_session(app)
        before = doc_of(sync_db, cookie)["expires_at"]  # type: ignore[index]
        clock.advance(120)  # touch due, rotation not
        response = await app.fetch("/read", cookie=cookie)
        # The deadline's push waits for on_finish; the cookie's Max-Age is renewed all the same.
        assert response.cookie_value() == cookie
        assert "Max-Age=7200" in response.set_cookies[0]
        for _ in range(100):
            if doc_of(sync_db, cookie)["expires_at"] > before:  # type: ignore[index]
                break
            await asyncio.sleep(0.02)
        assert doc_of(sync_db, cookie)["expires_at"] > before  # type: ignore[index]
