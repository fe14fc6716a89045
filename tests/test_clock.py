"""clock.py: the library's clock, as BSON stores time."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tornado_mongo_session import clock
from tornado_mongo_session.clock import as_utc, utc_now


def test_utc_now_is_aware_utc_in_whole_milliseconds_built_once_a_millisecond(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ns = 1_700_000_000_123_456_789  # 2023-11-14 22:13:20.123456789 UTC
    ticks = iter([ns, ns + 543_210, ns + 543_211, ns + 10**9])
    monkeypatch.setattr(clock, "time_ns", lambda: next(ticks))
    first, same_ms, next_ms, a_second_later = utc_now(), utc_now(), utc_now(), utc_now()
    assert first == datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=timezone.utc)
    assert first.tzinfo is timezone.utc
    assert same_ms is first  # requests within one millisecond share its datetime
    assert next_ms - first == timedelta(milliseconds=1)
    assert a_second_later - first == timedelta(seconds=1)


def test_utc_now_follows_the_real_clock() -> None:
    before = datetime.now(timezone.utc)
    now = utc_now()
    after = datetime.now(timezone.utc)
    assert before - timedelta(milliseconds=1) <= now <= after
    assert now.microsecond % 1000 == 0


def test_as_utc_reads_naive_as_utc_and_converts_other_zones() -> None:
    naive = datetime(2026, 1, 2, 3, 4, 5)
    assert as_utc(naive) == naive.replace(tzinfo=timezone.utc)
    east = datetime(2026, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    assert as_utc(east) == datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert as_utc(east).tzinfo is timezone.utc
