"""session.py: the mapping, key and value checks, change tracking. No I/O."""

from __future__ import annotations

import datetime
import uuid
from typing import Any

import bson
import pytest

from tornado_mongo_session import NewSession, SaveResult, Session


def stored(data: dict[str, Any]) -> Session:
    return Session(data, session_id="s" * 24, is_new=False)


def test_mapping_protocol() -> None:
    s = Session()
    s["a"] = 1
    s.update(b=2)
    assert dict(s) == {"a": 1, "b": 2}
    assert len(s) == 2
    assert "a" in s
    assert s.get("z", 0) == 0
    assert s.pop("a") == 1
    assert s.setdefault("c", []) == []
    del s["b"]
    assert list(s) == ["c"]
    s.clear()
    assert not s


def test_new_session_has_an_id_and_is_new() -> None:
    s = Session()
    assert s.is_new
    assert len(s.id) == 24
    assert Session().id != s.id
    assert s.id[-4:] in repr(s)
    assert s.id not in repr(s)


@pytest.mark.parametrize("key", ["$set", "a.b", "x\x00", "", 1, None, b"bytes"])
def test_bad_keys_raise_value_error_naming_the_key(key: Any) -> None:
    s = Session()
    with pytest.raises(ValueError, match="session key") as info:
        s[key] = 1
    assert repr(key) in str(info.value)
    assert len(s) == 0


def test_a_good_key_stays_good_and_a_bad_one_bad_on_every_use() -> None:
    # check_key remembers the keys it passed: each is judged the same on the next use.
    for _ in range(3):
        s = Session()
        s["fine"] = 1
        with pytest.raises(ValueError, match=r"'a\.b'"):
            s["a.b"] = 1
        with pytest.raises(ValueError, match="must be a str"):
            s[StrKey("fine")] = 1  # type: ignore[index]
        assert dict(s) == {"fine": 1}


class StrKey:
    """Equal to and hashed as a str, but not one: a key MongoDB could not take."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __eq__(self, other: object) -> bool:
        return other == self.text

    def __hash__(self) -> int:
        return hash(self.text)


@pytest.mark.parametrize("value", [object(), {1, 2}, lambda: None, 2**70])
def test_unencodable_values_raise_type_error_naming_the_key(value: Any) -> None:
    s = Session()
    with pytest.raises(TypeError, match="'bad'"):
        s["bad"] = value
    assert "bad" not in s


@pytest.mark.parametrize("value", [{"a.b": 1}, {"$x": 1}, [{"ok": {"x.y": 2}}], {1: "int key"}])
def test_nested_keys_mongodb_would_misread_are_refused(value: Any) -> None:
    with pytest.raises(ValueError, match="'outer'"):
        Session()["outer"] = value


@pytest.mark.parametrize(
    "value",
    [
        "text",
        42,
        2**40,
        1.5,
        True,
        None,
        [1, "a", None],
        {"nested": {"deep": [1, 2]}},
        b"raw",
        datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc),
        uuid.uuid4().hex,
        bson.ObjectId(),
    ],
)
def test_encodable_values_are_kept(value: Any) -> None:
    s = Session()
    s["v"] = value
    assert s["v"] == value


def test_changes_of_a_new_session_are_all_keys() -> None:
    s = Session()
    s["a"] = 1
    changed, removed = s.changes()
    assert changed == {"a": 1}
    assert removed == []
    assert s.encoded_size() == len(bson.encode({"a": 1}))


def test_changes_against_snapshot() -> None:
    s = stored({"a": 1, "b": [1], "c": "same"})
    assert s.changes()[:2] == ({}, [])
    s["a"] = 2
    s["b"].append(2)  # nested change, no assignment
    del s["c"]
    s["d"] = "new"
    changed, removed = s.changes()
    assert changed == {"a": 2, "b": [1, 2], "d": "new"}
    assert removed == ["c"]
    now = datetime.datetime.now(datetime.timezone.utc)
    s.saved(
        NewSession(data=s, created_at=now, now=now, expires_at=now), SaveResult(session_id=s.id)
    )
    assert s.changes()[:2] == ({}, [])
    assert not s.is_new


def test_type_change_with_equal_value_counts() -> None:
    s = stored({"a": 1})
    s["a"] = 1.0
    assert s.changes()[0] == {"a": 1.0}


def test_nested_bad_value_caught_at_save() -> None:
    s = stored({"box": []})
    s["box"].append(object())
    with pytest.raises(TypeError, match="'box'"):
        s.changes()


def test_regenerate_keeps_data_new_id_and_remembers_old() -> None:
    s = stored({"a": 1})
    old = s.id
    s.regenerate()
    assert s.id != old
    assert s.is_new
    assert s.regenerated
    assert s.replaced_id == old
    assert dict(s) == {"a": 1}
    assert s.changes()[0] == {"a": 1}
    s.regenerate()  # twice in one request: the stored id is still the one to delete
    assert s.replaced_id == old


def test_invalidate_clears_and_remembers_old() -> None:
    s = stored({"a": 1})
    old = s.id
    s.invalidate()
    assert s.invalidated
    assert s.replaced_id == old
    assert dict(s) == {}
    assert s.id != old
    s["after"] = 1  # a fresh session under the new id
    assert s.changes()[0] == {"after": 1}


def test_regenerate_of_new_session_has_nothing_to_delete() -> None:
    s = Session()
    s.regenerate()
    assert s.replaced_id is None


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for level in range(depth):
        value = {"d": value} if level % 2 else [value]
    return value


def test_nesting_is_bounded_with_the_key_named() -> None:
    s = Session()
    s["ok"] = nested(80)
    for depth in (95, 5000):
        with pytest.raises(ValueError, match=r"'deep'.*nested deeper"):
            s["deep"] = nested(depth)
    s["box"] = []
    s["box"].append(nested(200))
    with pytest.raises(ValueError, match="'box'"):
        s.changes()
    s["box"].append(nested(100_000))  # past what the BSON encoder itself can walk
    with pytest.raises((TypeError, ValueError), match="'box'"):
        s.changes()


@pytest.mark.parametrize(
    ("key", "value", "error"),
    [
        ("u", uuid.UUID(int=1), TypeError),
        ("s", "a\ud800b", TypeError),
        ("k\udc00", 1, ValueError),
    ],
)
def test_values_bson_refuses_name_the_key(key: str, value: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match=repr(key).replace("\\", "\\\\")):
        Session()[key] = value
