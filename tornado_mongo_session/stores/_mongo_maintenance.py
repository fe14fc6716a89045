"""The Mongo store's maintenance: expired sessions counted and purged (at once or in batches),
and the statistics of the live ones. No request calls these."""

from __future__ import annotations

import inspect
from datetime import datetime
from typing import Any

from tornado_mongo_session.stores._mongo_commands import MongoCommands
from tornado_mongo_session.stores._stats import SessionStats, read_stats, stats_pipeline

__all__ = ["count_expired", "purge_expired", "purge_expired_batch", "stats"]


async def purge_expired(commands: MongoCommands, deadline: datetime) -> int:
    """Delete every session dead at ``deadline``; how many (one delete)."""
    dead = {"expires_at": {"$lte": deadline}}
    result = await commands.call("purge", lambda: commands.collection.delete_many(dead))
    return int(result.deleted_count)


async def count_expired(commands: MongoCommands, deadline: datetime) -> int:
    """How many sessions are dead at ``deadline`` (one count)."""
    dead = {"expires_at": {"$lte": deadline}}
    return int(await commands.call("count", lambda: commands.collection.count_documents(dead)))


async def purge_expired_batch(commands: MongoCommands, now: datetime, limit: int) -> int:
    """Delete at most ``limit`` sessions dead at ``now``: a ``find`` of ids, a ``delete`` of
    those still dead."""
    dead = {"expires_at": {"$lte": now}}
    collection = commands.collection
    found = await commands.call(
        "purge", lambda: collection.find(dead, {"_id": 1}, limit=limit).to_list(None)
    )
    if not found:
        return 0
    ids = [doc["_id"] for doc in found]
    result = await commands.call(
        "purge", lambda: collection.delete_many({"_id": {"$in": ids}, **dead})
    )
    return int(result.deleted_count)


async def stats(commands: MongoCommands, at: datetime, limit: int | None) -> SessionStats:
    """A ``count`` of the sessions live ``at``, and one ``aggregate`` summing up at most
    ``limit`` of them on the server."""
    live = {"expires_at": {"$gt": at}}
    collection = commands.collection
    count = await commands.call("stats", lambda: collection.count_documents(live))
    answer = await commands.call("stats", lambda: _aggregate(collection, stats_pipeline(at, limit)))
    return read_stats(answer[0] if answer else {}, at=at, live=int(count))


async def _aggregate(collection: Any, pipeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every document ``pipeline`` yields: PyMongo's ``aggregate`` is a coroutine that gives a
    cursor, Motor's gives the cursor at once."""
    cursor = collection.aggregate(pipeline)
    if inspect.isawaitable(cursor):
        cursor = await cursor
    found: list[dict[str, Any]] = await cursor.to_list(None)
    return found
