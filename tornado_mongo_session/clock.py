"""The library's clock: the current time in UTC, as BSON stores it.

The mixin reads the clock through the ``session_clock`` application setting (default
:func:`utc_now`), so tests move time instead of sleeping; stores take ``now`` from the caller.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

__all__ = ["as_utc", "utc_now"]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def utc_now() -> datetime:
    """Return the current UTC time, cut to whole milliseconds (what BSON stores)."""
    # Integer milliseconds: exact, and cheaper than datetime.now() then replace().
    return _EPOCH + timedelta(milliseconds=time.time_ns() // 1_000_000)


def as_utc(value: datetime) -> datetime:
    """Return ``value`` as an aware UTC datetime; a naive one is read as UTC (as BSON does)."""
    if value.tzinfo is timezone.utc:
        return value
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)
