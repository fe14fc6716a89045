"""The save policy: what one request must write, decided without I/O and without tornado.

:func:`plan_save` takes a :class:`SaveContext` (what the request loaded, the session as the
handler left it, the clock's now, the rotator, the settings as :class:`SaveRules`, whether
headers can still be set) and returns an immutable :class:`SavePlan`, or ``None`` when there
is nothing to do. Each decision is a named function below (``should_rotate``,
``should_touch``, …), so it can be read, and tested, on its own; the mixin only carries the
plan out.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, NamedTuple

from tornado_mongo_session.errors import SessionEnded, SessionTooLarge
from tornado_mongo_session.stores.base import NewSession, Rotation, SessionRecord, SessionUpdate

if TYPE_CHECKING:
    from tornado_mongo_session.rotation import TokenRotator
    from tornado_mongo_session.session import Session
    from tornado_mongo_session.settings import SessionSettings

__all__ = [
    "SLOW_REQUEST",
    "SaveContext",
    "SavePlan",
    "SaveRules",
    "TokenVerdict",
    "arrival",
    "judge_token",
    "plan_after_error",
    "plan_save",
]


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


@dataclass(frozen=True, kw_only=True)
class SavePlan:
    """What one request writes, in order: ``save`` (one store call), then ``retire`` (delete the
    record that regenerate/invalidate replaced), then the cookie.

    ``clear_cookie``: expire the client's cookie. ``resend_cookie``: the client's own cookie
    value, sent again to renew its Max-Age when no save sends a new one. ``max_age``: the
    Max-Age of a cookie the plan sends (``None``: a browser-session cookie, or none).
    ``before_response``: the save must finish before the response is sent, whatever the write
    mode (its result travels in the response). ``unsaved_data``: a new session's data was
    dropped, because its cookie could no longer be set (the mixin logs it).
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


class TokenVerdict(enum.Enum):
    """What a token that is no longer kept says about the request that presented it."""

    OPENS = "opens"
    """Still kept, or retired after the request arrived (a slow request, e.g. an upload whose
    body took long, overtaken by rotations from another tab): it was valid when the request
    came, so the request is served as the session's, without rotating."""
    LATE = "late"
    """Retired shortly (within ``reuse_leeway``) before the request arrived: a request that
    was on its way while the browser already received newer tokens. Not served; its cookie is
    not cleared, since the browser's newer one must survive."""
    REUSED = "reused"
    """Retired well before the request arrived: a copy of the cookie is in use beside the one
    that moved on, which only theft explains. The session ends (``reuse_detection="revoke"``)
    or is only logged (``"log"``); either way the request is refused and its cookie cleared."""


SLOW_REQUEST = 0.5
"""Seconds between the arrival of a request's headers and its handler's start above which the
request is judged as of its arrival (a slow body); below, as of its start. Within that margin a
retirement stamped by the clock of another process or host cannot be ordered against the
arrival, and refusing is the safe reading."""


def arrival(now: datetime, elapsed: float) -> datetime:
    """When a request counts as arrived, given ``now`` at its handler's start and the
    ``elapsed`` seconds since its headers came (see :data:`SLOW_REQUEST`)."""
    return now - timedelta(seconds=elapsed) if elapsed >= SLOW_REQUEST else now


def judge_token(loaded: SessionRecord, *, arrived: datetime, rules: SaveRules) -> TokenVerdict:
    """Judge the record's token as of ``arrived``, when the request reached the server.

    A token still kept opens the session; one retired at ``loaded.token_retired_at`` opens it
    only if it was retired after the request arrived (see :class:`TokenVerdict`).
    """
    retired_at = loaded.token_retired_at
    if retired_at is None or retired_at > arrived:
        return TokenVerdict.OPENS
    if retired_at > arrived - rules.reuse_leeway:
        return TokenVerdict.LATE
    return TokenVerdict.REUSED


def plan_save(context: SaveContext) -> SavePlan | None:
    """Decide what this request must write; ``None`` when nothing.

    ``context.cookie_stale``: the request proved its cookie stale (a reused token): only then,
    or at a logout, is the cookie cleared. ``context.cookie_late``: the cookie's token was
    retired moments before the request arrived (:attr:`TokenVerdict.LATE`); the browser holds a
    newer one, so data written to the request's new, empty session is refused
    (:class:`SessionEnded`) rather than stored under a cookie that would replace the good one.
    Raises ``TypeError``/``ValueError`` naming the key for data that can't be stored, and
    :class:`SessionTooLarge` over ``max_session_bytes``; nothing is written then.
    """
    session, loaded = context.session, context.loaded
    if session is not None and session.is_new:
        if (
            context.cookie_late
            and loaded is None
            and should_store_new(session, context.headers_open)
        ):
            raise SessionEnded(
                "this request's session token was replaced by a newer one moments before it "
                "arrived; its data was not saved (a new session would have replaced the "
                "browser's newer cookie)"
            )
        return _plan_new(context, session)
    if loaded is None:
        if context.cookie_stale and should_clear_cookie(context.cookie_in, context.headers_open):
            return SavePlan(now=context.now, clear_cookie=True, before_response=True)
        return None
    return _plan_update(context, loaded)


