"""The policy's records: the settings it reads (:class:`SaveRules`), what it is told about a
request (:class:`SaveContext`) and what it answers (:class:`SavePlan`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, NamedTuple

from tornado_mongo_session.stores.base import NewSession, SessionRecord, SessionUpdate

if TYPE_CHECKING:
    from tornado_mongo_session.rotation import TokenRotator
    from tornado_mongo_session.session import Session
    from tornado_mongo_session.settings import SessionSettings

__all__ = ["SaveContext", "SavePlan", "SaveRules"]


@dataclass(frozen=True)
class SaveRules:
    """The settings the policy reads, converted once per application."""

    idle: timedelta
    absolute: timedelta | None
    touch: timedelta
    max_session_bytes: int
    persistent_cookie: bool
    reuse_leeway: timedelta = timedelta(seconds=30)
    revoke_on_reuse: bool = True

    @classmethod
    def from_settings(cls, settings: SessionSettings) -> SaveRules:
        absolute = settings.absolute_timeout
        return cls(
            idle=timedelta(seconds=settings.idle_timeout),
            absolute=None if absolute is None else timedelta(seconds=absolute),
            touch=timedelta(seconds=settings.touch_interval),
            max_session_bytes=settings.max_session_bytes,
            persistent_cookie=settings.persistent_cookie,
            reuse_leeway=timedelta(seconds=settings.reuse_leeway),
            revoke_on_reuse=settings.reuse_detection == "revoke",
        )

    def max_age(self, expires_at: datetime, now: datetime) -> int | None:
        """The cookie's Max-Age for that deadline; ``None`` for a browser-session cookie."""
        if not self.persistent_cookie:
            return None
        return max(0, int((expires_at - now).total_seconds()))

    def deadline(self, created_at: datetime, now: datetime) -> datetime:
        """The earlier of the idle and the absolute deadline."""
        idle = now + self.idle
        if self.absolute is None:
            return idle
        return min(idle, created_at + self.absolute)


class SavePlan(NamedTuple):
    """What one request writes, in order: ``save`` (one store call), then ``retire`` (delete the
    record that regenerate/invalidate replaced), then the cookie.

    ``clear_cookie``: expire the client's cookie. ``resend_cookie``: the client's own cookie
    value, sent again to renew its Max-Age when no save sends a new one. ``max_age``: the
    Max-Age of a cookie the plan sends (``None``: a browser-session cookie, or none).
    ``before_response``: the save must finish before the response is sent, whatever the write
    mode (its result travels in the response). ``unsaved_data``: a new session's data was
    dropped, because its cookie could no longer be set (the mixin logs it).

    A named tuple, as :class:`SaveContext` is: immutable, and built on every request that
    writes at a fraction of a frozen dataclass's cost. Build it with keywords.
    """

    now: datetime
    save: NewSession | SessionUpdate | None = None
    retire: SessionRecord | None = None
    clear_cookie: bool = False
    resend_cookie: str | None = None
    max_age: int | None = None
    before_response: bool = False
    unsaved_data: bool = False


class SaveContext(NamedTuple):
    """What the policy is given about one request, as its response is about to go out.

    ``loaded``: the record the request's cookie opened. ``session``: the session object, if the
    handler touched it. ``cookie_in``: the cookie value the request carried. ``headers_open``:
    whether a cookie can still be set.
    """

    loaded: SessionRecord | None
    session: Session | None
    cookie_in: str | None
    now: datetime
    rotator: TokenRotator
    rules: SaveRules
    headers_open: bool
    cookie_stale: bool = False
    cookie_late: bool = False
