"""CookieSessionStore: the whole session in a signed, optionally encrypted, cookie.

No server holds anything: a load verifies the cookie, a save writes a new one. That makes it
free (zero database commands) and unrevocable: a cookie stays valid until the ``expires_at``
signed into it, whatever happens on the server. Use it for data that needs no protection beyond
integrity (anonymous carts, preferences), or through
:class:`~tornado_mongo_session.stores.tiered.TieredSessionStore`.

The cookie value::

    c1.<key version>.<body>.<signature>

- ``c1``: this format, version 1. It can never parse as a server store's ``<id>.<token>``.
- ``<key version>``: decimal; which ``cookie_secret`` signed it (``0`` for a single secret, as in
  Tornado's signed values).
- ``<body>``: URL-safe base64 (no padding) of a flags byte and then the BSON payload
  ``{i: id, d: data, c: created_at, a: accessed_at, r: rotated_at, e: expires_at}`` (one-letter
  names: every byte counts against the 4 KB limit), zlib-compressed when that is shorter
  (flag 1), or, with an ``encryption_key``, a 96-bit random nonce and the AES-256-GCM
  ciphertext of that payload with ``c1.<key version>.`` as associated data (flag 2; never
  compressed, so the length cannot leak what the data holds).
- ``<signature>``: URL-safe base64 of HMAC-SHA256 over ``c1.<key version>.<body>``, keyed with
  a key derived from the secret for this purpose only, so a signature made here is never valid
  for Tornado's own signed cookies made with the same ``cookie_secret``, nor the reverse.

Only ``[A-Za-z0-9_.-]`` appear: Tornado's ``set_cookie`` sends it unquoted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import zlib
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeAlias

from bson.errors import BSONError

from tornado_mongo_session._bson import decode, encode_for_store
from tornado_mongo_session.clock import as_utc
from tornado_mongo_session.errors import SessionConfigError, SessionTooLarge
from tornado_mongo_session.stores.base import NewSession, SaveResult, SessionRecord, SessionUpdate

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["CookieSecret", "CookieSessionStore"]

log = logging.getLogger("tornado_mongo_session.cookie")

CookieSecret: TypeAlias = "str | bytes | Mapping[int, str | bytes]"
"""What Tornado's ``cookie_secret`` application setting may be: one secret, or a dict of them
by key version."""

_FORMAT = "c1"
_PREFIX = _FORMAT + "."
_FLAG_ZLIB = 0x01
_FLAG_AESGCM = 0x02
_KNOWN_FLAGS = _FLAG_ZLIB | _FLAG_AESGCM
_NONCE_BYTES = 12
_KEY_BYTES = 32
_SIGNATURE_CHARS = 43  # 32 bytes, URL-safe base64 without padding
_MAX_VERSION_CHARS = 9
# Bound on what a (verified) body may inflate to: MongoDB's document limit.
_MAX_PAYLOAD_BYTES = 16 * 1024 * 1024
_PURPOSE = b"tornado_mongo_session/CookieSessionStore/c1/hmac-sha256"


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    if not text.isascii():
        raise ValueError("not base64")
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


def _secret_bytes(name: str, secret: object) -> bytes:
    if isinstance(secret, str):
        secret = secret.encode("utf-8")
    if not isinstance(secret, bytes) or not secret:
        raise SessionConfigError(f"{name} must be a non-empty str or bytes")
    return secret


def _derive(secret: bytes) -> bytes:
    """The signing key for this store: HMAC(secret, purpose), so keys never serve two uses."""
    return hmac.new(secret, _PURPOSE, hashlib.sha256).digest()


def _aesgcm() -> type[AESGCM]:
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError as exc:
        raise SessionConfigError(
            "CookieSessionStore(encryption_key=...) needs the 'cryptography' package: install "
            "the 'crypto' extra (pip install 'tornado-mongo-session[crypto]')"
        ) from exc
    return AESGCM


def _as_datetime(value: object) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError("not a datetime")
    return value


class CookieSessionStore:
    """Sessions kept entirely in a cookie signed with HMAC-SHA256 (optionally AES-GCM encrypted).

    ``secret`` and ``key_version`` work like Tornado's ``cookie_secret`` and ``key_version``
    application settings (:meth:`from_application_settings` reads them): a dict of secrets by
    version signs with ``secret[key_version]`` and verifies a cookie with the secret of the
    version it names, so rotating keys is adding a version and moving ``key_version`` to it.

    ``encryption_key``: 32 bytes (or a list of them, newest first: the first encrypts, all
    decrypt) to encrypt the payload with AES-256-GCM, for data the client must not read. Needs
    the ``crypto`` extra (the ``cryptography`` package), imported only then.

    ``max_cookie_bytes``: the limit for ``<cookie_name>=<value>`` (browsers keep at most 4096
    bytes of a cookie's name and value); a save over it raises
    :class:`~tornado_mongo_session.errors.SessionTooLarge` with the size, and writes nothing.
    ``compress``: zlib-compress a plain payload when that makes it shorter.

    A tampered, truncated or malformed cookie, one signed with an unknown key version or another
    secret, and one whose signed ``expires_at`` has passed all load as ``None``: never an error.
    ``delete`` is a no-op: a cookie cannot be revoked; the mixin expires it in the browser.

    Round trips: none.
    """

    def __init__(
        self,
        secret: CookieSecret,
        *,
        key_version: int | None = None,
        encryption_key: bytes | list[bytes] | tuple[bytes, ...] | None = None,
        compress: bool = True,
        max_cookie_bytes: int = 4096,
        cookie_name: str = "session",
    ) -> None:
        self._keys: dict[int, bytes] = {}
        self._single_key: bytes | None = None
        if isinstance(secret, Mapping):
            if not secret:
                raise SessionConfigError("cookie_secret must not be an empty dict")
            for version, value in secret.items():
                if isinstance(version, bool) or not isinstance(version, int) or version < 0:
                    raise SessionConfigError(
                        f"cookie_secret dict keys must be key versions (int >= 0), got {version!r}"
                    )
                if len(str(version)) > _MAX_VERSION_CHARS:
                    raise SessionConfigError(f"cookie_secret key version {version} is too large")
                self._keys[version] = _derive(_secret_bytes(f"cookie_secret[{version!r}]", value))
            if key_version is None or key_version not in self._keys:
                raise SessionConfigError(
                    f"key_version must name one of the cookie_secret versions "
                    f"{sorted(self._keys)} when cookie_secret is a dict, got {key_version!r}"
                )
            self.key_version = key_version
        else:
            self._single_key = _derive(_secret_bytes("cookie_secret", secret))
            self.key_version = key_version or 0
        if max_cookie_bytes < 256:
            raise SessionConfigError(f"max_cookie_bytes must be >= 256, got {max_cookie_bytes!r}")
        self.max_cookie_bytes = max_cookie_bytes
        self.cookie_name = cookie_name
        self.compress = compress
        self._ciphers: list[AESGCM] = []
        self._invalid_tag: type[Exception] = Exception
        if encryption_key is not None:
            keys = [encryption_key] if isinstance(encryption_key, bytes) else list(encryption_key)
            if not keys:
                raise SessionConfigError("encryption_key must not be an empty list")
            for key in keys:
                if not isinstance(key, bytes) or len(key) != _KEY_BYTES:
                    raise SessionConfigError(
                        f"encryption_key must be {_KEY_BYTES} bytes (AES-256), e.g. os.urandom(32)"
                    )
            cipher_class = _aesgcm()
            from cryptography.exceptions import InvalidTag

            self._invalid_tag = InvalidTag
            self._ciphers = [cipher_class(key) for key in keys]

    @classmethod
    def from_application_settings(
        cls, app_settings: Mapping[str, Any], **kwargs: Any
    ) -> CookieSessionStore:
        """Build a store from a Tornado application's settings.

        Reads ``cookie_secret`` (required) and ``key_version``, and the cookie name from
        ``session_settings`` when present; ``kwargs`` go to the constructor. Raises
        :class:`SessionConfigError` naming ``cookie_secret`` when it is missing.
        """
        secret = app_settings.get("cookie_secret")
        if not secret:
            raise SessionConfigError(
                "CookieSessionStore needs the Application setting 'cookie_secret' (a long random "
                "string, or a dict of them by key version with 'key_version' naming the current)"
            )
        kwargs.setdefault("key_version", app_settings.get("key_version"))
        session_settings = app_settings.get("session_settings")
        cookie_name = getattr(session_settings, "cookie_name", None)
        if isinstance(cookie_name, str):
            kwargs.setdefault("cookie_name", cookie_name)
        return cls(secret, **kwargs)

    @property
    def encrypted(self) -> bool:
        """True when payloads are encrypted (an ``encryption_key`` was given)."""
        return bool(self._ciphers)

    def owns(self, cookie_value: str) -> bool:
        """Tell whether ``cookie_value`` has this store's form (not whether it is valid)."""
        return cookie_value.startswith(_PREFIX)

    # -- the SessionStore protocol -----------------------------------------------------------

    async def load(self, cookie_value: str, *, now: datetime) -> SessionRecord | None:
        payload = self._open(cookie_value)
        if payload is None:
            return None
        try:
            record = SessionRecord(
                id=str(payload["i"]),
                data=dict(payload["d"]),
                created_at=_as_datetime(payload["c"]),
                accessed_at=_as_datetime(payload["a"]),
                rotated_at=_as_datetime(payload["r"]),
                expires_at=_as_datetime(payload["e"]),
                in_cookie=True,
            )
        except (KeyError, TypeError, ValueError):
            log.warning("a validly signed session cookie has a malformed payload; ignored")
            return None
        if record.expires_at <= as_utc(now):
            return None
        return record

    async def save(self, request: NewSession | SessionUpdate) -> SaveResult:
        """Encode the whole session into a new cookie value; raises SessionTooLarge over the limit.

        A requested rotation only re-signs the cookie with a new ``rotated_at``: earlier cookies
        stay valid until their own ``expires_at``.
        """
        payload = {
            "i": request.session_id,
            "d": dict(request.data),
            "c": request.created_at,
            "a": request.now,
            "r": request.rotated_at,
            "e": request.expires_at,
        }
        rotated = isinstance(request, NewSession) or request.rotation is not None
        return SaveResult(
            session_id=request.session_id, cookie_value=self._seal(payload), rotated=rotated
        )

    async def delete(self, record: SessionRecord) -> None:
        """Nothing to delete: the mixin expires the cookie in the browser."""

    # -- encoding ----------------------------------------------------------------------------

    def _signing_key(self, version: int) -> bytes | None:
        if self._single_key is not None:
            return self._single_key
        return self._keys.get(version)

    def _sign(self, key: bytes, message: str) -> str:
        return _b64encode(hmac.new(key, message.encode("ascii"), hashlib.sha256).digest())

    def _seal(self, payload: dict[str, Any]) -> str:
        plain = encode_for_store(payload, data_key="d", what="cookie encoding")
        header = f"{_PREFIX}{self.key_version}."
        if self._ciphers:
            nonce = os.urandom(_NONCE_BYTES)
            sealed = self._ciphers[0].encrypt(nonce, plain, header.encode("ascii"))
            body = bytes([_FLAG_AESGCM]) + nonce + sealed
        else:
            body = bytes([0]) + plain
            if self.compress:
                packed = zlib.compress(plain, 9)
                if len(packed) < len(plain):
                    body = bytes([_FLAG_ZLIB]) + packed
        message = header + _b64encode(body)
        key = self._signing_key(self.key_version)
        assert key is not None  # the constructor checked key_version
        value = f"{message}.{self._sign(key, message)}"
        size = len(self.cookie_name) + 1 + len(value)
        if size > self.max_cookie_bytes:
            raise SessionTooLarge(
                f"the session cookie would be {size} bytes ({self.cookie_name}=<value>, "
                f"{len(plain)} bytes of BSON), over max_cookie_bytes={self.max_cookie_bytes}; "
                "nothing was written. Keep less in the session, or use TieredSessionStore, "
                "which moves large sessions to the server",
                size=size,
                limit=self.max_cookie_bytes,
            )
        return value

    def _open(self, value: str) -> dict[str, Any] | None:
        """The verified payload of a cookie value, or None for anything else. Never raises."""
        if not value.startswith(_PREFIX) or not value.isascii():
            return None
        parts = value.split(".")
        if len(parts) != 4 or len(parts[3]) != _SIGNATURE_CHARS:
            return None
        _, version_text, body_text, signature = parts
        if not version_text.isdigit() or len(version_text) > _MAX_VERSION_CHARS:
            return None
        version = int(version_text)
        key = self._signing_key(version)
        if key is None:
            return None
        message, _, _ = value.rpartition(".")
        expected = self._sign(key, message)
        if not hmac.compare_digest(expected.encode("ascii"), signature.encode("ascii")):
            return None
        try:
            body = _b64decode(body_text)
            plain = self._unpack(body, f"{_PREFIX}{version_text}.".encode("ascii"))
            if plain is None:
                return None
            return decode(plain)
        except (ValueError, binascii.Error, zlib.error, BSONError, IndexError):
            log.warning("a validly signed session cookie could not be decoded; ignored")
            return None

    def _unpack(self, body: bytes, header: bytes) -> bytes | None:
        flags, content = body[0], body[1:]
        if flags & ~_KNOWN_FLAGS:
            return None
        if flags & _FLAG_AESGCM:
            if flags & _FLAG_ZLIB or not self._ciphers:
                return None
            nonce, sealed = content[:_NONCE_BYTES], content[_NONCE_BYTES:]
            for cipher in self._ciphers:
                try:
                    return cipher.decrypt(nonce, sealed, header)
                except self._invalid_tag:
                    continue
            return None
        if self._ciphers:
            # A store that encrypts accepts nothing in the clear: the data must stay unread.
            return None
        if flags & _FLAG_ZLIB:
            inflater = zlib.decompressobj()
            plain = inflater.decompress(content, _MAX_PAYLOAD_BYTES)
            if inflater.unconsumed_tail or not inflater.eof:
                return None
            return plain
        return content
