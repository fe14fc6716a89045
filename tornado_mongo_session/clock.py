"""The library's clock: the current time in UTC, as BSON stores it.

The mixin reads the clock through the ``session_clock`` application setting (default
:func:`utc_now`), so tests move time instead of sleeping; stores take ``now`` from the caller.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

__all__ = ["as_utc", "utc_now"]


def utc_now() -> datetime:
    """Return the current UTC time, cut to whole milliseconds (what BSON stores)."""
    # Whole milliseconds, then seconds as a float: fromtimestamp rounds to the microsecond, and
    # the float is off by far less than half of one (until the year 2200), so the result is a
    # whole millisecond; cheaper than datetime.now() then replace().
    return datetime.fromtimestamp(time.time_ns() // 1_000_000 / 1000, timezone.utc)


def as_utc(value: datetime) -> datetime:
    """Return ``value`` as an aware UTC datetime; a naive one is read as UTC (as BSON does)."""
    if value.tzinfo is timezone.utc:
        return value
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)
