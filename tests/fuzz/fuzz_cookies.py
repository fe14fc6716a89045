"""Coverage-guided fuzzing (atheris) of the code that reads cookie values from the client.

Run by ``tests/fuzz/test_atheris.py`` (``make test-stress``) for a fixed number of runs::

    python tests/fuzz/fuzz_cookies.py TARGET [libFuzzer options] [corpus dir]

Targets:

- ``parse_cookie``: ``tokens.parse_cookie`` on any text. It never raises, and what it accepts
  is exactly ``<24 URL-safe chars>.<43 URL-safe chars>`` and encodes back to the input.
- ``cookie_store``: ``CookieSessionStore.load`` on any text, with and without encryption. It
  never raises and opens nothing: a value the fuzzer makes up carries no valid signature.
- ``cookie_store_signed``: the decoder behind the signature. The input is the body, and the
  harness signs it with the store's own key, as if the attacker knew the secret: base64, flags,
  zlib, AES-GCM framing and BSON decoding must still never raise, and a record, when one comes
  out, has the documented types.

An exception, or a broken invariant, is a crash: atheris prints the input and exits non-zero.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from typing import Any

import atheris

with atheris.instrument_imports():
    from tornado_mongo_session.stores._cookie_keys import b64encode
    from tornado_mongo_session.stores.base import SessionRecord
    from tornado_mongo_session.stores.cookie import CookieSessionStore
    from tornado_mongo_session.tokens import encode_cookie, parse_cookie

URLSAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
SECRET = "atheris-secret-0123456789abcdef0123456789"
NOW = datetime(2030, 1, 1, tzinfo=timezone.utc)
PLAIN = CookieSessionStore(SECRET)
ENCRYPTED = CookieSessionStore(SECRET, encryption_key=b"k" * 32)


def run(coroutine: Any) -> Any:
    """Run a coroutine that never suspends (the cookie store does no I/O)."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    raise AssertionError("the cookie store suspended: it must do no I/O")


def text_of(data: bytes) -> str:
    provider = atheris.FuzzedDataProvider(data)
    if provider.ConsumeBool():
        return data[1:].decode("latin-1")
    return provider.ConsumeUnicodeNoSurrogates(len(data))


def check_parse_cookie(data: bytes) -> None:
    value = text_of(data)
    parsed = parse_cookie(value)
    if parsed is None:
        return
    session_id, token = parsed
    assert len(session_id) == 24, value
    assert len(token) == 43, value
    assert set(session_id) <= URLSAFE, value
    assert set(token) <= URLSAFE, value
    assert encode_cookie(session_id, token) == value, value


def check_cookie_store(data: bytes) -> None:
    value = text_of(data)
    for store in (PLAIN, ENCRYPTED):
        assert run(store.load(value, now=NOW)) is None, value
        assert run(store.load("c1.0." + value, now=NOW)) is None, value


def check_record(record: SessionRecord | None) -> None:
    if record is None:
        return
    assert isinstance(record.id, str)
    assert isinstance(record.data, dict)
    for moment in (record.created_at, record.accessed_at, record.rotated_at, record.expires_at):
        assert isinstance(moment, datetime)
    assert record.expires_at > NOW


def check_cookie_store_signed(data: bytes) -> None:
    message = "c1.0." + b64encode(data)
    signed = f"{message}.{PLAIN._keys.sign(message)}"
    for store in (PLAIN, ENCRYPTED):
        check_record(run(store.load(signed, now=NOW)))


TARGETS = {
    "parse_cookie": check_parse_cookie,
    "cookie_store": check_cookie_store,
    "cookie_store_signed": check_cookie_store_signed,
}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        raise SystemExit(f"usage: {sys.argv[0]} {{{','.join(TARGETS)}}} [libFuzzer options]")
    target = TARGETS[sys.argv.pop(1)]
    atheris.Setup(sys.argv, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
