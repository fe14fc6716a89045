"""Per-key asyncio locks that vanish when nobody holds or waits for them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

__all__ = ["KeyedLocks"]


class KeyedLocks:
    """Serialize the coroutines of one process that work on the same key.

    Why the document stores keep it: on FerretDB 1.24, whose updates are not atomic, it keeps
    deltas and rotation exact within one process. (It used to keep a short ``token_ttl`` from
    logging in-flight requests out; rotating only for the newest token does that now, measured
    with and without it.) Across processes only the server's atomic updates make them exact.
    Costs no round trip.
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
