"""The save policy's decisions, one named function each: store a new session, rotate, touch,
resend or clear the cookie, save before the response, and the size limit."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from tornado_mongo_session.errors import SessionTooLarge
from tornado_mongo_session.policy._records import SaveRules
from tornado_mongo_session.stores.base import SessionRecord, SessionUpdate

if TYPE_CHECKING:
    from tornado_mongo_session.rotation import TokenRotator
    from tornado_mongo_session.session import Session

__all__ = [
    "check_size",
    "kept_creation",
    "must_precede_response",
    "nothing_due",
    "should_clear_cookie",
    "should_resend_cookie",
    "should_rotate",
    "should_store_new",
    "should_touch",
]


def nothing_due(
    loaded: SessionRecord,
    session: Session | None,
    now: datetime,
    rotator: TokenRotator,
    rules: SaveRules,
) -> bool:
    """The most common request, told at the least cost: it loaded a session, the handler
    changed nothing (it never touched the session, or only read values that cannot change in
    place), and neither a touch nor a rotation is due. Then there is nothing to write; ``False``
    means "ask :func:`~tornado_mongo_session.policy.plan_save`" (which may still answer
    nothing). Costs no :class:`SaveContext`: the mixin asks it first, on every such request.
    """
    if session is not None and not session.unchanged:
        return False
    if should_touch(loaded, now, rules):
        return False
    return not (
        loaded.token_newest
        and rotator.rotates
        and rotator.should_rotate(rotated_at=loaded.rotated_at, now=now)
    )


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
