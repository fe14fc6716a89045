"""BSON encoding and decoding for the library: one codec, one set of refusals, the key named.

Every value the library stores goes through :func:`encode` (session values one key at a time,
whole documents by the memory and cookie stores), so what BSON refuses is caught in one place
and reported naming the session key that holds it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import bson
from bson.codec_options import CodecOptions
from bson.errors import InvalidDocument

from tornado_mongo_session.errors import SessionDataError

__all__ = ["CODEC", "copy_value", "decode", "encode", "encode_for_store"]

CODEC: CodecOptions[dict[str, Any]] = CodecOptions(document_class=dict, tz_aware=True)
"""What a tz_aware PyMongo client returns (MongoSessionStore.from_settings makes one): dicts,
aware UTC datetimes."""

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
        return bson.encode(document, codec_options=CODEC)
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
    return bson.decode(raw, codec_options=CODEC)


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
