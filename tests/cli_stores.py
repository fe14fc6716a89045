"""Stores for ``tornado-session --store cli_stores:<name>`` in tests/test_cli.py (put on
PYTHONPATH by the test): a Mongo store that lacks the user methods, whatever the library
grows, and a third-party store that has them, to check what the CLI does with their answers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from tornado_mongo_session import MongoSessionStore, SessionSettings


class BasicStore:
    """Only the SessionStore protocol (load, save, delete) over a real Mongo store."""

    def __init__(self, inner: MongoSessionStore) -> None:
        self._inner = inner
        self.load = inner.load
        self.save = inner.save
        self.delete = inner.delete

    async def close(self) -> None:
        await self._inner.close()


def basic(settings: SessionSettings) -> BasicStore:
    return BasicStore(MongoSessionStore.from_settings(settings))


@dataclass
class Device:
    handle: str
    created_at: datetime
    accessed_at: datetime
    ip: str | None
    user_agent: str | None
    current: bool = False


class DirectoryStore(BasicStore):
    """A store of another package with the user methods: user ``ada`` has two devices, ``h1``
    and ``h2``; nothing is ever revoked, so every answer is the same."""

    async def list_user_sessions(self, user_id: str, *, current: str | None = None) -> list[Any]:
        if user_id != "ada":
            return []
        at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
        return [
            Device("h1", at, at, "192.0.2.1", "Firefox " + "x" * 80),
            Device("h2", at, at, None, None),
        ]

    async def revoke_session(self, handle: str) -> bool:
        return handle in ("h1", "h2")

    async def revoke_user(self, user_id: str, *, keep: str | None = None) -> int:
        if user_id != "ada":
            return 0
        return 1 if keep in ("h1", "h2") else 2


def directory(settings: SessionSettings) -> DirectoryStore:
    return DirectoryStore(MongoSessionStore.from_settings(settings))
