"""The save policy: what one request must write, decided without I/O and without tornado.

:func:`plan_save` takes what the request loaded, the session as the handler left it, the
clock's now, the rotator, the settings (:class:`SaveRules`) and whether headers can still be
set, and returns an immutable :class:`SavePlan`, or ``None`` when there is nothing to do. Each
decision is a named function below (``should_rotate``, ``should_touch``, …), so it can be read,
and tested, on its own; the mixin only carries the plan out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from tornado_mongo_session.errors import SessionTooLarge
from tornado_mongo_session.stores.base import NewSession, Rotation, SessionRecord, SessionUpdate

if TYPE_CHECKING:
    from tornado_mongo_session.rotation import TokenRotator
    from tornado_mongo_session.session import Session
    from tornado_mongo_session.settings import SessionSettings

__all__ = ["SavePlan", "SaveRules", "plan_save"]


@dataclass(frozen=True)
class SaveRules:
    """The settings the policy reads, converted once per application."""

    idle: timedelta
    absolute: timedelta | None
    touch: timedelta
    max_session_bytes: int
    persistent_cookie: bool

    @classmethod
    def from_settings(cls, settings: SessionSettings) -> SaveRules:
        absolute = settings.absolute_timeout
        return cls(
            idle=timedelta(seconds=settings.idle_timeout),
            absolute=None if absolute is None else timedelta(seconds=absolute),
            touch=timedelta(seconds=settings.touch_interval),
            max_session_bytes=settings.max_session_bytes,
            persistent_cookie=settings.persistent_cookie,
        )

    def deadline(self, created_at: datetime, now: datetime) -> datetime:
        """The earlier of the idle and the absolute deadline."""
        idle = now + self.idle
        if self.absolute is None:
            return idle
        return min(idle, created_at + self.absolute)


@dataclass(frozen=True, kw_only=True)
class SavePlan:
    """What one request writes, in order: ``save`` (one store call), then ``retire`` (delete the
    record that regenerate/invalidate replaced), then the cookie.

    ``clear_cookie``: expire the client's cookie. ``resend_cookie``: the client's own cookie
    value, sent again to renew its Max-Age when no save sends a new one. ``before_response``:
    the save must finish before the response is sent, whatever the write mode (its result
    travels in the response). ``unsaved_data``: a new session's data was dropped, because its
    cookie could no longer be set (the mixin logs it).
    """

    now: datetime
    save: NewSession | SessionUpdate | None = None
    retire: SessionRecord | None = None
    clear_cookie: bool = False
    resend_cookie: str | None = None
    before_response: bool = False
    unsaved_data: bool = False

    @property
    def expires_at(self) -> datetime | None:
        return None if self.save is None else self.save.expires_at


def plan_save(
    *,
    loaded: SessionRecord | None,
    session: Session | None,
    cookie_in: str | None,
    now: datetime,
    rotator: TokenRotator,
    rules: SaveRules,
    headers_open: bool,
) -> SavePlan | None:
    """Decide what this request must write; ``None`` when nothing.

    ``loaded`` is the record the request's cookie opened, ``session`` the session object if the
    handler touched it, ``cookie_in`` the cookie value the request carried. Raises
    ``TypeError``/``ValueError`` naming the key for data that can't be stored, and
    :class:`SessionTooLarge` over ``max_session_bytes``; nothing is written then.
    """
    if session is not None and session.is_new:
        return _plan_new(loaded, session, cookie_in, now, rules, headers_open)
    if loaded is None:
        return None
    return _plan_update(loaded, session, cookie_in, now, rotator, rules, headers_open)


# -- the decisions -----------------------------------------------------------------------------


def should_store_new(session: Session, headers_open: bool) -> bool:
    """A new session is stored once it holds data or a user, and only while its cookie can be
    set."""
    return headers_open and (len(session) > 0 or session.user_id is not None)


def should_clear_cookie(cookie_in: str | None, headers_open: bool) -> bool:
    """A cookie that opened no session (or whose session ended) is expired, so the client
    stops costing a load."""
    return headers_open and bool(cookie_in)


def should_rotate(
    loaded: SessionRecord, rotator: TokenRotator, now: datetime, headers_open: bool
) -> bool:
    """Rotate when the rotator says the token is due, and only while the new cookie can still
    reach the client."""
    return headers_open and rotator.should_rotate(rotated_at=loaded.rotated_at, now=now)


def should_touch(loaded: SessionRecord, now: datetime, rules: SaveRules) -> bool:
    """Push an unchanged session's expiry forward at most once per ``touch_interval``."""
    return now - loaded.accessed_at >= rules.touch


