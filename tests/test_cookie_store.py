"""CookieSessionStore: the signed format, key rotation, encryption, the 4 KB limit, no database."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from typing import Any

import bson
import pytest
import tornado.web
from handlers import STORE_ROUTES
from helpers import (
    Browser,
    Clock,
    assert_cleared,
    b64decode_unpadded,
    b64encode_unpadded,
    session_app,
)
from mongo_helpers import CommandLog

from tornado_mongo_session import (
    CookieSessionStore,
    MongoSessionStore,
    NewSession,
    SessionConfigError,
    SessionMixin,
    SessionTooLarge,
)
from tornado_mongo_session.clock import utc_now
from tornado_mongo_session.tokens import new_session_id, new_token, parse_cookie

UTC = timezone.utc
SECRET = "cookie-store-test-secret-0123456789abcdef"
PURPOSE = b"tornado_mongo_session/CookieSessionStore/c1/hmac-sha256"
VALUE_CHARS = re.compile(r"c1\.[0-9]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}")


def new_request(data: dict[str, Any], now: datetime | None = None) -> NewSession:
    now = now or utc_now()
    return NewSession(data=data, created_at=now, now=now, expires_at=now + timedelta(hours=2))


async def seal(store: CookieSessionStore, data: dict[str, Any], now: datetime) -> str:
    value = (await store.save(new_request(data, now))).cookie_value
    assert value is not None
    return value


def resign(value: str, secret: str | bytes, *, version: str | None = None) -> str:
    """Sign ``value``'s (possibly altered) body again, as someone who knows the secret would."""
    _, old_version, body, _ = value.split(".")
    key_source = secret.encode() if isinstance(secret, str) else secret
    key = hmac.new(key_source, PURPOSE, hashlib.sha256).digest()
    message = f"c1.{version or old_version}.{body}"
    signature = hmac.new(key, message.encode(), hashlib.sha256).digest()
    return f"{message}.{b64encode_unpadded(signature)}"


def body_bytes(value: str) -> bytes:
    return b64decode_unpadded(value.split(".")[2])


def with_body(value: str, body: bytes) -> str:
    prefix, version, _, signature = value.split(".")
    return f"{prefix}.{version}.{b64encode_unpadded(body)}.{signature}"


# -- the format and its signature -------------------------------------------------------------


async def test_value_format_and_signature_are_as_documented() -> None:
    store = CookieSessionStore(SECRET)
    now = utc_now()
    value = await seal(store, {"n": 1}, now)

    assert VALUE_CHARS.fullmatch(value), value
    assert parse_cookie(value) is None  # never mistaken for a server store's <id>.<token>
    assert store.owns(value)
    assert resign(value, SECRET) == value  # HMAC-SHA256 under the derived key, as documented
    record = await store.load(value, now=now)
    assert record is not None
    assert record.data == {"n": 1}
    assert record.in_cookie
    assert record.token is None


async def test_tornado_signed_values_and_ours_do_not_cross() -> None:
    """Same cookie_secret, two purposes: neither signature is valid for the other."""
    store = CookieSessionStore(SECRET)
    now = utc_now()
    tornado_value = tornado.web.create_signed_value(SECRET, "session", b"anything").decode()
    assert await store.load(tornado_value, now=now) is None
    ours = await seal(store, {"n": 1}, now)
    assert tornado.web.decode_signed_value(SECRET, "session", ours) is None


async def test_signed_expiry_is_enforced_and_cannot_be_extended() -> None:
    store = CookieSessionStore(SECRET, compress=False)
    now = utc_now()
    value = await seal(store, {"n": 1}, now)
    assert await store.load(value, now=now + timedelta(hours=2) - timedelta(milliseconds=1))
    assert await store.load(value, now=now + timedelta(hours=2)) is None

    # Pushing expires_at forward in the payload breaks the signature.
    body = body_bytes(value)
    assert body[0] == 0x00
    payload = bson.decode(body[1:])
    payload["e"] = now + timedelta(days=365)
    forged = with_body(value, b"\x00" + bson.encode(payload))
    assert await store.load(forged, now=now + timedelta(hours=3)) is None
    # ...unless it is signed again: what the check above relies on is the signature alone.
    assert await store.load(resign(forged, SECRET), now=now + timedelta(hours=3)) is not None


