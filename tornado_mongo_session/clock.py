"""The library's clock: the current time in UTC, as BSON stores it.

The mixin reads the clock through the ``session_clock`` application setting (default
:func:`utc_now`), so tests move time instead of sleeping; stores take ``now`` from the caller.
"""

from __future__ import annotations

from datetime import datetime, timezone

__all__ = ["as_utc", "utc_now"]


def utc_now() -> datetime:
    """Return the current UTC time, cut to whole milliseconds (what BSON stores)."""
    now = datetime.now(timezone.utc)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def as_utc(value: datetime) -> datetime:
    """Return ``value`` as an aware UTC datetime; a naive one is read as UTC (as BSON does)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)
