"""A store's outage gate: once the server is known to be unreachable, fail at once and probe.

Without it, every request during an outage waits the driver's whole server-selection timeout
(5 s by default) before its 503, and logs the driver's chained traceback. With it, the first
failure opens the gate (one traceback in the log, for the whole outage); from then on, calls
raise :class:`SessionStoreUnavailable` at once while one background task probes the server;
the first probe that answers closes the gate (one line in the log). No tornado: a store owns
it, on whatever asyncio loop the store is used from.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from tornado_mongo_session.errors import SessionStoreUnavailable

__all__ = ["OutageGate"]

log = logging.getLogger("tornado_mongo_session.outage")

_PROBE_PAUSE = 0.05  # seconds between a failed probe and the next: probes already wait


class OutageGate:
    """Open while the server is known to be down; ``probe`` is awaited until it succeeds.

    ``probe`` must wait for the server at most about the driver's server-selection timeout (a
    ``ping`` does); the driver rechecks a returning server about every half second while one
    waits, so the gate closes within about a second of the server's return.
    """

    def __init__(self, probe: Callable[[], Awaitable[object]]) -> None:
        self._probe = probe
        self._down_since: float | None = None
        self._refused = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def is_open(self) -> bool:
        """True while the server is known to be unreachable."""
        return self._down_since is not None

    def check(self, what: str) -> None:
        """Raise :class:`SessionStoreUnavailable` at once while the server is known to be down."""
        since = self._down_since
        if since is None:
            return
        self._refused += 1
        self._ensure_probing()
        raise SessionStoreUnavailable(
            f"session store unreachable for {time.monotonic() - since:.1f} s (checked in the "
            f"background); {what} not sent"
        )

    def tripped(self, exc: BaseException) -> None:
        """Open the gate after ``exc`` (the driver's connection failure); logs its traceback
        once per outage."""
        if self._down_since is not None:
            return
        self._down_since = time.monotonic()
        self._refused = 0
        log.error(
            "session store unreachable: %s; until it answers again, requests that need it get "
            "503 at once, while the server is probed in the background",
            exc,
            exc_info=exc,
        )
        self._ensure_probing()

    def close(self) -> None:
        """Stop probing (the store is being closed)."""
        if self._task is not None:
            self._task.cancel()
            self._task = None

    def _ensure_probing(self) -> None:
        task = self._task
        if task is not None and not task.done() and task.get_loop() is _running_loop():
            return
        # Held here: the loop keeps only a weak reference to a task.
        self._task = asyncio.get_running_loop().create_task(self._probe_until_up())

    async def _probe_until_up(self) -> None:
        while self._down_since is not None:
            try:
                await self._probe()
            except Exception:  # still down: every failure means the same, none is logged
                await asyncio.sleep(_PROBE_PAUSE)
                continue
            log.warning(
                "session store reachable again after %.1f s down (%d calls refused meanwhile)",
                time.monotonic() - self._down_since,
                self._refused,
            )
            self._down_since = None


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
