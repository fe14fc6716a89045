"""The cookie store's sealed format: a BSON payload in a signed cookie value.

::

    c1.<key version>.<body>.<signature>

- ``c1``: this format, version 1. It can never parse as a server store's ``<id>.<token>``.
- ``<key version>``: decimal; which ``cookie_secret`` signed it (``0`` for a single secret, as in
  Tornado's signed values).
- ``<body>``: URL-safe base64 (no padding) of a flags byte and then the BSON payload,
  zlib-compressed when that is shorter (flag 1), or, with encryption keys, a 96-bit random nonce
  and the AES-256-GCM ciphertext of that payload with ``c1.<key version>.`` as associated data
  (flag 2; never compressed, so the length cannot leak what the data holds).
- ``<signature>``: URL-safe base64 of HMAC-SHA256 over ``c1.<key version>.<body>``, keyed with
  a key derived from the secret for this purpose only (:class:`SigningKeys`).

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

__all__ = ["PREFIX", "seal", "unseal"]

PREFIX = "c1."
_FLAG_ZLIB = 0x01
_FLAG_AESGCM = 0x02
_KNOWN_FLAGS = _FLAG_ZLIB | _FLAG_AESGCM
_SIGNATURE_CHARS = 43  # 32 bytes, URL-safe base64 without padding
# Bound on what a (verified) body may inflate to: MongoDB's document limit.
_MAX_PAYLOAD_BYTES = 16 * 1024 * 1024


def seal(plain: bytes, keys: SigningKeys, ciphers: Ciphers | None, *, compress: bool) -> str:
    """The cookie value carrying the BSON payload ``plain``, signed with the current key."""
    header = f"{PREFIX}{keys.version}."
    if ciphers is not None:
        body = bytes([_FLAG_AESGCM]) + ciphers.encrypt(plain, header.encode("ascii"))
    else:
        body = bytes([0]) + plain
        if compress:
            packed = zlib.compress(plain, 9)
            if len(packed) < len(plain):
                body = bytes([_FLAG_ZLIB]) + packed
    message = header + b64encode(body)
    return f"{message}.{keys.sign(message)}"


def unseal(value: str, keys: SigningKeys, ciphers: Ciphers | None) -> bytes | None:
    """The BSON payload of a validly signed ``value``; ``None`` for anything else.

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
    if not keys.verify(message, int(version_text), signature):
        return None
    body = base64.b64decode(body_text + "=" * (-len(body_text) % 4), altchars=b"-_", validate=True)
    return _unpack(body, f"{PREFIX}{version_text}.".encode("ascii"), ciphers)


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