def should_resend_cookie(
    rotator: TokenRotator, rules: SaveRules, cookie_in: str | None, headers_open: bool
) -> bool:
    """Renew a persistent cookie's Max-Age by sending the client's own value again.

    Only with a rotator that never rotates: otherwise a newer token may exist, and resending the
    older one could clobber it (rotation renews the Max-Age instead).
    """
    return not rotator.rotates and headers_open and rules.persistent_cookie and bool(cookie_in)


def must_precede_response(update: SessionUpdate) -> bool:
    """A rotation's new cookie, and a cookie-held session's data, travel only in the response."""
    return update.rotation is not None or update.loaded.in_cookie


def check_size(session: Session, rules: SaveRules) -> None:
    """Raise :class:`SessionTooLarge` when the encoded data is over ``max_session_bytes``."""
    size, limit = session.encoded_size(), rules.max_session_bytes
    if size > limit:
        raise SessionTooLarge(
            f"session data is {size} bytes encoded, over max_session_bytes={limit}; "
            "nothing was written",
            size=size,
            limit=limit,
        )


# -- the two plans -----------------------------------------------------------------------------


def _plan_new(
    loaded: SessionRecord | None,
    session: Session,
    cookie_in: str | None,
    now: datetime,
    rules: SaveRules,
    headers_open: bool,
) -> SavePlan | None:
    """A session new in this request: brand new, or replacing ``loaded`` (regenerate or
    invalidate), which is retired after the new one is stored."""
    retire = loaded if loaded is not None and session.replaced_id == loaded.id else None
    if should_store_new(session, headers_open):
        data, _removed = session.changes()  # every key, each value checked
        check_size(session, rules)
        new = NewSession(
            data=data,
            created_at=now,
            now=now,
            expires_at=rules.deadline(now, now),
            session_id=session.id,
            promote=session.regenerated,
            user_id=session.user_id,
            ip=session.ip,
            user_agent=session.user_agent,
        )
        return SavePlan(now=now, save=new, retire=retire, before_response=True)
    # The cookie could not be set: the data (or the user) has nowhere to go.
    unsaved = len(session) > 0 or session.user_id is not None
    clear = should_clear_cookie(cookie_in, headers_open)
    if retire is None and not clear and not unsaved:
        return None
    return SavePlan(
        now=now, retire=retire, clear_cookie=clear, before_response=clear, unsaved_data=unsaved
    )


def _plan_update(
    loaded: SessionRecord,
    session: Session | None,
    cookie_in: str | None,
    now: datetime,
    rotator: TokenRotator,
    rules: SaveRules,
    headers_open: bool,
) -> SavePlan | None:
    """A session this request loaded; ``session`` is ``None`` when the handler never touched
    it (nothing can have changed, but the token may be due and the expiry may be pushed)."""
    changed, removed = session.changes() if session is not None else ({}, [])
    if session is not None and (changed or removed):
        check_size(session, rules)
    rotate = should_rotate(loaded, rotator, now, headers_open)
    if not (changed or removed or rotate or should_touch(loaded, now, rules)):
        return None
    update = SessionUpdate(
        loaded=loaded,
        now=now,
        expires_at=rules.deadline(loaded.created_at, now),
        changed=changed,
        removed=tuple(removed),
        rotation=Rotation(keep=rotator.keep) if rotate else None,
    )
    resend = should_resend_cookie(rotator, rules, cookie_in, headers_open)
    return SavePlan(
        now=now,
        save=update,
        before_response=must_precede_response(update),
        resend_cookie=cookie_in if resend else None,
    )
