"""Token rotation policies: when a session's token is replaced, and how many stay valid."""

from __future__ import annotations

import abc
from datetime import datetime, timedelta

__all__ = ["IntervalRotator", "NeverRotator", "TokenRotator"]


class TokenRotator(abc.ABC):
    """Decides when a session's token is replaced by a new one.

    Subclass it to write your own policy. ``keep`` is how many of the newest tokens stay valid
    after a rotation (the oldest is evicted first); it must be at least 1. The rotator does no
    I/O and must not keep per-session state: the mixin calls it once per loaded session.
    """

    keep: int
    rotates: bool = True
    """False for a policy that never replaces a token: the mixin may then resend the client's
    own cookie to renew its Max-Age, since no newer token can exist for it to clobber."""

    @abc.abstractmethod
    def should_rotate(self, *, rotated_at: datetime, now: datetime) -> bool:
        """Tell whether a token issued at ``rotated_at`` is due for replacement at ``now``."""


class IntervalRotator(TokenRotator):
    """Rotate once the current token is ``every`` seconds old; keep the ``keep`` newest tokens.

    The default policy, built from ``token_ttl`` and ``tokens_kept``. A stolen token is refused
    once ``keep`` rotations have happened after it, that is within ``every * keep`` seconds of
    the victim's next requests.
    """

    def __init__(self, every: float = 5.0, keep: int = 3) -> None:
        if every <= 0:
            raise ValueError(f"IntervalRotator: every must be > 0 seconds, got {every!r}")
        if keep < 1:
            raise ValueError(f"IntervalRotator: keep must be >= 1, got {keep!r}")
        self.every = timedelta(seconds=every)
        self.keep = keep

    def should_rotate(self, *, rotated_at: datetime, now: datetime) -> bool:
        return now - rotated_at >= self.every

    def __repr__(self) -> str:
        return f"IntervalRotator(every={self.every.total_seconds()!r}, keep={self.keep!r})"


class NeverRotator(TokenRotator):
    """Never rotate: one token for the session's life (TLS sites that want fewer writes).

    ``session.regenerate()`` still issues a new id and token.
    """

    rotates = False

    def __init__(self) -> None:
        self.keep = 1

    def should_rotate(self, *, rotated_at: datetime, now: datetime) -> bool:
        return False

    def __repr__(self) -> str:
        return "NeverRotator()"