async def test_malformed_values_load_as_none_without_raising() -> None:
    store = CookieSessionStore(SECRET)
    now = utc_now()
    value = await seal(store, {"n": 1}, now)
    _, _, body, signature = value.split(".")
    for bad in [
        "",
        "c1.",
        "c1.0",
        "c1.0..",
        "c1.0.x.y",
        "c1.-1." + body + "." + signature,
        "c1.99999999999." + body + "." + signature,
        "c1.0." + body + "." + signature + ".extra",
        f"c1.0.{body}.{signature[:-1]}",
        f"c1.0.{body[:-2]}.{signature}",
        f"c1.0.{body}.{'é' * 43}",
        "c1.0.!!!!." + "A" * 43,
        resign("c1.0.." + signature, SECRET),  # signed, empty body
        resign(with_body(value, b"\x04" + body_bytes(value)[1:]), SECRET),  # unknown flag
        resign(with_body(value, b"\x01not zlib"), SECRET),  # signed, broken compression
        resign(with_body(value, b"\x00not bson"), SECRET),  # signed, broken BSON
        resign(with_body(value, b"\x00" + bson.encode({"i": "x"})), SECRET),  # fields missing
        resign(with_body(value, b"\x02" + os.urandom(40)), SECRET),  # "encrypted", no key
    ]:
        assert await store.load(bad, now=now) is None, bad


# -- key rotation -----------------------------------------------------------------------------


async def test_key_rotation_through_application_settings() -> None:
    clock = Clock()
    secrets_v1 = {1: "first secret, long and random enough!"}
    both = {1: secrets_v1[1], 2: "second secret, long and random enough"}

    settings: dict[str, Any] = {"cookie_secret": secrets_v1, "key_version": 1}
    store = CookieSessionStore.from_application_settings(settings)
    async with session_app(store, clock, **settings) as server:
        browser = Browser(server)
        await browser.set(n=1)
        v1_cookie = browser.cookie
        assert v1_cookie is not None
        assert v1_cookie.startswith("c1.1.")

    # Add version 2 and sign with it: version 1 cookies still open their sessions.
    settings = {"cookie_secret": both, "key_version": 2}
    store = CookieSessionStore.from_application_settings(settings)
    async with session_app(store, clock, **settings) as server:
        browser = Browser(server, v1_cookie)
        assert (await browser.get())["data"] == {"n": 1}
        await browser.set(m=2)
        assert browser.cookie is not None
        assert browser.cookie.startswith("c1.2.")
        v2_cookie = browser.cookie

    # Retire version 1: its cookies open nothing, version 2 cookies still work.
    settings = {"cookie_secret": {2: both[2]}, "key_version": 2}
    store = CookieSessionStore.from_application_settings(settings)
    async with session_app(store, clock, **settings) as server:
        response = await server.fetch("/get", cookie=v1_cookie)
        assert response.code == 200
        assert b'"data": {}' in response.body
        assert_cleared(response)
        assert (await Browser(server, v2_cookie).get())["data"] == {"n": 1, "m": 2}


async def test_wrong_secret_and_unknown_version_open_nothing() -> None:
    now = utc_now()
    value = await seal(CookieSessionStore({3: SECRET}, key_version=3), {"n": 1}, now)
    assert (
        await CookieSessionStore({3: "another secret"}, key_version=3).load(value, now=now) is None
    )
    assert await CookieSessionStore({4: SECRET}, key_version=4).load(value, now=now) is None
    # A single secret ignores the version, as Tornado's signed values do.
    assert await CookieSessionStore(SECRET).load(value, now=now) is not None


def test_configuration_errors_name_the_setting() -> None:
    with pytest.raises(SessionConfigError, match="'cookie_secret'"):
        CookieSessionStore.from_application_settings({})
    with pytest.raises(SessionConfigError, match="key_version"):
        CookieSessionStore({1: "a", 2: "b"})
    with pytest.raises(SessionConfigError, match="key_version"):
        CookieSessionStore({1: "a"}, key_version=2)
    with pytest.raises(SessionConfigError, match="cookie_secret"):
        CookieSessionStore("")
    with pytest.raises(SessionConfigError, match="encryption_key must be 32 bytes"):
        CookieSessionStore(SECRET, encryption_key=b"short")


def test_cookie_name_comes_from_session_settings() -> None:
    from tornado_mongo_session import SessionSettings

    store = CookieSessionStore.from_application_settings(
        {"cookie_secret": SECRET, "session_settings": SessionSettings(cookie_name="sid")}
    )
    assert store.cookie_name == "sid"


# -- encryption -------------------------------------------------------------------------------

