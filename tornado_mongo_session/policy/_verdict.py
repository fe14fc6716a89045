"""What a token that is no longer kept says about the request that presented it: judged as
of the request's arrival, at load, before the handler runs."""

from __future__ import annotations

import enum
from datetime import datetime, timedelta

from tornado_mongo_session.policy._records import SaveRules
from tornado_mongo_session.stores.base import SessionRecord

__all__ = ["SLOW_REQUEST", "TokenVerdict", "arrival", "judge_token"]


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
