"""stores/_document_layout.py: what a save and a rotation write, as MongoDB receives it."""

from __future__ import annotations

from datetime import timedelta

from tornado_mongo_session import Rotation, SessionRecord, SessionUpdate
from tornado_mongo_session.clock import utc_now
from tornado_mongo_session.stores._document_layout import (
    RETIRED_KEPT,
    document_write,
    rotated_write,
)
from tornado_mongo_session.tokens import hash_token

HOUR = timedelta(hours=1)


def loaded_with(tokens: int, retired: int = 0) -> SessionRecord:
    now = utc_now()
    return SessionRecord(
        id="i" * 24,
        data={"kept": 1, "gone": 2},
        created_at=now,
        accessed_at=now,
        rotated_at=now,
        expires_at=now + HOUR,
        token_hashes=[f"hash{n}" for n in range(tokens)],
        retired=[{"h": f"old{n}", "at": now - HOUR} for n in range(retired)],
    )


def test_a_save_is_one_update_setting_the_changed_keys_and_unsetting_the_removed() -> None:
    loaded = loaded_with(tokens=1)
    now = utc_now()
    update = SessionUpdate(
        loaded=loaded, now=now, expires_at=now + HOUR, changed={"new": [1]}, removed=("gone",)
    )
    assert document_write(update).update() == {
        "$set": {"data.new": [1], "expires_at": now + HOUR, "accessed_at": now},
        "$unset": {"data.gone": ""},
    }
    touch = SessionUpdate(loaded=loaded, now=now, expires_at=now + HOUR)
    assert document_write(touch).update() == {
        "$set": {"expires_at": now + HOUR, "accessed_at": now}
    }


def test_a_rotation_sets_the_new_hash_first_and_retires_the_evicted_ones_newest_first() -> None:
    loaded = loaded_with(tokens=3, retired=RETIRED_KEPT)
    now = utc_now()
    update = SessionUpdate(
        loaded=loaded, now=now, expires_at=now + HOUR, rotation=Rotation(keep=2, token="t" * 43)
    )
    assert update.rotation is not None
    fields = rotated_write(document_write(update), loaded, update.rotation, now).update()["$set"]
    assert list(fields) == ["expires_at", "accessed_at", "tokens", "rotated_at", "retired"]
    assert fields["tokens"] == [hash_token("t" * 43), "hash0"]
    assert fields["rotated_at"] == now
    retired = fields["retired"]
    assert len(retired) == RETIRED_KEPT
    assert retired[:2] == [{"h": "hash1", "at": now}, {"h": "hash2", "at": now}]
    assert retired[2] == loaded.retired[0]


def test_a_rotation_that_evicts_nothing_leaves_the_retired_hashes_alone() -> None:
    loaded = loaded_with(tokens=1)
    now = utc_now()
    rotation = Rotation(keep=3)
    update = SessionUpdate(loaded=loaded, now=now, expires_at=now + HOUR, rotation=rotation)
    fields = rotated_write(document_write(update), loaded, rotation, now).update()["$set"]
    assert "retired" not in fields
    assert fields["tokens"] == [hash_token(rotation.token), "hash0"]
