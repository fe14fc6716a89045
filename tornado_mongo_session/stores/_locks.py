"""Per-key asyncio locks that vanish when nobody holds or waits for them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

__all__ = ["KeyedLocks"]


class KeyedLocks:
    """Serialize the coroutines of one process that work on the same key.

    Why the Mongo store wants it: FerretDB 1.24 applies an update as read, modify in memory,
    write the whole document back, so two concurrent updates of one document can lose each
    other's fields and a compare-and-set filter is not atomic. Serializing the writes to one
    session inside a process makes deltas and rotation exact there; MongoDB itself makes them
    exact across processes too. Costs no round trip.
    """

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)
