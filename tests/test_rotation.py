"""rotation.py: the policies decide from times alone."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tornado_mongo_session import IntervalRotator, NeverRotator, TokenRotator

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def test_interval_rotator() -> None:
    rotator = IntervalRotator(every=5, keep=3)
    assert rotator.keep == 3
    assert not rotator.should_rotate(rotated_at=T0, now=T0 + timedelta(seconds=4.999))
    assert rotator.should_rotate(rotated_at=T0, now=T0 + timedelta(seconds=5))
    assert "every=5" in repr(rotator)


@pytest.mark.parametrize(("every", "keep"), [(0, 3), (-1, 3), (5, 0)])
def test_interval_rotator_refuses_bad_values(every: float, keep: int) -> None:
    with pytest.raises(ValueError, match=r"every|keep"):
        IntervalRotator(every=every, keep=keep)


def test_never_rotator() -> None:
    rotator = NeverRotator()
    assert rotator.keep == 1
    assert not rotator.should_rotate(rotated_at=T0, now=T0 + timedelta(days=3650))


def test_custom_rotator_must_implement_should_rotate() -> None:
    class Incomplete(TokenRotator):
        pass

    with pytest.raises(TypeError):
        Incomplete()  # type: ignore[abstract]
