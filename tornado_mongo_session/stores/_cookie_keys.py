"""The cookie store's keys: HMAC signing keys by version, and AES-GCM keys by age.

Signing follows Tornado's ``cookie_secret``/``key_version`` settings: one secret, or a dict of
them by version; a value names the version that signed it, so rotating keys is adding a version
and moving ``key_version`` to it. Each key is derived from its secret for this purpose only, so
a signature made here is never valid for Tornado's own signed cookies, nor the reverse.
Encryption keys are a list, newest first: the first encrypts, every one decrypts.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, TypeAlias

from tornado_mongo_session.errors import SessionConfigError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["Ciphers", "CookieSecret", "SigningKeys"]

CookieSecret: TypeAlias = "str | bytes | Mapping[int, str | bytes]"
"""What Tornado's ``cookie_secret`` application setting may be: one secret, or a dict of them
by key version."""

MAX_VERSION_CHARS = 9
_PURPOSE = b"tornado_mongo_session/CookieSessionStore/c1/hmac-sha256"
_KEY_BYTES = 32
_NONCE_BYTES = 12


class SigningKeys:
    """HMAC-SHA256 keys by version: sign with ``version``'s, verify with the one a value names.

    Raises :class:`SessionConfigError` naming what is wrong with ``secret`` or ``key_version``.
    """

    def __init__(self, secret: CookieSecret, key_version: int | None = None) -> None:
        if not isinstance(secret, Mapping):
            self._keys: dict[int, bytes] = {}
            self._single: bytes | None = _derive("cookie_secret", secret)
            self.version = key_version or 0
            return
        if not secret:
            raise SessionConfigError("cookie_secret must not be an empty dict")
        for version in secret:
            if isinstance(version, bool) or not isinstance(version, int) or version < 0:
                raise SessionConfigError(
                    f"cookie_secret dict keys must be key versions (int >= 0), got {version!r}"
                )
            if len(str(version)) > MAX_VERSION_CHARS:
                raise SessionConfigError(f"cookie_secret key version {version} is too large")
        self._keys = {v: _derive(f"cookie_secret[{v!r}]", s) for v, s in secret.items()}
        self._single = None
        if key_version is None or key_version not in self._keys:
            raise SessionConfigError(
                f"key_version must name one of the cookie_secret versions {sorted(self._keys)} "
                f"when cookie_secret is a dict, got {key_version!r}"
            )
        self.version = key_version

    def sign(self, message: str) -> str:
        """The URL-safe base64 signature of ``message`` with the current version's key."""
        key = self._key(self.version)
        assert key is not None  # the constructor checked the version
        return _mac(key, message)

    def verify(self, message: str, version: int, signature: str) -> bool:
        """Tell whether ``signature`` is ``message``'s under ``version``, in constant time."""
        key = self._key(version)
        return key is not None and hmac.compare_digest(
            _mac(key, message).encode("ascii"), signature.encode("ascii")
        )

    def _key(self, version: int) -> bytes | None:
        return self._single or self._keys.get(version)


class Ciphers:
    """AES-256-GCM with a list of 32-byte keys, newest first: the first encrypts, all decrypt.

    Needs the ``crypto`` extra (the ``cryptography`` package), imported only here. Raises
    :class:`SessionConfigError` for a missing package or a key of the wrong size.
    """

    def __init__(self, keys: bytes | Sequence[bytes]) -> None:
        keys = [keys] if isinstance(keys, bytes) else list(keys)
        if not keys:
            raise SessionConfigError("encryption_key must not be an empty list")
        for key in keys:
            if not isinstance(key, bytes) or len(key) != _KEY_BYTES:
                raise SessionConfigError(
                    f"encryption_key must be {_KEY_BYTES} bytes (AES-256), e.g. os.urandom(32)"
                )
        try:
            from cryptography.exceptions import InvalidTag
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        except ImportError as exc:
            raise SessionConfigError(
                "CookieSessionStore(encryption_key=...) needs the 'cryptography' package: "
                "install the 'crypto' extra (pip install 'tornado-mongo-session[crypto]')"
            ) from exc
        self._invalid_tag = InvalidTag
        self._ciphers: list[AESGCM] = [AESGCM(key) for key in keys]

    def encrypt(self, plain: bytes, associated: bytes) -> bytes:
        """A random 96-bit nonce, then the ciphertext and tag, under the newest key."""
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._ciphers[0].encrypt(nonce, plain, associated)

    def decrypt(self, sealed: bytes, associated: bytes) -> bytes | None:
        """What :meth:`encrypt` sealed, under any of the keys; ``None`` if none opens it."""
        nonce, ciphertext = sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:]
        for cipher in self._ciphers:
            try:
                return cipher.decrypt(nonce, ciphertext, associated)
            except self._invalid_tag:
                continue
        return None


def b64encode(raw: bytes) -> str:
    """URL-safe base64 without padding."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _mac(key: bytes, message: str) -> str:
    return b64encode(hmac.new(key, message.encode("ascii"), hashlib.sha256).digest())


def _derive(name: str, secret: object) -> bytes:
    """The signing key for ``secret``: HMAC(secret, purpose), so keys never serve two uses."""
    if isinstance(secret, str):
        secret = secret.encode("utf-8")
    if not isinstance(secret, bytes) or not secret:
        raise SessionConfigError(f"{name} must be a non-empty str or bytes")
    return hmac.new(secret, _PURPOSE, hashlib.sha256).digest()
