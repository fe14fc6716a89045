"""MongoSessionStore's maintenance methods (count_expired, purge_expired_batch, stats) on both
drivers, checked against the raw documents and the commands sent."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from mongo_helpers import CommandLog

from tornado_mongo_session import MongoSessionStore

UTC = timezone.utc


async def _insert(collection: Any, now: datetime, live: list[bool], **extra: Any) -> None:
    await collection.insert_many(
        [
            {
                "_id": f"s{i:03d}",
                "tokens": ["0" * 64],
                "created_at": now - timedelta(minutes=10),
                "accessed_at": now,
                "rotated_at": now,
                "expires_at": now + timedelta(minutes=5 if alive else -5),
                "data": {"k": "v"},
                **({"user_id": f"u{i % 2}"} if i < 4 else {}),
                **extra,
            }
            for i, alive in enumerate(live)
        ]
    )


async def test_purge_in_batches_deletes_only_the_dead(
    collection: Any, command_log: CommandLog
) -> None:
    now = datetime.now(UTC)
    await _insert(collection, now, [i % 2 == 0 for i in range(9)])  # 5 live, 4 dead
    store = MongoSessionStore(collection)
    assert await store.count_expired(now=now) == 4
    command_log.clear()
    deleted = [await store.purge_expired_batch(now=now, limit=3) for _ in range(3)]
    assert deleted == [3, 1, 0]
    assert command_log.names() == ["find", "delete", "find", "delete", "find"]
    left = sorted([doc["_id"] async for doc in collection.find({}, {"_id": 1})])
    assert left == [f"s{i:03d}" for i in range(0, 9, 2)]


async def test_a_session_renewed_between_find_and_delete_survives(collection: Any) -> None:
    now = datetime.now(UTC)
    await _insert(collection, now, [False, False])
    # Its deadline passed at `now - 5 min`; a purge whose `now` is before that deletes nothing.
    assert (
        await MongoSessionStore(collection).purge_expired_batch(
            now=now - timedelta(minutes=6), limit=10
        )
        == 0
    )
    assert await collection.count_documents({}) == 2


async def test_stats_is_one_count_and_one_aggregate(
    collection: Any, command_log: CommandLog
) -> None:
    now = datetime.now(UTC)
    await _insert(collection, now, [True] * 5 + [False])
    command_log.clear()
    found = await MongoSessionStore(collection).stats(now=now)
    # count_documents is an aggregate ($match, $group) in both drivers.
    assert command_log.names() == ["aggregate", "aggregate"]
    assert (found.at, found.live, found.scanned, found.bound_users) == (now, 5, 5, 2)
    assert found.ages["< 1 h"] == 5
    assert sum(found.sizes.values()) == 5
    assert 599 <= found.age_seconds["min"] <= found.age_seconds["max"] <= 601
    empty = await MongoSessionStore(collection).stats(now=now + timedelta(hours=1))
    assert (empty.live, empty.scanned, empty.bound_users) == (0, 0, 0)
    assert empty.age_seconds == {}
    assert set(empty.ages.values()) == {0}
