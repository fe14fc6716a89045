"""The Mongo store's queries on the sessions bound to a user: list them (without their data or
tokens), delete them. One command each, answered from the sparse user indexes where made."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tornado_mongo_session.stores._document_layout import StoredSession
from tornado_mongo_session.stores._mongo_commands import MongoCommands

__all__ = ["bound_sessions", "delete_bound"]


async def bound_sessions(
    commands: MongoCommands, user_id: str, now: datetime
) -> list[StoredSession]:
    """The sessions of ``user_id`` live at ``now`` (one find)."""
    query = {"user_id": user_id, "expires_at": {"$gt": now}}

    async def find() -> list[dict[str, Any]]:
        cursor = commands.collection.find(query, projection={"data": 0, "tokens": 0})
        docs: list[dict[str, Any]] = await cursor.to_list(length=None)
        return docs

    docs = await commands.call("find", find)
    found = (StoredSession.read({**doc, "tokens": []}) for doc in docs)
    return [stored for stored in found if stored is not None]


async def delete_bound(
    commands: MongoCommands, *, user_id: str | None, handle: str | None, keep: str | None
) -> int:
    """Delete the bound sessions matching ``user_id`` and ``handle`` (each when given), but the
    one whose handle is ``keep``; how many (one delete)."""
    query: dict[str, Any] = {}
    if user_id is not None:
        query["user_id"] = user_id
    if handle is not None:
        query["handle"] = handle
    elif keep is not None:
        query["handle"] = {"$ne": keep}
    result = await commands.call("revoke", lambda: commands.collection.delete_many(query))
    return int(result.deleted_count)