def plan_after_error(
    *,
    loaded: SessionRecord | None,
    session: Session | None,
    now: datetime,
    headers_open: bool,
) -> SavePlan | None:
    """What a failed response (5xx) still writes: nothing, except a logout.

    A handler that called ``invalidate()`` and then failed has still logged the user out: the
    stored session is deleted and the cookie cleared; data written after the call is dropped.
    """
    if session is None or loaded is None or session.replaced_id != loaded.id:
        return None
    if not session.invalidated:
        return None  # a login that failed leaves the user where they were
    return SavePlan(now=now, retire=loaded, clear_cookie=headers_open, before_response=True)


# -- the decisions -----------------------------------------------------------------------------


def should_store_new(session: Session, headers_open: bool) -> bool:
    """A new session is stored once it holds data or a user, and only while its cookie can be
    set."""
    return headers_open and (len(session) > 0 or session.user_id is not None)


def should_clear_cookie(cookie_in: str | None, headers_open: bool) -> bool:
    """Expire the client's cookie (asked only for a logout, or a cookie proven stale).

    A cookie that merely opened nothing is left alone: its session may have been replaced by a
    login in a concurrent request whose response, carrying the new cookie, can arrive first;
    clearing would log that browser out. Such a cookie costs one load per request until the
    browser replaces it or its Max-Age (the session's deadline) ends.
    """
    return headers_open and bool(cookie_in)


def should_rotate(
    loaded: SessionRecord, rotator: TokenRotator, now: datetime, headers_open: bool
) -> bool:
    """Rotate when the rotator says the token is due, only for a request that presented the
    newest token, and only while the new cookie can still reach the client.

    Newest only: a request carrying an older, still kept token was sent before the browser
    received the newest one, so that rotation chains no faster than responses reach the
    browser, and concurrent requests never rotate each other's tokens out (in one process or
    many). A thief's copy that the victim moved past can never earn fresh tokens.
    """
    return (
        headers_open
        and loaded.token_newest
        and rotator.rotates  # a rotator that never rotates is not asked, on every request
        and rotator.should_rotate(rotated_at=loaded.rotated_at, now=now)
    )


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


def kept_creation(session: Session, now: datetime) -> datetime:
    """The creation time a new session is stored with: a regenerated session keeps its
    original one, so that ``regenerate()`` never moves the absolute deadline; a brand-new or
    invalidated one starts ``now``."""
    created = session.created_at
    if session.regenerated and not session.invalidated and created is not None:
        return created
    return now


def must_precede_response(update: SessionUpdate) -> bool:
    """A rotation's new cookie, and a cookie-held session's data, travel only in the response."""
    return update.rotation is not None or update.loaded.in_cookie


def check_size(session: Session, rules: SaveRules) -> None:
    """Raise :class:`SessionTooLarge` when the encoded data is over ``max_session_bytes``."""
    limit = rules.max_session_bytes
    if session.size_bound() <= limit:
        return
    size = session.encoded_size()
    if size > limit:
        raise SessionTooLarge(
            f"session data is {size} bytes encoded, over max_session_bytes={limit}; "
            "nothing was written",
            size=size,
            limit=limit,
        )


# -- the two plans -----------------------------------------------------------------------------


def _plan_new(context: SaveContext, session: Session) -> SavePlan | None:
    """A session new in this request: brand new, or replacing the loaded one (regenerate or
    invalidate), which is retired after the new one is stored."""
    loaded, now, rules = context.loaded, context.now, context.rules
    headers_open = context.headers_open
    retire = loaded if loaded is not None and session.replaced_id == loaded.id else None
    if should_store_new(session, headers_open):
        data, _removed = session.changes()  # every key, each value checked
        check_size(session, rules)
        created = kept_creation(session, now)
        new = NewSession(
            data=data,
            created_at=created,
            now=now,
            expires_at=rules.deadline(created, now),
            session_id=session.id,
            promote=session.regenerated,
            user_id=session.user_id,
            ip=session.ip,
            user_agent=session.user_agent,
        )
        max_age = rules.max_age(new.expires_at, now)
        return SavePlan(now=now, save=new, retire=retire, max_age=max_age, before_response=True)
    # The cookie could not be set: the data (or the user) has nowhere to go.
    unsaved = len(session) > 0 or session.user_id is not None
    clear = (retire is not None or context.cookie_stale) and should_clear_cookie(
        context.cookie_in, headers_open
    )
    if retire is None and not clear and not unsaved:
        return None
    return SavePlan(
        now=now, retire=retire, clear_cookie=clear, before_response=clear, unsaved_data=unsaved
    )


def _plan_update(context: SaveContext, loaded: SessionRecord) -> SavePlan | None:
    """A session this request loaded, untouched by the handler when ``context.session`` is
    ``None`` (nothing can have changed, but the token may be due and the expiry pushed)."""
    session, now, rotator, rules = context.session, context.now, context.rotator, context.rules
    cookie_in, headers_open = context.cookie_in, context.headers_open
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
        resend_cookie=cookie_in if resend else None,
        max_age=rules.max_age(update.expires_at, now),
        before_response=must_precede_response(update),
    )
