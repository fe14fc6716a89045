"""The cookie store's payload: what a session is inside its cookie, as a BSON document.

``{i: id, d: data, c: created_at, a: accessed_at, r: rotated_at, e: expires_at}``, and
``u: user id`` when one is bound (one-letter names: every byte counts against the 4 KB
limit). Sealing it (signature, compression, encryption) is ``_cookie_format.py``'s job.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tornado_mongo_session.clock import as_utc
from tornado_mongo_session.stores.base import NewSession, SessionRecord, SessionUpdate

__all__ = ["payload_of", "record_of"]


def payload_of(request: NewSession | SessionUpdate) -> dict[str, Any]:
    """The payload of the session as ``request`` leaves it."""
    payload = {
        "i": request.session_id,
        "d": dict(request.data),
        "c": request.created_at,
        "a": request.now,
        "r": request.rotated_at,
        "e": request.expires_at,
    }
    if request.user_id is not None:
        payload["u"] = request.user_id
    return payload


def record_of(payload: dict[str, Any], *, size: int) -> SessionRecord | None:
    """The session a verified payload holds (``size``: a bound of its data's BSON size);
    ``None`` for a malformed one."""
    try:
        return SessionRecord(
            id=str(payload["i"]),
            data=dict(payload["d"]),
            created_at=_as_datetime(payload["c"]),
            accessed_at=_as_datetime(payload["a"]),
            rotated_at=_as_datetime(payload["r"]),
            expires_at=_as_datetime(payload["e"]),
            in_cookie=True,
            user_id=_as_user_id(payload.get("u")),
            size=size,
        )
    except (KeyError, TypeError, ValueError):
        return None


def _as_datetime(value: object) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError("not a datetime")
    return as_utc(value)


def _as_user_id(value: object) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError("not a str")
    return value
