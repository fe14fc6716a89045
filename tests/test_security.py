"""Attacks, as tests: real HTTP to a real Tornado app and a real server, both drivers.

What test_mixin.py and test_tokens.py already show (one token's format, one forged id, one
regenerate, the cookie attributes of the default settings) is not repeated; this goes further:
the statistics of many tokens issued over HTTP, every log record of a whole session life with a
store failure in it, every kept token killed by regenerate, the exact rotation at which a replayed
or stolen token dies in terms of the victim's clock, the attributes of every kind of Set-Cookie
(new, rotated, cleared) under every setting, the ``__Host-`` prefix, and the ways a client might
try to make the app adopt an id of its choosing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import traceback
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import bson
import pydantic
import pytest
import tornado.web
from handlers import Login, Logout, ReadJSON, WriteJSON
from helpers import (
    Clock,
    LogRecords,
    Response,
    Server,
    b64decode_unpadded,
    cookie_parts,
    serve,
    session_settings,
)
from mongo_helpers import close_async_client, make_async_client, raw_doc
from reliability_report import FAIL, PASS, record

from tornado_mongo_session import MongoSessionStore, SessionMixin, SessionSettings
from tornado_mongo_session.tokens import hash_token, parse_cookie

TOKEN_TTL = 5.0
COOKIE_RE = re.compile(
    r"^(?P<name>[^=;]+)=(?P<id>[A-Za-z0-9_-]{24})\.(?P<token>[A-Za-z0-9_-]{43});"
)


class TooBig(SessionMixin, tornado.web.RequestHandler):
    async def get(self) -> None:
        self.session["big"] = "x" * 300_000
        self.write("not sent")


class Outage(SessionMixin, tornado.web.RequestHandler):
    """Load the session, then stop the server before it is saved: a store failure mid-request."""

    async def get(self) -> None:
        self.session["during"] = "outage"
        self.settings["outage"]()
        self.write("not sent")


# This module's settings: the shared test defaults, token_ttl pinned.
settings = partial(session_settings, token_ttl=TOKEN_TTL)

ROUTES = [
    ("/write", WriteJSON),
    ("/read", ReadJSON),
    ("/login", Login, {"user": "victim"}),
    ("/logout", Logout),
    ("/toobig", TooBig),
    ("/outage", Outage),
]


@pytest.fixture
def store(collection: Any) -> MongoSessionStore:
    return MongoSessionStore(collection)


@asynccontextmanager
async def security_app(
    store: MongoSessionStore, clock: Clock, **overrides: Any
) -> AsyncIterator[Server]:
    """:data:`ROUTES` behind ``store`` and ``clock``, with :func:`settings` (``overrides``)."""
    async with serve(
        ROUTES, session_store=store, session_settings=settings(**overrides), session_clock=clock
    ) as server:
        yield server


@pytest.fixture
async def app(store: MongoSessionStore, clock: Clock) -> AsyncIterator[Server]:
    async with security_app(store, clock) as server:
        yield server


def body(response: Response) -> dict[str, Any]:
    assert response.code == 200, (response.code, response.text)
    loaded: dict[str, Any] = json.loads(response.body)
    return loaded


def attributes(line: str) -> tuple[str, str, dict[str, str]]:
    """A raw Set-Cookie line as (name, value, {lower-case attribute: value})."""
    first, *rest = [part.strip() for part in line.split(";")]
    name, _, value = first.partition("=")
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]  # Tornado quotes the empty value of a cleared cookie
    attrs: dict[str, str] = {}
    for part in rest:
        key, _, val = part.partition("=")
        attrs[key.strip().lower()] = val.strip()
    return name, value, attrs


# -- token entropy and format -------------------------------------------------------------------

SESSIONS_SAMPLED = 200
ROTATIONS_SAMPLED = 50


async def test_tokens_issued_over_http_are_unique_random_and_well_formed(
    app: Server, clock: Clock, sync_db: Any, driver: str
) -> None:
    lines: list[str] = []
    for batch in range(SESSIONS_SAMPLED // 20):
        responses = await app.gather(*(app.fetch(f"/write?k=n&v={batch}_{i}") for i in range(20)))
        lines += [r.set_cookies[0] for r in responses]
    cookie = COOKIE_RE.match(lines[0])
    assert cookie is not None
    current = f"{cookie['id']}.{cookie['token']}"
    for _ in range(ROTATIONS_SAMPLED):
        clock.advance(TOKEN_TTL)
        response = await app.fetch("/read", cookie=current)
        lines.append(response.set_cookies[0])
        current = response.cookie_value() or ""
    matches = [COOKIE_RE.match(line) for line in lines]
    assert all(matches), [line for line, m in zip(lines, matches, strict=True) if not m][:3]
    ids = {m["id"] for m in matches if m}
    tokens = [m["token"] for m in matches if m]
    # Unique, unquoted, and of the documented strength: 144-bit ids, 256-bit tokens.
    assert len(ids) == SESSIONS_SAMPLED
    assert len(set(tokens)) == len(tokens) == SESSIONS_SAMPLED + ROTATIONS_SAMPLED
    assert not ids & set(tokens)
    assert {len(b64decode_unpadded(i)) for i in ids} == {18}
    assert {len(b64decode_unpadded(t)) for t in tokens} == {32}
    # No structure a counter or a clock would leave: no shared 48-bit prefix between tokens.
    assert len({t[:8] for t in tokens}) == len(tokens)
    # Bits balanced overall (0.5 +- 0.02 is > 9 sigma over 64,000 bits) and at every position
    # (6 sigma), which a biased or truncated generator fails.
    raw_bits = [int.from_bytes(b64decode_unpadded(t), "big") for t in tokens]
    n = len(raw_bits)
    ones = sum(bin(v).count("1") for v in raw_bits)
    share = ones / (256 * n)
    per_position = [sum(v >> bit & 1 for v in raw_bits) for bit in range(256)]
    spread = 6 * (n**0.5) / 2
    assert 0.48 < share < 0.52
    assert all(abs(count - n / 2) < spread for count in per_position)
    # The stored form is the SHA-256 of the token, never the token.
    doc = raw_doc(sync_db, cookie["id"])
    assert doc is not None
    assert doc["tokens"][0] == hash_token(current.split(".")[1])
    record(
        f"token entropy and format ({driver})",
        group="4",
        done=(
            f"{SESSIONS_SAMPLED} sessions and {ROTATIONS_SAMPLED} rotations through HTTP; "
            "every raw Set-Cookie checked"
        ),
        measured={
            "tokens": len(tokens),
            "distinct": len(set(tokens)),
            "id bits": 144,
            "token bits": 256,
            "share of 1 bits": round(share, 4),
            "worst bit position off 50% by": max(abs(c - n / 2) for c in per_position),
        },
        verdict=PASS,
    )


# -- raw tokens in documents and logs -----------------------------------------------------------


@pytest.fixture
def every_log_record() -> Iterator[LogRecords]:
    """Every log record of every logger, DEBUG and up, during the test."""
    capture = LogRecords(logging.DEBUG)
    root = logging.getLogger()
    previous = root.level
    root.setLevel(logging.DEBUG)
    root.addHandler(capture)
    # Loggers with a level of their own would drop DEBUG records before they reach the root.
    touched = []
    for name in ["pymongo", "motor", "tornado", "asyncio", "tornado_mongo_session"]:
        logger = logging.getLogger(name)
        touched.append((logger, logger.level))
        logger.setLevel(logging.DEBUG)
    try:
        yield capture
    finally:
        root.removeHandler(capture)
        root.setLevel(previous)
        for logger, level in touched:
            logger.setLevel(level)


def everything_in(record: logging.LogRecord) -> str:
    """All the text a handler could write for a record: message, args, traceback, extras."""
    parts = [str(record.msg), record.getMessage(), repr(record.args), repr(vars(record))]
    if record.exc_info and record.exc_info[1] is not None:
        parts.append("".join(traceback.format_exception(record.exc_info[1])))
    if record.stack_info:
        parts.append(record.stack_info)
    return "\n".join(parts)


async def test_raw_tokens_never_reach_a_document_or_a_log_record(
    private_server: Any, driver: str, every_log_record: LogRecords
) -> None:
    client = make_async_client(driver, private_server.url, serverSelectionTimeoutMS=300)
    clock = Clock()
    store = MongoSessionStore(client.security.sessions)
    seen: list[str] = []  # every cookie value sent or received

    def remember(response: Response) -> Response:
        for line in response.set_cookies:
            _, value, _ = attributes(line)
            if parse_cookie(value):  # not the empty value of a cleared cookie
                seen.append(value)
        return response

    try:
        async with serve(
            ROUTES,
            session_store=store,
            session_settings=settings(),
            session_clock=clock,
            outage=lambda: private_server.stop(kill=True),
        ) as app:
            created = remember(await app.fetch("/write?k=a&v=1"))
            first = created.cookie_value() or ""
            current = first
            for _ in range(2):  # two rotations
                clock.advance(TOKEN_TTL)
                current = (
                    remember(await app.fetch("/write?k=a&v=2", cookie=current)).cookie_value()
                    or current
                )
            forged = first.split(".")[0] + "." + "A" * 43
            seen.append(forged)
            remember(await app.fetch("/read", cookie=forged))
            login = remember(await app.fetch("/login", cookie=current))
            logged_in = login.cookie_value() or ""
            remember(await app.fetch("/read", cookie=first))  # a dead token after regenerate
            remember(await app.fetch("/logout", cookie=logged_in))
            fresh = remember(await app.fetch("/write?k=b&v=1")).cookie_value() or ""
            assert remember(await app.fetch("/toobig", cookie=fresh)).code == 500
            clock.advance(TOKEN_TTL)  # the failed save below would have rotated
            failed_save = remember(await app.fetch("/outage", cookie=fresh))
            failed_load = remember(await app.fetch("/read", cookie=fresh))
            await asyncio.to_thread(private_server.start)
            for _ in range(50):
                back = remember(await app.fetch("/read", cookie=fresh))
                if back.code == 200:
                    break
                await asyncio.sleep(0.1)
            documents = [bson.encode(doc) async for doc in client.security.sessions.find({})]
    finally:
        await close_async_client(client)

    assert (failed_save.code, failed_load.code, back.code) == (503, 503, 200)
    assert body(back)["data"] == {"b": "1"}
    secrets = sorted({*seen, *(value.split(".", 1)[1] for value in seen if "." in value)})
    tokens = [s for s in secrets if "." not in s]
    assert len(tokens) >= 6  # created, 2 rotations, login, fresh, rotated after the restart
    records = every_log_record.records
    texts = [everything_in(r) for r in records]
    leaks = [
        (r.name, s[:8])
        for r, text in zip(records, texts, strict=True)
        for s in secrets
        if s in text
    ]
    stored = [s for s in secrets for doc in documents if s.encode() in doc]
    # The capture saw what it must see to mean anything: driver commands naming the session
    # ids, Tornado's access log, the library's own errors for the failed save and load.
    names = {r.name for r in records}
    session_ids = {value.split(".")[0] for value in seen if "." in value}
    assert any(sid in text for sid in session_ids for text in texts)
    assert "tornado.access" in names
    assert {"pymongo.command", "pymongo.serverSelection"} & names
    messages = "\n".join(r.getMessage() for r in records if r.name.startswith("tornado_mongo"))
    assert "session save failed, answering 503" in messages
    assert "session load failed" in messages
    assert "max_session_bytes" in messages
    record(
        f"raw tokens in documents and logs ({driver})",
        group="4",
        done=(
            "every log record (root at DEBUG: PyMongo, Tornado, the library) and every raw "
            "document during creation, 2 rotations, a forged token, regenerate, a dead token, "
            "invalidate, a too-large write, a save and a load failing with the server killed, "
            "recovery"
        ),
        measured={
            "log records": len(records),
            "loggers": len(names),
            "documents": len(documents),
            "raw tokens and cookie values looked for": len(secrets),
            "found in a log record": len(leaks),
            "found in a document": len(stored),
        },
        verdict=PASS if not leaks and not stored else FAIL,
    )
    assert not leaks, leaks[:5]
    assert not stored


# -- regenerate ---------------------------------------------------------------------------------


async def test_regenerate_kills_every_kept_token_of_the_old_id_at_once(
    app: Server, clock: Clock, sync_db: Any
) -> None:
    cookies = [(await app.fetch("/write?k=cart&v=full")).cookie_value() or ""]
    for _ in range(2):
        clock.advance(TOKEN_TTL)
        cookies.append((await app.fetch("/read", cookie=cookies[-1])).cookie_value() or "")
    old_id = cookies[0].split(".")[0]
    # All three tokens open the session before the login...
    for cookie in cookies:
        assert body(await app.fetch("/read", cookie=cookie))["loaded"]
    login = await app.fetch("/login", cookie=cookies[-1])
    new_id, _ = cookie_parts(login.cookie_value())
    assert new_id != old_id
    # ...and none of them does after it, at the same instant: no grace period.
    for cookie in cookies:
        after = body(await app.fetch("/read", cookie=cookie))
        assert after == {"id": after["id"], "loaded": False, "data": {}}
        assert after["id"] not in (old_id, new_id)
    assert raw_doc(sync_db, old_id) is None
    # Writing through a dead cookie starts an unrelated session; the old id stays dead.
    written = await app.fetch("/write?k=x&v=1", cookie=cookies[-1])
    assert cookie_parts(written.cookie_value())[0] not in (old_id, new_id)
    assert raw_doc(sync_db, old_id) is None
    assert raw_doc(sync_db, new_id)["data"] == {"cart": "full", "user": "victim"}  # type: ignore[index]
    record(
        "regenerate() kills the old id at once",
        group="4",
        done="3 valid tokens of a session (2 rotations), then a login (regenerate) with the newest",
        measured={
            "old tokens opening the session after it, same instant": 0,
            "old document": "deleted",
        },
        verdict=PASS,
    )


async def test_session_fixation_is_defeated_by_regenerate(app: Server, sync_db: Any) -> None:
    """The attacker plants a cookie of their own session; the victim logs in with it."""
    planted = (await app.fetch("/write?k=bait&v=1")).cookie_value() or ""
    login = await app.fetch("/login?user=victim", cookie=planted)
    victim_id, _ = cookie_parts(login.cookie_value())
    attacker = body(await app.fetch("/read", cookie=planted))
    assert not attacker["loaded"]
    assert attacker["data"] == {}
    assert attacker["id"] != victim_id
    assert raw_doc(sync_db, planted.split(".")[0]) is None
    record(
        "session fixation",
        group="4",
        done="the attacker plants a cookie of their own session; the victim logs in with it",
        measured={"planted cookie sees the victim's data": False},
        verdict=PASS,
    )


# -- replayed and stolen tokens -----------------------------------------------------------------


@pytest.mark.parametrize("kept", [1, 2, 5])
async def test_token_older_than_tokens_kept_rotations_is_refused(
    store: MongoSessionStore, clock: Clock, sync_db: Any, kept: int
) -> None:
    async with security_app(store, clock, tokens_kept=kept) as app:
        cookies = [(await app.fetch("/write?k=a&v=1")).cookie_value() or ""]
        for _ in range(kept + 1):
            clock.advance(TOKEN_TTL)
            cookies.append((await app.fetch("/read", cookie=cookies[-1])).cookie_value() or "")
        session_id = cookies[0].split(".")[0]
        doc = raw_doc(sync_db, session_id)
        assert doc is not None
        assert len(doc["tokens"]) == kept
        accepted = []
        for cookie in cookies:
            response = await app.fetch("/read", cookie=cookie)
            accepted.append(body(response)["loaded"])
            if not accepted[-1]:
                # Retired moments ago (within reuse_leeway): refused, but the cookie is left
                # alone, since the browser may hold a newer one.
                assert response.set_cookies == []
        # Exactly the `kept` newest open the session, the older ones never change it.
        assert accepted == [False] * (len(cookies) - kept) + [True] * kept
        assert raw_doc(sync_db, session_id) == doc
    record(
        f"token older than tokens_kept={kept} rotations",
        group="4",
        done=f"{kept + 1} rotations, then every token the session ever had replayed",
        measured={
            "accepted": accepted.count(True),
            "refused (cookie expired)": accepted.count(False),
        },
        verdict=PASS,
    )


async def steal_scenario(
    app: Server, clock: Clock, *, step: float, away: float
) -> tuple[float, float, int]:
    """The victim's seconds from theft (or return) to the attacker's refusal.

    The attacker copies the cookie at creation. The victim may be away for ``away`` seconds,
    then sends a request every ``step`` seconds; the attacker probes after each of them.
    Returns (seconds since the theft, seconds since the victim's return, probes accepted).
    """
    victim = (await app.fetch("/write?k=secret&v=victim")).cookie_value() or ""
    stolen = victim
    victim_id = victim.split(".")[0]
    stolen_at = clock.now
    clock.advance(away)
    returned_at = clock.now
    for accepted in range(200):
        response = await app.fetch("/read", cookie=victim)
        assert body(response)["loaded"]
        victim = response.cookie_value() or victim
        probe = await app.fetch("/read", cookie=stolen)
        seen = body(probe)
        if seen["id"] != victim_id:
            assert seen == {"id": seen["id"], "loaded": False, "data": {}}
            return (
                (clock.now - stolen_at).total_seconds(),
                (clock.now - returned_at).total_seconds(),
                accepted,
            )
        # The attacker's probe never earned a fresh token: it was never the one to rotate.
        assert probe.cookie_value() in (None, stolen)
        clock.advance(step)
    raise AssertionError("the stolen token was never refused")


@pytest.mark.parametrize(("kept", "step"), [(1, 1.0), (3, 1.0), (3, 2.5), (3, 5.0), (2, 5.0)])
async def test_stolen_token_dies_within_token_ttl_times_tokens_kept(
    store: MongoSessionStore, clock: Clock, driver: str, kept: int, step: float
) -> None:
    async with security_app(store, clock, tokens_kept=kept) as app:
        since_theft, _, accepted = await steal_scenario(app, clock, step=step, away=0)
    bound = TOKEN_TTL * kept
    record(
        f"stolen token, victim active (tokens_kept={kept}, a request every {step:g} s, {driver})",
        group="4",
        done=(
            f"the attacker copies the cookie; the victim keeps using the site; "
            f"token_ttl={TOKEN_TTL:g} s"
        ),
        measured={
            "refused after s of the victim's clock": since_theft,
            "token_ttl * tokens_kept s": bound,
            "attacker probes accepted before": accepted,
        },
        verdict=PASS if since_theft <= bound else FAIL,
    )
    # step divides token_ttl: the kept-th rotation happens exactly token_ttl * kept after issue.
    assert since_theft == bound


@pytest.mark.parametrize("kept", [1, 3])
async def test_stolen_token_dies_within_the_bound_of_the_victims_return(
    store: MongoSessionStore, clock: Clock, driver: str, kept: int
) -> None:
    """The victim was away an hour: the first request back rotates, the rest follow."""
    async with security_app(store, clock, tokens_kept=kept) as app:
        _, since_return, _ = await steal_scenario(app, clock, step=1.0, away=3600)
    bound = TOKEN_TTL * kept
    record(
        f"stolen token, victim back after an hour (tokens_kept={kept}, {driver})",
        group="4",
        done="the attacker copies the cookie; the victim is away 3600 s, then active",
        measured={
            "refused after s of the victim's return": since_return,
            "token_ttl * tokens_kept s": bound,
        },
        verdict=PASS if since_return <= bound else FAIL,
    )
    assert since_return == TOKEN_TTL * (kept - 1)
    assert since_return <= bound


# -- cookie attributes --------------------------------------------------------------------------

ATTRIBUTE_CASES = {
    "defaults": {},
    "strict": {"cookie_samesite": "Strict"},
    "samesite none": {"cookie_samesite": "None"},
    "no samesite": {"cookie_samesite": None},
    "scoped": {"cookie_path": "/app", "cookie_domain": "example.test"},
    "script-readable, plain http": {"cookie_httponly": False, "cookie_secure": False},
    "browser session": {"persistent_cookie": False},
}


@pytest.mark.parametrize("case", list(ATTRIBUTE_CASES))
async def test_every_set_cookie_carries_the_configured_attributes(
    store: MongoSessionStore, clock: Clock, case: str
) -> None:
    """New, rotated and cleared cookies alike: a clearing cookie with another Path or Domain
    would leave the old one in the browser."""
    configured = SessionSettings(token_ttl=TOKEN_TTL, **ATTRIBUTE_CASES[case])
    async with serve(
        ROUTES, session_store=store, session_settings=configured, session_clock=clock
    ) as app:
        new = await app.fetch("/write?k=a&v=1")
        cookie = new.cookie_value() or ""
        clock.advance(TOKEN_TTL)
        rotated = await app.fetch("/read", cookie=cookie)
        logout = await app.fetch("/logout", cookie=rotated.cookie_value() or "")
        # A second session: its first token, replayed long after 3 rotations retired it.
        first = (await app.fetch("/write?k=a&v=1")).cookie_value() or ""
        latest = first
        for _ in range(3):
            clock.advance(TOKEN_TTL)
            latest = (await app.fetch("/read", cookie=latest)).cookie_value() or latest
        clock.advance(120)
        reused = await app.fetch("/read", cookie=first)
    kinds = {"new": new, "rotated": rotated, "reuse cleared": reused, "logout cleared": logout}
    for kind, response in kinds.items():
        [line] = response.set_cookies
        name, value, attrs = attributes(line)
        assert name == "session", kind
        assert ("secure" in attrs) == configured.cookie_secure, (kind, line)
        assert ("httponly" in attrs) == configured.cookie_httponly, (kind, line)
        assert attrs.get("samesite") == configured.cookie_samesite, (kind, line)
        assert attrs.get("path") == configured.cookie_path, (kind, line)
        assert attrs.get("domain") == configured.cookie_domain, (kind, line)
        if kind.endswith("cleared"):
            assert value == ""
            assert "expires" in attrs
        else:
            assert parse_cookie(value) is not None
            max_age = attrs.get("max-age")
            if configured.persistent_cookie:
                assert max_age == str(int(configured.idle_timeout)), line
            else:
                assert max_age is None
                assert "expires" not in attrs
    record(
        f"cookie attributes: {case}",
        group="4",
        done=", ".join(f"{k}={v!r}" for k, v in ATTRIBUTE_CASES[case].items()) or "defaults",
        measured={
            "Set-Cookie lines checked (new, rotated, 2 cleared)": len(kinds),
            "example": line,
        },
        verdict=PASS,
    )


HOST = "__Host-session"


async def test_host_prefix_cookie(store: MongoSessionStore, clock: Clock, sync_db: Any) -> None:
    configured = SessionSettings(cookie_name=HOST, token_ttl=TOKEN_TTL)
    async with serve(
        ROUTES, session_store=store, session_settings=configured, session_clock=clock
    ) as app:
        new = await app.fetch("/write?k=a&v=1")
        cookie = new.cookie_value(HOST) or ""
        clock.advance(TOKEN_TTL)
        rotated = await app.fetch("/read", cookie=cookie, cookie_name=HOST)
        read = body(rotated)
        # The same value under a name without the prefix (as a sibling subdomain could set
        # it) is not read.
        unprefixed = body(await app.fetch("/read", cookie=rotated.cookie_value(HOST) or ""))
        cleared = await app.fetch(
            "/logout", cookie=rotated.cookie_value(HOST) or "", cookie_name=HOST
        )
    assert read["loaded"]
    assert read["data"] == {"a": "1"}
    assert not unprefixed["loaded"]
    for response in (new, rotated, cleared):
        [line] = response.set_cookies
        name, _, attrs = attributes(line)
        assert name == HOST
        assert line.startswith(HOST + "=")
        assert "secure" in attrs
        assert attrs["path"] == "/"
        assert "domain" not in attrs
    record(
        "__Host- cookie prefix",
        group="4",
        done="cookie_name='__Host-session': new, rotated and cleared Set-Cookie lines",
        measured={"Secure": True, "Path": "/", "Domain": "absent", "unprefixed copy read": False},
        verdict=PASS,
    )


@pytest.mark.parametrize(
    "environment",
    [
        {"TORNADO_SESSION_COOKIE_DOMAIN": "example.test"},
        {"TORNADO_SESSION_COOKIE_PATH": "/app"},
        {"TORNADO_SESSION_COOKIE_SECURE": "false"},
    ],
)
def test_host_prefix_rules_hold_for_settings_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str]
) -> None:
    monkeypatch.setenv("TORNADO_SESSION_COOKIE_NAME", HOST)
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(pydantic.ValidationError, match="__Host-"):
        SessionSettings(_env_file=None)  # type: ignore[call-arg]


# -- a client-supplied id is never adopted ------------------------------------------------------


async def test_no_cookie_makes_the_app_adopt_its_id(
    app: Server, clock: Clock, sync_db: Any, driver: str
) -> None:
    victim = (await app.fetch("/write?k=secret&v=victim")).cookie_value() or ""
    victim_id, victim_token = victim.split(".")
    other = (await app.fetch("/write?k=mine&v=attacker")).cookie_value() or ""
    other_id, other_token = other.split(".")
    regenerated = (await app.fetch("/write?k=soon&v=gone")).cookie_value() or ""
    await app.fetch("/login", cookie=regenerated)
    victim_doc = raw_doc(sync_db, victim_id)
    unknown_id = "U" * 24
    live = {
        "unknown id, random token": f"{unknown_id}.{'t' * 43}",
        "victim id, random token": f"{victim_id}.{'A' * 43}",
        "victim id, another session's valid token": f"{victim_id}.{other_token}",
        "other id, victim's token": f"{other_id}.{victim_token}",
        "victim id, swapped case": f"{victim_id.swapcase()}.{victim_token}",
        "regenerated id, its last valid token": regenerated,
        "victim id only": victim_id,
        "victim id, padded token": f"{victim_id}.{victim_token}=",
    }
    outcomes = {name: await attempt(app, value) for name, value in live.items()}
    assert raw_doc(sync_db, victim_id) == victim_doc
    # The same victim cookie, genuine, once the session has expired.
    clock.advance(7200 + 1)
    outcomes["expired session, its valid token"] = await attempt(app, victim)
    supplied = {value.split(".")[0] for value in [*live.values(), victim]}
    adopted = sorted(name for name, issued in outcomes.items() if issued in supplied)
    # No document was ever created or written under a supplied id; the victim's is untouched.
    for session_id in supplied:
        doc = raw_doc(sync_db, session_id)
        assert doc is None or "planted" not in doc["data"]
    assert raw_doc(sync_db, unknown_id) is None
    assert raw_doc(sync_db, victim_id) == victim_doc
    record(
        f"client-supplied ids ({driver})",
        group="4",
        done=(
            "writes sent with forged, transplanted, case-swapped, padded, regenerated "
            "and expired cookies"
        ),
        measured={"attempts": len(outcomes), "adopted": len(adopted)},
        verdict=PASS if not adopted else FAIL,
    )
    assert not adopted


async def attempt(app: Server, value: str) -> str:
    """Write through a cookie the app did not issue (or no longer honours); the new id."""
    response = await app.fetch("/write?k=planted&v=1", cookie=value)
    seen = body(response)
    assert not seen["loaded"], value
    assert seen["data"] == {"planted": "1"}, value
    issued_id, _ = cookie_parts(response.cookie_value())
    assert issued_id == seen["id"]
    return issued_id
