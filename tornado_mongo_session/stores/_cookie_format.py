"""The cookie store's sealed format: a BSON payload in a signed cookie value.

::

    c2.<key version>.<body>.<signature>

- ``c2``: this format, version 2. It can never parse as a server store's ``<id>.<token>``.
  Version 1 (``c1.``) signed no cookie name: its values are refused (a new session), since
  one could have been made for another cookie.
- ``<key version>``: decimal; which ``cookie_secret`` signed it (``0`` for a single secret, as in
  Tornado's signed values).
- ``<body>``: URL-safe base64 (no padding) of a flags byte and then the BSON payload,
  zlib-compressed when that is shorter (flag 1), or, with encryption keys, a 96-bit random nonce
  and the AES-256-GCM ciphertext of that payload with ``<binding>c2.<key version>.`` as
  associated data (flag 2; never compressed, so the length cannot leak what the data holds).
- ``<signature>``: URL-safe base64 of HMAC-SHA256 over ``<binding>c2.<key version>.<body>``,
  keyed with a key derived from the secret for this purpose only (:class:`SigningKeys`).

``<binding>`` (signed, never sent) is :func:`binding` of the cookie's name and purpose, each
length-prefixed as in Tornado's signed values: a value made for one cookie (another app's
``prefs`` under the same secret) never opens as another (this app's ``session``).

Only ``[A-Za-z0-9_.-]`` appear: Tornado's ``set_cookie`` sends it unquoted.
"""

from __future__ import annotations

import base64
import zlib

from tornado_mongo_session.stores._cookie_keys import (
    MAX_VERSION_CHARS,
    Ciphers,
    SigningKeys,
    b64encode,
)

__all__ = ["PREFIX", "binding", "seal", "unseal"]

PREFIX = "c2."
_FLAG_ZLIB = 0x01
_FLAG_AESGCM = 0x02
_KNOWN_FLAGS = _FLAG_ZLIB | _FLAG_AESGCM
_SIGNATURE_CHARS = 43  # 32 bytes, URL-safe base64 without padding
# Bound on what a (verified) body may inflate to: MongoDB's document limit.
_MAX_PAYLOAD_BYTES = 16 * 1024 * 1024


def binding(cookie_name: str, purpose: str) -> str:
    """What binds a value to its cookie: signed with it, never sent. Length-prefixed, so no
    two (name, purpose) pairs give the same text."""
    return f"{len(cookie_name)}:{cookie_name}|{len(purpose)}:{purpose}|"


def seal(
    plain: bytes, keys: SigningKeys, ciphers: Ciphers | None, *, compress: bool, bound_to: str
) -> str:
    """The cookie value carrying the BSON payload ``plain``, signed with the current key
    together with ``bound_to`` (:func:`binding`)."""
    header = f"{PREFIX}{keys.version}."
    if ciphers is not None:
        associated = (bound_to + header).encode("ascii")
        body = bytes([_FLAG_AESGCM]) + ciphers.encrypt(plain, associated)
    else:
        body = bytes([0]) + plain
        if compress:
            packed = zlib.compress(plain, 9)
            if len(packed) < len(plain):
                body = bytes([_FLAG_ZLIB]) + packed
    message = header + b64encode(body)
    return f"{message}.{keys.sign(bound_to + message)}"


def unseal(
    value: str, keys: SigningKeys, ciphers: Ciphers | None, *, bound_to: str
) -> bytes | None:
    """The BSON payload of a ``value`` validly signed with ``bound_to``; ``None`` for anything
    else (a value of format 1, or made for another cookie name or purpose, among them).

    A value that is validly signed but cannot be unpacked raises ``ValueError`` (binascii's and
    zlib's errors among them) or ``IndexError``: the caller logs it.
    """
    if not value.startswith(PREFIX) or not value.isascii():
        return None
    parts = value.split(".")
    if len(parts) != 4 or len(parts[3]) != _SIGNATURE_CHARS:
        return None
    _, version_text, body_text, signature = parts
    if not version_text.isdigit() or len(version_text) > MAX_VERSION_CHARS:
        return None
    message = value.rpartition(".")[0]
    if not keys.verify(bound_to + message, int(version_text), signature):
        return None
    body = base64.b64decode(body_text + "=" * (-len(body_text) % 4), altchars=b"-_", validate=True)
    return _unpack(body, f"{bound_to}{PREFIX}{version_text}.".encode("ascii"), ciphers)


def _unpack(body: bytes, header: bytes, ciphers: Ciphers | None) -> bytes | None:
    flags, content = body[0], body[1:]
    if flags & ~_KNOWN_FLAGS:
        return None
    if flags & _FLAG_AESGCM:
        if flags & _FLAG_ZLIB or ciphers is None:
            return None
        return ciphers.decrypt(content, header)
    if ciphers is not None:
        # A store that encrypts accepts nothing in the clear: the data must stay unread.
        return None
    if flags & _FLAG_ZLIB:
        inflater = zlib.decompressobj()
        plain = inflater.decompress(content, _MAX_PAYLOAD_BYTES)
        if inflater.unconsumed_tail or not inflater.eof:
            return None
        return plain
    return content
