"""BSON encoding and decoding for the library: one codec, one set of refusals, the key named.

Every value the library stores goes through :func:`encode` (session values one key at a time,
whole documents by the memory and cookie stores), so what BSON refuses is caught in one place
and reported naming the session key that holds it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import bson
from bson.code import Code
from bson.codec_options import CodecOptions
from bson.decimal128 import Decimal128
from bson.errors import InvalidDocument
from bson.max_key import MaxKey
from bson.min_key import MinKey

from tornado_mongo_session.errors import SessionDataError

__all__ = [
    "CODEC",
    "FERRETDB1_REFUSED",
    "check_refused",
    "copy_value",
    "decode",
    "encode",
    "encode_for_store",
]

CODEC: CodecOptions[dict[str, Any]] = CodecOptions(document_class=dict, tz_aware=True)
"""What a tz_aware PyMongo client returns (MongoSessionStore.from_settings makes one): dicts,
aware UTC datetimes."""

# What bson.encode and bson.decode call, called directly: each public function adds a Python
# frame (decode two) to every call, and a write makes several. Same arguments, same errors; the
# public functions where a PyMongo lacks them.
_to_bson: Callable[[Any, bool, Any], bytes] = getattr(bson, "_dict_to_bson", None) or (
    lambda document, check_keys, opts: bson.encode(document, check_keys, opts)
)
_from_bson: Callable[[Any, Any], Any] = getattr(bson, "_bson_to_dict", None) or (
    lambda data, opts: bson.decode(data, opts)
)

# ValueError covers a native uuid.UUID (no representation chosen) and lone surrogates;
# RecursionError a value nested past what the encoder can walk.
_REFUSED = (InvalidDocument, TypeError, OverflowError, ValueError, RecursionError)


def encode(document: Mapping[str, Any], *, data_key: str | None = None) -> bytes:
    """Return the BSON bytes of ``document``.

    Raises ``TypeError`` naming the session key whose value BSON refuses: a top-level key of
    ``document``, or of ``document[data_key]`` for a store document that holds the session's
    data under that key.
    """
    try:
        return _to_bson(document, False, CODEC)
    except _REFUSED as exc:
        data = document[data_key] if data_key is not None else document
        raise TypeError(_refusal(data, exc)) from exc


def encode_for_store(
    document: Mapping[str, Any], *, what: str, data_key: str | None = None
) -> bytes:
    """:func:`encode` for a store: a refusal is a ``SessionDataError`` naming ``what`` failed."""
    try:
        return encode(document, data_key=data_key)
    except TypeError as exc:
        raise SessionDataError(f"session data refused during {what}: {exc}") from exc


def decode(raw: bytes) -> dict[str, Any]:
    """Return the document ``raw`` holds, as :data:`CODEC` reads it."""
    result: dict[str, Any] = _from_bson(raw, CODEC)
    return result


def copy_value(value: Any) -> Any:
    """A copy of a value as BSON decodes it that shares nothing changeable: its dicts and lists
    are copied; the rest (str, numbers, datetimes, bytes, ObjectId…) cannot change in place."""
    if type(value) is dict:
        return {key: copy_value(item) for key, item in value.items()}
    if type(value) is list:
        return [copy_value(item) for item in value]
    return value


def _refusal(data: Mapping[str, Any], exc: BaseException) -> str:
    """Name the first key of ``data`` whose value BSON refuses (only run once it did)."""
    for key, value in data.items():
        try:
            bson.encode({key: value}, codec_options=CODEC)
        except _REFUSED as refused:
            return (
                f"session key {key!r}: value of type {type(value).__name__} cannot be stored "
                f"(not BSON-encodable: {refused})"
            )
    return f"session data cannot be stored (not BSON-encodable: {exc})"


FERRETDB1_REFUSED: tuple[type, ...] = (MinKey, MaxKey, Code, Decimal128)
"""The value types FerretDB 1.x (1.24.2, measured) refuses, with NaN and infinite floats: over
NaN and these it drops the connection, and the driver then pauses its whole pool, failing
other users' requests (infinities are a plain write error). MongoDB and FerretDB 2 (2.5,
measured) store them all."""


def check_refused(data: Mapping[str, Any], refused: tuple[type, ...]) -> None:
    """Raise ``TypeError`` naming the session key whose value (at any depth) is NaN, an
    infinite float or one of the ``refused`` types; ``data`` maps session keys to values."""
    for key, value in data.items():
        problem = _refused_in(value, refused)
        if problem is not None:
            raise TypeError(
                f"session key {key!r}: {problem} cannot be stored on this server (FerretDB 1.x "
                "refuses NaN, infinities, MinKey, MaxKey, Code and Decimal128)"
            )


def _refused_in(value: Any, refused: tuple[type, ...]) -> str | None:
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        return "an infinite float" if math.isinf(value) else None
    if isinstance(value, refused):
        return f"a value of type {type(value).__name__}"
    if isinstance(value, Mapping):
        value = value.values()
    elif not isinstance(value, (list, tuple)):
        return None
    for item in value:
        problem = _refused_in(item, refused)
        if problem is not None:
            return problem
    return None
