"""Pure functions for session ids, tokens and the cookie value that carries them.

The cookie value is ``<session id>.<token>``. Both parts are URL-safe base64 without padding, so
neither contains a ``.``. Only :func:`hash_token` of a token is ever stored.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from collections.abc import Iterable, Sequence
from hmac import compare_digest

__all__ = [
    "SESSION_ID_BYTES",
    "TOKEN_BYTES",
    "encode_cookie",
    "hash_token",
    "new_session_id",
    "new_token",
    "parse_cookie",
    "session_handle",
    "token_matches",
    "token_rank",
]

SESSION_ID_BYTES = 18
"""144 bits: 24 URL-safe characters."""

TOKEN_BYTES = 32
"""256 bits: 43 URL-safe characters."""

# 24 and 43 URL-safe characters: the lengths of SESSION_ID_BYTES and TOKEN_BYTES in base64.
_COOKIE = re.compile(r"([A-Za-z0-9_-]{24})\.([A-Za-z0-9_-]{43})")


def new_session_id() -> str:
    """Return a new random session id (144 bits, URL-safe)."""
    return secrets.token_urlsafe(SESSION_ID_BYTES)


def new_token() -> str:
    """Return a new random token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    """Return the hex SHA-256 of ``token``: the only form of a token that is ever stored."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def token_matches(token: str, stored_hashes: Iterable[object]) -> bool:
    """Tell whether ``token`` hashes to one of ``stored_hashes``, in constant time per hash.

    Every stored hash is compared, so the time taken does not reveal which one matched.
    """
    return token_rank(hash_token(token), list(stored_hashes)) is not None


def token_rank(token_hash: str, stored_hashes: Sequence[object]) -> int | None:
    """The position of ``token_hash`` (a :func:`hash_token` result) in ``stored_hashes``, or
    ``None``; every stored hash is compared in constant time, whichever matches."""
    rank = None
    try:
        # compare_digest refuses (TypeError) what is not an ASCII str: a malformed document's
        # entry, compared again below, where it matches nothing.
        for index, stored in enumerate(stored_hashes):
            if compare_digest(token_hash, stored):  # type: ignore[call-overload]
                rank = index
    except TypeError:
        rank = None
        for index, stored in enumerate(stored_hashes):
            if isinstance(stored, str) and stored.isascii() and compare_digest(token_hash, stored):
                rank = index
    return rank


def encode_cookie(session_id: str, token: str) -> str:
    """Return the cookie value ``<session id>.<token>``."""
    return f"{session_id}.{token}"


def parse_cookie(value: str | None) -> tuple[str, str] | None:
    """Split a cookie value into ``(session id, token)``; ``None`` when it is not well formed.

    A malformed value is not an error: the caller treats it as an absent cookie.
    """
    match = _COOKIE.fullmatch(value) if value else None
    return None if match is None else (match[1], match[2])


def session_handle(session_id: str) -> str:
    """Return the handle of a session: what a "your devices" page may show and send back.

    A hash of the id (22 URL-safe characters, 132 bits): it opens nothing (a cookie needs the
    id and a token), and neither the id nor a token can be found from it.
    """
    digest = hashlib.sha256(b"tornado_mongo_session handle\x00" + session_id.encode()).digest()
    return base64.urlsafe_b64encode(digest[:17]).decode()[:22]
