"""CookieSessionStore: the whole session in a signed, optionally encrypted, cookie.

No server holds anything: a load verifies the cookie, a save writes a new one. That makes it
free (zero database commands) and unrevocable: a cookie stays valid until the ``expires_at``
signed into it, whatever happens on the server. Use it for data that needs no protection beyond
integrity (anonymous carts, preferences), or through
:class:`~tornado_mongo_session.stores.tiered.TieredSessionStore`.

The cookie value is ``c2.<key version>.<body>.<signature>`` (``stores/_cookie_format.py``
describes it); its BSON payload is ``stores/_cookie_payload.py``'s. The keys are in
``stores/_cookie_keys.py``.
"""

from __future__ import annotations

import binascii
import logging
import zlib
from collections import OrderedDict
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from bson.errors import BSONError

from tornado_mongo_session._bson import decode, encode_for_store
from tornado_mongo_session.clock import as_utc
from tornado_mongo_session.errors import SessionConfigError, SessionTooLarge
from tornado_mongo_session.stores._cookie_format import PREFIX, binding, seal, unseal
from tornado_mongo_session.stores._cookie_keys import Ciphers, CookieSecret, SigningKeys
from tornado_mongo_session.stores._cookie_payload import payload_of, record_of
from tornado_mongo_session.stores._user_sessions import UserSession
from tornado_mongo_session.stores.base import NewSession, SaveResult, SessionRecord, SessionUpdate

__all__ = ["CookieSecret", "CookieSessionStore"]

log = logging.getLogger("tornado_mongo_session.cookie")

