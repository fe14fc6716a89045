"""SessionStats: live sessions, bound users, age and size distribution, from one aggregation.

The pipeline is built and its answer read here (pure functions); the Mongo store sends it.
What it costs: the server reads every live session document (an index range on ``expires_at``
where the TTL index exists, else a collection scan) and measures each one's BSON size; only the
summary crosses the network, in one ``aggregate`` command. ``limit`` bounds the documents read
(the distribution then describes the first ``limit`` live sessions only).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["AGE_BUCKETS", "SIZE_BUCKETS", "SessionStats", "read_stats", "stats_pipeline"]

AGE_BUCKETS: tuple[tuple[str, float], ...] = (
    ("< 1 h", 3600),
    ("< 1 d", 86400),
    ("< 7 d", 7 * 86400),
    ("< 30 d", 30 * 86400),
)
"""Age buckets (since creation), by upper bound in seconds; older ones count as ``>= 30 d``."""
SIZE_BUCKETS: tuple[tuple[str, int], ...] = (
    ("< 1 KiB", 1024),
    ("< 4 KiB", 4 * 1024),
    ("< 16 KiB", 16 * 1024),
    ("< 64 KiB", 64 * 1024),
    ("< 256 KiB", 256 * 1024),
)
"""Size buckets (the whole document's BSON size), by upper bound in bytes."""
_OLDEST = ">= 30 d"
_LARGEST = ">= 256 KiB"


@dataclass(frozen=True, kw_only=True)
class SessionStats:
    """What :meth:`MongoSessionStore.stats` found at ``at``.

    ``live``: sessions whose deadline is after ``at``. ``scanned``: how many of them the rest
    describes (``live`` unless a limit was given). ``bound_users``: distinct ``user_id`` values
    among them (sessions without one are not counted). ``ages`` and ``sizes``: counts per
    bucket, every bucket present; ``age_seconds`` and ``size_bytes``: ``min``, ``mean`` and
    ``max`` (absent when nothing was scanned).
    """

    at: datetime
    live: int
    scanned: int
    bound_users: int
    ages: dict[str, int] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    age_seconds: dict[str, float] = field(default_factory=dict)
    size_bytes: dict[str, float] = field(default_factory=dict)


def stats_pipeline(now: datetime, limit: int | None = None) -> list[dict[str, Any]]:
    """The aggregation pipeline behind :class:`SessionStats` (``$facet``, ``$bucket``,
    ``$bsonSize``: MongoDB >= 4.4 and FerretDB 2)."""
    pipeline: list[dict[str, Any]] = [{"$match": {"expires_at": {"$gt": now}}}]
    if limit is not None:
        pipeline.append({"$limit": limit})
    age_ms = {"$max": [0, {"$subtract": [now, "$created_at"]}]}  # a clock ahead counts as 0
    pipeline.append(
        {"$project": {"_id": 0, "user_id": 1, "age": age_ms, "size": {"$bsonSize": "$$ROOT"}}}
    )
    pipeline.append(
        {
            "$facet": {
                "count": [{"$count": "n"}],
                "users": [
                    {"$match": {"user_id": {"$ne": None}}},
                    {"$group": {"_id": "$user_id"}},
                    {"$count": "n"},
                ],
                "ages": [_bucket("$age", [0, *(s * 1000 for _, s in AGE_BUCKETS)], _OLDEST)],
                "sizes": [_bucket("$size", [0, *(b for _, b in SIZE_BUCKETS)], _LARGEST)],
                "totals": [
                    {
                        "$group": {
                            "_id": None,
                            **{
                                f"{what}_{op}": {f"${op}": f"${what}"}
                                for what in ("age", "size")
                                for op in ("min", "avg", "max")
                            },
                        }
                    }
                ],
            }
        }
    )
    return pipeline


def _bucket(group_by: str, boundaries: list[float], beyond: str) -> dict[str, Any]:
    return {
        "$bucket": {
            "groupBy": group_by,
            "boundaries": boundaries,
            "default": beyond,
            "output": {"n": {"$sum": 1}},
        }
    }


def read_stats(answer: Mapping[str, Any], *, at: datetime, live: int) -> SessionStats:
    """The :class:`SessionStats` in the pipeline's one answer document."""

    def first(facet: str) -> Mapping[str, Any]:
        found = answer.get(facet) or [{}]
        return dict(found[0])

    def buckets(facet: str, labels: tuple[tuple[str, float], ...], beyond: str) -> dict[str, int]:
        # $bucket names each bucket by its lower boundary: 0, then each label's upper bound.
        lowers = [0.0, *(float(upper) for _, upper in labels[:-1])]
        label_of = dict(zip(lowers, (label for label, _ in labels), strict=True))
        counts = dict.fromkeys([*(label for label, _ in labels), beyond], 0)
        for row in answer.get(facet) or []:
            key = row["_id"]
            label = beyond if isinstance(key, str) else label_of[float(key) / scale[facet]]
            counts[label] += int(row["n"])
        return counts

    scale = {"ages": 1000.0, "sizes": 1.0}  # ages are grouped in milliseconds
    totals = first("totals")
    ages: dict[str, float] = {}
    sizes: dict[str, float] = {}
    if totals:
        ages = {op: totals[f"age_{op}"] / 1000 for op in ("min", "avg", "max")}
        sizes = {op: float(totals[f"size_{op}"]) for op in ("min", "avg", "max")}
    return SessionStats(
        at=at,
        live=live,
        scanned=int(first("count").get("n", 0)),
        bound_users=int(first("users").get("n", 0)),
        ages=buckets("ages", AGE_BUCKETS, _OLDEST),
        sizes=buckets("sizes", SIZE_BUCKETS, _LARGEST),
        age_seconds={("mean" if k == "avg" else k): v for k, v in ages.items()},
        size_bytes={("mean" if k == "avg" else k): v for k, v in sizes.items()},
    )