CANARY = "plaintext-canary-4711"


async def test_encryption_hides_the_data_from_the_client() -> None:
    key = os.urandom(32)
    store = CookieSessionStore(SECRET, encryption_key=key)
    async with session_app(store, Clock()) as server:
        browser = Browser(server)
        response = await browser.set(secret=CANARY)
        line = response.set_cookies[0]
        assert CANARY not in line
        assert browser.cookie is not None
        body = body_bytes(browser.cookie)
        assert body[0] == 0x02  # AES-GCM, never compressed
        assert CANARY.encode() not in body
        assert (await browser.get())["data"] == {"secret": CANARY}

    # The same cookie under a store without the key, or with another key: nothing.
    now = utc_now()
    assert await CookieSessionStore(SECRET).load(browser.cookie, now=now) is None
    other = CookieSessionStore(SECRET, encryption_key=os.urandom(32))
    assert await other.load(browser.cookie, now=now) is None


async def test_encryption_resists_someone_who_knows_only_the_signing_secret() -> None:
    now = utc_now()
    store = CookieSessionStore(
        {1: SECRET, 2: SECRET + "2"}, key_version=1, encryption_key=os.urandom(32)
    )
    value = await seal(store, {"user": "ada"}, now)
    assert await store.load(value, now=now) is not None

    body = bytearray(body_bytes(value))
    body[20] ^= 0x01  # flip one ciphertext bit, then sign correctly
    assert await store.load(resign(with_body(value, bytes(body)), SECRET), now=now) is None
    # The key version is associated data: moving the ciphertext to version 2 fails to decrypt.
    assert await store.load(resign(value, SECRET + "2", version="2"), now=now) is None
    # A plain cookie, validly signed, is refused by a store that encrypts.
    plain = await seal(CookieSessionStore({1: SECRET}, key_version=1), {"user": "eve"}, now)
    assert await store.load(plain, now=now) is None


async def test_encryption_key_rotation_newest_first() -> None:
    now = utc_now()
    old, new = os.urandom(32), os.urandom(32)
    value = await seal(CookieSessionStore(SECRET, encryption_key=old), {"n": 1}, now)
    rotated = CookieSessionStore(SECRET, encryption_key=[new, old])
    record = await rotated.load(value, now=now)
    assert record is not None
    assert record.data == {"n": 1}
    assert await CookieSessionStore(SECRET, encryption_key=new).load(value, now=now) is None


def test_missing_cryptography_names_the_crypto_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules makes the import fail, as if the package were not installed.
    monkeypatch.setitem(sys.modules, "cryptography.hazmat.primitives.ciphers.aead", None)
    with pytest.raises(SessionConfigError, match=r"'crypto' extra"):
        CookieSessionStore(SECRET, encryption_key=os.urandom(32))


