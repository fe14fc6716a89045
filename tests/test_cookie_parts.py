"""The cookie store's parts: signing keys by version, AES-GCM keys by age, the sealed format,
and the store's memory of cookie values it opened lately."""

from __future__ import annotations

import json
import os
from datetime import timedelta

import pytest
import tornado.web
from helpers import Clock, serve

from tornado_mongo_session import (
    CookieSessionStore,
    NewSession,
    SessionConfigError,
    SessionMixin,
    SessionSettings,
)
from tornado_mongo_session.clock import utc_now
from tornado_mongo_session.stores._cookie_format import seal, unseal
from tornado_mongo_session.stores._cookie_keys import Ciphers, SigningKeys

SECRET = "cookie-parts-secret-0123456789abcdef"


def test_signing_keys_sign_with_the_current_version_and_verify_with_the_one_named() -> None:
    old, new = SigningKeys({1: "old secret"}, 1), SigningKeys({1: "old secret", 2: "new"}, 2)
    signature = old.sign("c1.1.body")
    assert new.verify("c1.1.body", 1, signature)  # an older version still verifies
    assert not new.verify("c1.1.body", 2, signature)
    assert not new.verify("c1.1.body", 3, signature)  # no such version
    assert not new.verify("c1.1.bodz", 1, signature)
    single = SigningKeys("one secret")
    assert single.version == 0
    assert single.verify("m", 7, single.sign("m"))  # one secret: any version number


@pytest.mark.parametrize(
    ("secret", "version", "named"),
    [
        ({}, None, "empty"),
        ({-1: "x"}, -1, "int >= 0"),
        ({1: "x"}, 2, "key_version"),
        ("", 0, "non-empty"),
    ],
)
def test_signing_keys_refuse_a_bad_configuration(
    secret: object, version: object, named: str
) -> None:
    with pytest.raises(SessionConfigError, match=named):
        SigningKeys(secret, version)  # type: ignore[arg-type]


def test_ciphers_encrypt_with_the_newest_key_and_decrypt_with_any() -> None:
    pytest.importorskip("cryptography")
    old, new = os.urandom(32), os.urandom(32)
    sealed = Ciphers(old).encrypt(b"payload", b"header")
    assert Ciphers([new, old]).decrypt(sealed, b"header") == b"payload"
    assert Ciphers([new]).decrypt(sealed, b"header") is None
    assert Ciphers([new, old]).decrypt(sealed, b"other header") is None
    with pytest.raises(SessionConfigError, match="32 bytes"):
        Ciphers(b"short")


@pytest.mark.parametrize("compress", [True, False])
def test_sealed_values_open_to_what_was_sealed_and_nothing_else(compress: bool) -> None:
    keys = SigningKeys(SECRET)
    plain = b"\x05\x00\x00\x00\x00" + b"x" * 200
    value = seal(plain, keys, None, compress=compress)
    assert unseal(value, keys, None) == plain
    assert unseal(value, SigningKeys("another secret"), None) is None
    tampered = value[:10] + ("A" if value[10] != "A" else "B") + value[11:]
    assert unseal(tampered, keys, None) is None


async def test_a_value_opened_again_is_a_fresh_record_whose_expiry_still_counts() -> None:
    store = CookieSessionStore(SECRET)
    now = utc_now()
    new = NewSession(
        data={"cart": {"items": [1]}}, created_at=now, now=now, expires_at=now + timedelta(hours=1)
    )
    value = (await store.save(new)).cookie_value
    assert value is not None
    first = await store.load(value, now=now)
    assert first is not None
    first.data["cart"] = "replaced"  # a record is the caller's own
    again = await store.load(value, now=now)
    assert again is not None
    assert again.data == {"cart": {"items": [1]}}
    assert await store.load(value, now=now + timedelta(hours=1)) is None


class Start(SessionMixin, tornado.web.RequestHandler):
    def get(self) -> None:
        self.session["cart"] = {"items": [1]}


class ChangeThenFail(SessionMixin, tornado.web.RequestHandler):
    def get(self) -> None:
        self.session["cart"]["items"].append(2)
        raise tornado.web.HTTPError(500)


class Read(SessionMixin, tornado.web.RequestHandler):
    def get(self) -> None:
        self.write(json.dumps(self.session.get("cart")))


async def test_a_change_in_place_that_is_not_saved_does_not_reach_a_value_opened_again() -> None:
    handlers = [("/start", Start), ("/fail", ChangeThenFail), ("/read", Read)]
    settings = SessionSettings(cookie_secure=False)
    store = CookieSessionStore(SECRET)
    async with serve(
        handlers, session_store=store, session_settings=settings, session_clock=Clock()
    ) as server:
        cookie = (await server.fetch("/start")).cookie_value()
        assert cookie is not None
        assert (await server.fetch("/fail", cookie=cookie)).code == 500
        assert json.loads((await server.fetch("/read", cookie=cookie)).body) == {"items": [1]}
