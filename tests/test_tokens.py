"""tokens.py: ids, tokens, hashes and the cookie format."""

from __future__ import annotations

import pytest
from helpers import b64decode_unpadded

from tornado_mongo_session.tokens import (
    encode_cookie,
    hash_token,
    new_session_id,
    new_token,
    parse_cookie,
    token_matches,
    token_rank,
)


def decoded_bits(value: str) -> int:
    return len(b64decode_unpadded(value)) * 8


def test_ids_and_tokens_are_long_random_and_url_safe() -> None:
    ids = {new_session_id() for _ in range(1000)}
    tokens = {new_token() for _ in range(1000)}
    assert len(ids) == 1000
    assert len(tokens) == 1000
    assert all(decoded_bits(i) >= 128 for i in ids)
    assert all(decoded_bits(t) == 256 for t in tokens)
    alphabet = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert all(set(v) <= alphabet for v in ids | tokens)


def test_hash_is_sha256_hex_and_not_the_token() -> None:
    token = new_token()
    digest = hash_token(token)
    assert len(digest) == 64
    assert token not in digest
    assert digest == hash_token(token)
    assert digest != hash_token(new_token())


def test_token_matches_any_kept_hash() -> None:
    tokens = [new_token() for _ in range(3)]
    hashes = [hash_token(t) for t in tokens]
    assert all(token_matches(t, hashes) for t in tokens)
    assert not token_matches(new_token(), hashes)
    assert not token_matches(tokens[0], [])
    assert not token_matches(tokens[0], ["not-a-hash", 7])  # type: ignore[list-item]


def test_token_rank_is_the_position_of_the_matching_hash() -> None:
    hashes = [hash_token(new_token()) for _ in range(3)]
    assert [token_rank(h, hashes) for h in hashes] == [0, 1, 2]
    assert token_rank(hash_token(new_token()), hashes) is None
    assert token_rank(hashes[0], []) is None


@pytest.mark.parametrize("bad", [None, 7, b"bytes", "not-ascii-\u00e9", ["list"]])
def test_token_rank_skips_what_a_malformed_document_holds(bad: object) -> None:
    # compare_digest refuses these (TypeError): the entries around them still count.
    hashes = [hash_token(new_token()) for _ in range(2)]
    stored = [hashes[0], bad, hashes[1], bad]
    assert token_rank(hashes[1], stored) == 2
    assert token_rank(hashes[0], stored) == 0
    assert token_rank(hash_token(new_token()), stored) is None


def test_cookie_round_trip() -> None:
    session_id, token = new_session_id(), new_token()
    value = encode_cookie(session_id, token)
    assert parse_cookie(value) == (session_id, token)


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "abc",
        "a" * 68,
        "a" * 24 + "." + "b" * 42,
        "a" * 24 + "." + "b" * 44,
        "a" * 23 + ".." + "b" * 43,
        "a" * 24 + "." + "b" * 42 + "=",
        "a" * 24 + "." + "b" * 42 + "ü",
        "a" * 23 + "$." + "b" * 43,
        "a" * 24 + "\x00" + "b" * 43,
    ],
)
def test_malformed_cookie_is_none(value: str | None) -> None:
    assert parse_cookie(value) is None
