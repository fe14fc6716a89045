"""Session data for bench/scale.py: sessions of a given size, and stored session documents.

Standard library only: the Flask peer (bench/peers_src/flask_app.py, in a venv of its own)
imports :func:`sized_data` too, and the express peer builds the same data in JavaScript, so the
three implementations store the same session at every size.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

BLOB_ITEM = "x" * 1000
"""One element of a sized session's ``blob`` list: about 1 KiB once encoded."""


def sized_data(keys: int = 1, kib: int = 0) -> dict[str, Any]:
    """A session of ``keys`` top-level keys, plus about ``kib`` KiB in one ``blob`` key.

    ``n`` is always there (the counter bench/app.py's read and write handlers use); the other
    ``keys - 1`` keys hold a 27-character string each; ``blob`` is a list of ``kib`` strings of
    1,000 characters. The express peer's ``sizedData`` builds the same thing.
    """
    data: dict[str, Any] = {"n": 0}
    for i in range(1, keys):
        data[f"k{i:04d}"] = f"value {i:04d} abcdefghijklmnop"
    if kib:
        data["blob"] = [BLOB_ITEM] * kib
    return data


def stored_document(
    session_id: str,
    data: dict[str, Any],
    *,
    now: datetime,
    expires_in: timedelta,
    rng: random.Random,
) -> dict[str, Any]:
    """A session document in MongoSessionStore's format (see stores/_document_layout.py).

    Three token hashes (a session that has rotated at least twice), created up to a day ago,
    last used up to an hour ago, deadline ``now + expires_in``. No raw token exists for these
    hashes: the run gives the sessions it samples a fresh token (and a cookie) before using them.
    """
    created = now - timedelta(seconds=rng.uniform(0, 86400))
    accessed = max(created, now - timedelta(seconds=rng.uniform(0, 3600)))
    return {
        "_id": session_id,
        "tokens": [rng.randbytes(32).hex() for _ in range(3)],
        "created_at": created,
        "accessed_at": accessed,
        "rotated_at": accessed,
        "expires_at": now + expires_in,
        "data": data,
    }
