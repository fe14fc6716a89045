"""What a session may hold: the key rule (written once), the nesting rule, and the values
that cannot change in place. Pure functions; the session applies them."""

from __future__ import annotations

import struct
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, cast

from bson import ObjectId

from tornado_mongo_session._bson import encode

__all__ = [
    "IMMUTABLE",
    "MAX_NESTING",
    "Kept",
    "check_key",
    "check_nested",
    "encode_value",
    "same_as_stored",
]

MAX_NESTING = 90
"""How deep a value may nest. MongoDB refuses documents nested more than 100 levels, and the
session document adds its own levels above each value."""


def _misread(key: object) -> str | None:
    """Why MongoDB would misread ``key`` (as an operator or a path): the rule for every key."""
    if not isinstance(key, str):
        return f"must be a str, not {type(key).__name__}"
    if key.startswith("$"):
        return "must not start with '$'"
    if "." in key or "\x00" in key:
        return "must not contain '.' or NUL"
    return None


_GOOD_KEYS: set[str] = set()
"""Keys :func:`check_key` passed (an application uses a few, on every request that writes);
bounded by :data:`_GOOD_KEYS_KEPT`."""
_GOOD_KEYS_KEPT = 4096


def check_key(key: object) -> str:
    """Return ``key`` if it may name a session value (a non-empty UTF-8 ``str`` that MongoDB
    would not misread); raise ``ValueError`` naming it if not."""
    if type(key) is str and key in _GOOD_KEYS:
        return key
    problem = _misread(key)
    if problem is None and key == "":
        problem = "must not be empty"
    if problem is not None:
        raise ValueError(f"session key {key!r} {problem}")
    text = cast(str, key)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(f"session key {key!r} is not valid UTF-8 text") from exc
    if type(text) is str and len(_GOOD_KEYS) < _GOOD_KEYS_KEPT:
        _GOOD_KEYS.add(text)
    return text


def check_nested(key: str, value: Any, path: str, depth: int = 0) -> None:
    if depth > MAX_NESTING:
        raise ValueError(
            f"session key {key!r}: value nested deeper than {MAX_NESTING} levels (at {path})"
        )
    if isinstance(value, Mapping):
        for inner in value:
            problem = _misread(inner)
            if problem is not None:
                raise ValueError(
                    f"session key {key!r}: nested key {inner!r} at {path or 'top level'} {problem}"
                )
            check_nested(key, value[inner], f"{path}.{inner}" if path else inner, depth + 1)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            check_nested(key, item, f"{path}[{index}]", depth + 1)


def encode_value(key: str, value: Any) -> bytes:
    """Return the BSON bytes of ``{key: value}``; raise ``TypeError`` naming the key if it can't,
    ``ValueError`` for a nested key MongoDB would misread or nesting past :data:`MAX_NESTING`."""
    if type(value) not in IMMUTABLE:  # only a container holds keys, or nests
        check_nested(key, value, "")
    return encode({key: value})


# Values that cannot change in place: a handler holding one cannot change the session without
# assigning, so handing one out needs no snapshot and no copy.
IMMUTABLE = frozenset({str, int, float, bool, type(None), bytes, datetime, ObjectId})


class Kept:
    """A stored value that cannot change in place, remembered as itself before it is first
    assigned (its BSON would cost an encoding on every assignment): compared with
    :func:`same_as_stored`."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


_DOUBLE = struct.Struct("<d")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_NAIVE_EPOCH = datetime(1970, 1, 1)
_MILLISECOND = timedelta(milliseconds=1)


def same_as_stored(old: Any, new: Any) -> bool:
    """Whether BSON stores ``new`` exactly as it stores ``old`` (both of an :data:`IMMUTABLE`
    type), without encoding either: of one type (``1``, ``1.0`` and ``True`` differ), floats
    bit for bit (``-0.0`` is not ``0.0``), datetimes to the millisecond in UTC (BSON drops the
    microseconds and the time zone; a naive one is UTC), the rest by equality."""
    kind = type(old)
    if type(new) is not kind:
        return False
    if kind is float:
        return _DOUBLE.pack(old) == _DOUBLE.pack(new)
    if kind is datetime:
        return _millis(old) == _millis(new)
    return bool(old == new)


def _millis(value: datetime) -> int:
    """Milliseconds since the epoch, as BSON stores a datetime (rounded down)."""
    return (value - (_NAIVE_EPOCH if value.utcoffset() is None else _EPOCH)) // _MILLISECOND