_CANNOT_REVOKE = (
    "CookieSessionStore cannot list or revoke sessions: each lives only in its signed cookie, "
    "valid until its own expiry. Use MongoSessionStore, or TieredSessionStore, which keeps the "
    "sessions bound to a user on the server"
)
_OPENED_KEPT = 1024  # the cookie values whose verified sessions are kept, most recent first


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

    ``cookie_name`` and ``purpose`` are signed into every value (as Tornado signs a cookie's
    name into its signed values): a value made for another cookie name or purpose, by another
    app sharing the secret for instance, never opens here. ``cookie_name`` must be the name the
    cookie travels under (:meth:`from_application_settings` takes it from ``session_settings``).

    A tampered, truncated or malformed cookie, one signed with an unknown key version or another
    secret, one made for another cookie name or purpose, one of the format before version 2
    (which signed no name), and one whose signed ``expires_at`` has passed all load as
    ``None``: never an error (a new session).
    ``delete`` is a no-op: a cookie cannot be revoked; the mixin expires it in the browser.

    Round trips: none. The sessions of the last 1024 cookie values opened are kept, so a value
    sent again is not verified and decoded again (its expiry is checked every time).
    """

    waits_for_io = False
    """Its methods never wait for I/O: the mixin saves within ``finish()``, without a task."""

    def __init__(
        self,
        secret: CookieSecret,
        *,
        key_version: int | None = None,
        encryption_key: bytes | list[bytes] | tuple[bytes, ...] | None = None,
        compress: bool = True,
        max_cookie_bytes: int = 4096,
        cookie_name: str = "session",
        purpose: str = "session",
    ) -> None:
        self._keys = SigningKeys(secret, key_version)
        if max_cookie_bytes < 256:
            raise SessionConfigError(f"max_cookie_bytes must be >= 256, got {max_cookie_bytes!r}")
        self.max_cookie_bytes = max_cookie_bytes
        self.cookie_name = cookie_name
        self.purpose = purpose
        self._bound_to = binding(cookie_name, purpose)
        self.compress = compress
        self._ciphers = None if encryption_key is None else Ciphers(encryption_key)
        # Cookie values opened lately, by value: a signed value always opens to the same
        # session, and a browser sends the same one again and again until it changes.
        self._opened: OrderedDict[str, SessionRecord] = OrderedDict()

    @property
    def key_version(self) -> int:
        """The key version new cookies are signed with."""
        return self._keys.version

    @classmethod
    def from_application_settings(
        cls, app_settings: Mapping[str, Any], **kwargs: Any
    ) -> CookieSessionStore:
        """Build a store from a Tornado application's settings.

        Reads ``cookie_secret`` (required) and ``key_version``, and the cookie name from
        ``session_settings`` when present (its ``effective_cookie_name``: with the ``__Host-``
        prefix when it applies); ``kwargs`` go to the constructor. Raises
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
        cookie_name = getattr(session_settings, "effective_cookie_name", None)
        if isinstance(cookie_name, str):
            kwargs.setdefault("cookie_name", cookie_name)
        return cls(secret, **kwargs)

    @property
    def encrypted(self) -> bool:
        """True when payloads are encrypted (an ``encryption_key`` was given)."""
        return self._ciphers is not None

    def owns(self, cookie_value: str) -> bool:
        """Tell whether ``cookie_value`` has this store's form (not whether it is valid)."""
        return cookie_value.startswith(PREFIX)

    # -- the SessionStore protocol -----------------------------------------------------------

    async def load(self, cookie_value: str, *, now: datetime) -> SessionRecord | None:
        opened = self._opened.get(cookie_value)
        if opened is None:
            opened = self._record(cookie_value)
            if opened is None:
                return None
            self._opened[cookie_value] = opened
            if len(self._opened) > _OPENED_KEPT:
                self._opened.popitem(last=False)
        else:
            self._opened.move_to_end(cookie_value)
        if opened.expires_at <= as_utc(now):
            return None
        return SessionRecord(
            id=opened.id,
            data=dict(opened.data),  # its values are shared: nothing changes them in place
            created_at=opened.created_at,
            accessed_at=opened.accessed_at,
            rotated_at=opened.rotated_at,
            expires_at=opened.expires_at,
            in_cookie=True,
            user_id=opened.user_id,
            size=opened.size,
        )

    async def save(self, request: NewSession | SessionUpdate) -> SaveResult:
        """Encode the whole session into a new cookie value; raises SessionTooLarge over the limit.

        A requested rotation only re-signs the cookie with a new ``rotated_at``: earlier cookies
        stay valid until their own ``expires_at``.
        """
        payload = payload_of(request)
        rotated = isinstance(request, NewSession) or request.rotation is not None
        return SaveResult(
            session_id=request.session_id, cookie_value=self._seal(payload), rotated=rotated
        )

    async def delete(self, record: SessionRecord) -> None:
        """Nothing to delete: the mixin expires the cookie in the browser."""

    # -- the sessions of a user: impossible here ---------------------------------------------

    async def list_user_sessions(
        self, user_id: str, *, current: str | None = None
    ) -> list[UserSession]:
        """Raises :class:`SessionConfigError`: no server knows which cookies a user holds."""
        raise SessionConfigError(_CANNOT_REVOKE)

    async def revoke_session(self, handle: str, *, user_id: str | None = None) -> bool:
        """Raises :class:`SessionConfigError`: a signed cookie cannot be revoked."""
        raise SessionConfigError(_CANNOT_REVOKE)

    async def revoke_user(self, user_id: str, *, keep: str | None = None) -> int:
        """Raises :class:`SessionConfigError`: a signed cookie cannot be revoked."""
        raise SessionConfigError(_CANNOT_REVOKE)

    # -- the format ---------------------------------------------------------------------------

    def _seal(self, payload: dict[str, Any]) -> str:
        plain = encode_for_store(payload, data_key="d", what="cookie encoding")
        value = seal(
            plain, self._keys, self._ciphers, compress=self.compress, bound_to=self._bound_to
        )
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

    def _record(self, value: str) -> SessionRecord | None:
        """The session a cookie value holds, verified; None for anything else. Never raises."""
        try:
            plain = unseal(value, self._keys, self._ciphers, bound_to=self._bound_to)
            if plain is None:
                return None
            payload = decode(plain)
        except (ValueError, binascii.Error, zlib.error, BSONError, IndexError):
            log.warning("a validly signed session cookie could not be decoded; ignored")
            return None
        record = record_of(payload, size=len(plain))  # the payload holds the data, and more
        if record is None:
            log.warning("a validly signed session cookie has a malformed payload; ignored")
        return record
