"""The library's clock: the current time in UTC, as BSON stores it.

The mixin reads the clock through the ``session_clock`` application setting (default
:func:`utc_now`), so tests move time instead of sleeping; stores take ``now`` from the caller.
"""

from __future__ import annotations

from datetime import datetime, timezone
from time import time_ns

__all__ = ["as_utc", "utc_now"]


_last: tuple[int, datetime] = (-1, datetime(1970, 1, 1, tzinfo=timezone.utc))
"""The millisecond read last, and its datetime (one tuple: replaced whole, never torn)."""


def utc_now() -> datetime:
    """Return the current UTC time, cut to whole milliseconds (what BSON stores)."""
    global _last
    ms = time_ns() // 1_000_000
    last = _last
    if last[0] == ms:
        # A request reads the clock as it loads and as it saves, and a server answers several
        # requests a millisecond: they share the datetime (immutable), built once.
        return last[1]
    # Seconds as a float: fromtimestamp rounds to the microsecond, and the float is off by far
    # less than half of one (until the year 2200), so the result is a whole millisecond;
    # cheaper than datetime.now() then replace().
    now = datetime.fromtimestamp(ms / 1000, timezone.utc)
    _last = (ms, now)
    return now


def as_utc(value: datetime) -> datetime:
    """Return ``value`` as an aware UTC datetime; a naive one is read as UTC (as BSON does)."""
    if value.tzinfo is timezone.utc:
        return value
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)
