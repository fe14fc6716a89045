"""The plans: :func:`plan_save` for a response about to go out (a new session's, or an update
of the loaded one), :func:`plan_after_error` for a failed one."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from tornado_mongo_session.errors import SessionEnded
from tornado_mongo_session.policy._decisions import (
    check_size,
    kept_creation,
    must_precede_response,
    should_clear_cookie,
    should_resend_cookie,
    should_rotate,
    should_store_new,
    should_touch,
)
from tornado_mongo_session.policy._records import SaveContext, SavePlan
from tornado_mongo_session.stores.base import NewSession, Rotation, SessionRecord, SessionUpdate

if TYPE_CHECKING:
    from tornado_mongo_session.session import Session

__all__ = ["plan_after_error", "plan_save"]


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