def test_package_imports_without_cryptography() -> None:
    code = (
        "import sys; sys.modules['cryptography'] = None\n"
        "import tornado_mongo_session as t\n"
        "t.CookieSessionStore('s'); t.TieredSessionStore\n"
        "print('ok')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


# -- size -------------------------------------------------------------------------------------


async def test_over_4kb_is_a_clear_error_naming_the_size(caplog: pytest.LogCaptureFixture) -> None:
    store = CookieSessionStore(SECRET)
    blob = secrets.token_urlsafe(4000)  # random text: compression cannot save it
    with pytest.raises(SessionTooLarge) as raised:
        await store.save(new_request({"blob": blob}))
    assert raised.value.limit == 4096
    assert raised.value.size > 4096
    assert f"{raised.value.size} bytes" in str(raised.value)
    assert "max_cookie_bytes=4096" in str(raised.value)

    async with session_app(store, Clock()) as server:
        browser = Browser(server)
        with caplog.at_level(logging.ERROR, logger="tornado_mongo_session"):
            response = await browser.set(small=1)
            big = await server.fetch(
                "/set", cookie=browser.cookie, method="POST", body=f'{{"blob": "{blob}"}}'
            )
        assert big.code == 500
        assert big.set_cookies == []  # nothing was written: the browser keeps the old cookie
        assert "max_cookie_bytes=4096" in caplog.text
        assert response.code == 200
        assert (await browser.get())["data"] == {"small": 1}


async def test_limit_counts_name_and_value_exactly() -> None:
    now = utc_now()
    request = new_request({"text": secrets.token_urlsafe(300)}, now)
    value = (await CookieSessionStore(SECRET, compress=False).save(request)).cookie_value
    assert value is not None
    size = len("session=") + len(value)
    fits = CookieSessionStore(SECRET, compress=False, max_cookie_bytes=size)
    assert (await fits.save(request)).cookie_value == value
    tight = CookieSessionStore(SECRET, compress=False, max_cookie_bytes=size - 1)
    with pytest.raises(SessionTooLarge, match=f"would be {size} bytes"):
        await tight.save(request)
    longer_name = CookieSessionStore(
        SECRET, compress=False, max_cookie_bytes=size, cookie_name="sid2"
    )
    assert (await longer_name.save(request)).cookie_value is not None
    longest = CookieSessionStore(
        SECRET, compress=False, max_cookie_bytes=size, cookie_name="session1"
    )
    with pytest.raises(SessionTooLarge):
        await longest.save(request)


async def test_compression_keeps_repetitive_data_small() -> None:
    now = utc_now()
    prose = {"note": "lorem ipsum dolor sit amet " * 200}  # 5.4 KB of text
    value = await seal(CookieSessionStore(SECRET), prose, now)
    assert body_bytes(value)[0] == 0x01
    assert len(value) < 600
    record = await CookieSessionStore(SECRET).load(value, now=now)
    assert record is not None
    assert record.data == prose
    with pytest.raises(SessionTooLarge):
        await CookieSessionStore(SECRET, compress=False).save(new_request(prose, now))


async def test_documented_cookie_sizes() -> None:
    """The sizes in docs/stores.md (uncompressed and encrypted sizes are exact)."""
    now = utc_now()
    small = {"n": 1}
    cart = {
        "cart": [
            {"sku": "A-1001", "qty": 2},
            {"sku": "B-2002", "qty": 1},
            {"sku": "C-3003", "qty": 5},
        ],
        "locale": "en-GB",
        "csrf": secrets.token_urlsafe(32),
    }

    async def size(store: CookieSessionStore, data: dict[str, Any]) -> int:
        return len("session=") + len(await seal(store, data, now))

    plain = CookieSessionStore(SECRET, compress=False)
    encrypted = CookieSessionStore(SECRET, encryption_key=os.urandom(32))
    assert await size(plain, small) == 187
    assert await size(encrypted, small) == 224
    assert await size(plain, cart) == 420
    assert await size(encrypted, cart) == 457
    assert len("session=") + len(f"{new_session_id()}.{new_token()}") == 76
    prose = {"note": ("lorem ipsum dolor sit amet " * 40)[:1024]}
    assert await size(plain, prose) == 1557
    assert 200 <= await size(CookieSessionStore(SECRET), prose) <= 230  # measured: 216


# -- no database ------------------------------------------------------------------------------


async def test_zero_database_commands(collection: Any, command_log: CommandLog) -> None:
    """Cookie-store handlers send nothing to MongoDB; a MongoDB handler in the same app does."""
    mongo_store = MongoSessionStore(collection)

    class MongoGet(SessionMixin, tornado.web.RequestHandler):
        session_store = mongo_store

        async def get(self) -> None:
            self.session["n"] = 1
            self.write("ok")

    cookie_store = CookieSessionStore(SECRET)
    clock = Clock()
    async with session_app(
        cookie_store, clock, handlers=[*STORE_ROUTES, ("/mongo", MongoGet)]
    ) as server:
        browser = Browser(server)
        await browser.set(a=1, b=[1, 2])
        assert (await browser.get())["data"] == {"a": 1, "b": [1, 2]}
        await browser.post("/del?k=a")
        clock.advance(120)  # rotation and touch due: the cookie is re-signed, still no database
        await browser.get()
        await browser.post("/login")
        await browser.fetch("/untouched")
        await server.fetch("/get", cookie="garbage")
        await server.fetch("/get", cookie=f"{new_session_id()}.{new_token()}")
        await browser.post("/logout")
        assert command_log.names() == []

        assert (await server.fetch("/mongo")).code == 200
        assert "insert" in command_log.names()  # the log does see this app's database traffic


# -- write modes ------------------------------------------------------------------------------


async def test_after_response_mode_keeps_changes_of_a_cookie_session() -> None:
    async with session_app(
        CookieSessionStore(SECRET), Clock(), write_mode="after_response"
    ) as server:
        browser = Browser(server)
        await browser.set(n=1)
        await browser.set(n=2)
        assert (await browser.get())["data"] == {"n": 2}
