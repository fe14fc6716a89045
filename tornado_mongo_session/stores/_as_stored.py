"""Values as MongoDB would store them, for the memory store: times cut to milliseconds,
a delta applied through BSON, and MongoDB's 16 MiB document limit."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from tornado_mongo_session._bson import decode, encode_for_store
from tornado_mongo_session.clock import as_utc
from tornado_mongo_session.errors import SessionDataError

__all__ = [
    "MAX_DOCUMENT_BYTES",
    "NEAR_LIMIT",
    "apply_delta",
    "check_size",
    "stored_retired",
    "stored_time",
]

MAX_DOCUMENT_BYTES = 16 * 1024 * 1024  # MongoDB's document limit
# Below this, the fields beside the data (100 tokens, 16 retired ones, 4 times) cannot take a
# document over the limit, so the data's size need not be exact.
NEAR_LIMIT = MAX_DOCUMENT_BYTES - 64 * 1024


def apply_delta(
    stored: dict[str, Any], size: int, changed: Mapping[str, Any], removed: Sequence[str]
) -> tuple[dict[str, Any], int]:
    """The data and its size bound after ``$set`` of ``changed`` and ``$unset`` of
    ``removed`` on ``stored`` (left as it is); what is set goes through BSON, as MongoDB would
    store it."""
    data = dict(stored)
    for key in removed:
        data.pop(key, None)
    for key, value in changed.items():
        raw = encode_for_store({key: value}, what="update")
        data[key] = decode(raw)[key]
        size += len(raw) - 5
    if size >= NEAR_LIMIT:
        size = len(encode_for_store(data, what="update"))  # exact, where it matters
    return data, size


def stored_time(value: datetime) -> datetime:
    """``value`` as BSON stores it: aware UTC, cut to whole milliseconds."""
    if value.tzinfo is not timezone.utc or value.microsecond % 1000:
        value = as_utc(value)
        value = value.replace(microsecond=value.microsecond // 1000 * 1000)
    return value


def stored_retired(retired: list[Mapping[str, Any]]) -> tuple[Mapping[str, Any], ...]:
    """The ``retired`` entries as BSON stores them. A rotation puts its new entries first and
    carries the stored ones over: only the entries before the first stored one are converted."""
    converted: list[Mapping[str, Any]] = []
    for index, entry in enumerate(retired):
        at = entry["at"]
        stored = stored_time(at)
        if stored is at:
            return (*converted, *retired[index:])
        converted.append({"h": entry["h"], "at": stored})
    return tuple(converted)


def check_size(beside: dict[str, Any], size: int, what: str) -> None:
    """Refuse a document over MongoDB's limit, as MongoDB would: ``beside`` is the document with
    empty data, ``size`` the data's exact size."""
    total = len(encode_for_store(beside, what=what)) - 5 + size
    if total > MAX_DOCUMENT_BYTES:
        raise SessionDataError(
            f"session data refused during {what}: the document is {total} bytes, over "
            f"MongoDB's limit of {MAX_DOCUMENT_BYTES}"
        )
