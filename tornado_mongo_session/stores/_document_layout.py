"""The session document's layout: what a document holds, read into a :class:`StoredSession`,
and the fields a new session, a save and a rotation write. Pure functions over the records;
:class:`~tornado_mongo_session.stores._document.DocumentStore` sends them.

``{_id, tokens, retired, created_at, accessed_at, rotated_at, expires_at, data}``, and for a
session bound to a user ``user_id``, ``handle`` and, when recorded, ``ip`` and ``ua``. A save is
a :class:`DocumentWrite`: MongoDB receives it as one ``$set``/``$unset`` update
(:meth:`DocumentWrite.update`), the memory store applies its parts as they are.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple, TypeAlias

from tornado_mongo_session.clock import as_utc
from tornado_mongo_session.stores.base import NewSession, Rotation, SessionRecord, SessionUpdate
from tornado_mongo_session.tokens import hash_token, session_handle, token_rank

__all__ = [
    "RETIRED_KEPT",
    "Document",
    "DocumentWrite",
    "StoredSession",
    "document_write",
    "new_document",
    "rotated_write",
    "when_retired",
]

Document: TypeAlias = "dict[str, Any]"
"""A MongoDB document, a query or an update's fields, as PyMongo takes and returns them."""

log = logging.getLogger("tornado_mongo_session.stores")


RETIRED_KEPT = 16
"""How many retired token hashes a document remembers, with when each was retired: a request
whose token was evicted while it was under way (a slow upload) is still recognised, and the
reuse of a token retired long before is told from an unknown one (theft), for this many
rotations after its eviction."""


@dataclass(slots=True, kw_only=True)
class StoredSession:
    """A session document, read: token hashes newest first, aware UTC times, the data, the
    retired token hashes (``{h, at}``, newest first; times as stored), and an upper bound of the
    data's BSON size when the store knows one without encoding it."""

    tokens: Sequence[str]
    created_at: datetime
    accessed_at: datetime
    rotated_at: datetime
    expires_at: datetime
    data: dict[str, Any]
    user_id: str | None = None
    handle: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    retired: Sequence[Mapping[str, Any]] = ()
    size: int | None = None

    @classmethod
    def read(cls, doc: Mapping[str, Any]) -> StoredSession | None:
        """The session a document holds; ``None``, and a warning, for a malformed one."""
        try:
            tokens = doc["tokens"]
            found = cls(
                tokens=tokens if isinstance(tokens, list) else [],
                created_at=as_utc(doc["created_at"]),
                accessed_at=as_utc(doc["accessed_at"]),
                rotated_at=as_utc(doc["rotated_at"]),
                expires_at=as_utc(doc["expires_at"]),
                data=dict(doc.get("data") or {}),
                retired=doc.get("retired") or (),
            )
            user_id = doc.get("user_id")
            if user_id is not None:  # only bound sessions pay for the fields of a device
                found.user_id = str(user_id)
                found.handle = doc.get("handle")
                found.ip = doc.get("ip")
                found.user_agent = doc.get("ua")
            return found
        except (KeyError, TypeError, AttributeError, ValueError):
            log.warning("session document …%s is malformed; treated as absent", doc["_id"][-4:])
            return None


def new_document(new: NewSession) -> Document:
    """The document a new session is inserted as (its first token hashed)."""
    doc: Document = {
        "_id": new.session_id,
        "tokens": [hash_token(new.token)],
        "created_at": new.created_at,
        "accessed_at": new.now,
        "rotated_at": new.now,
        "expires_at": new.expires_at,
        "data": dict(new.data),
    }
    if new.user_id is not None:
        doc["user_id"] = new.user_id
        doc["handle"] = session_handle(new.session_id)
        if new.ip is not None:
            doc["ip"] = new.ip
        if new.user_agent is not None:
            doc["ua"] = new.user_agent
    return doc


class DocumentWrite(NamedTuple):
    """One save of a session document: the data keys it sets and unsets, the access time and
    the deadline it sets, and for a rotation the token hashes, ``rotated_at`` and (when a
    rotation evicts hashes) the ``retired`` entries, each set whole; ``None`` leaves a field as
    it is."""

    set_data: Mapping[str, Any]
    unset_data: Sequence[str]
    accessed_at: datetime
    expires_at: datetime
    tokens: list[str] | None = None
    rotated_at: datetime | None = None
    retired: list[Mapping[str, Any]] | None = None

    def update(self) -> Document:
        """The write as MongoDB's update document: ``$set`` of the dotted paths of the data
        keys and of the fields beside the data, ``$unset`` of the removed keys' paths."""
        fields: Document = {f"data.{k}": v for k, v in self.set_data.items()}
        fields["expires_at"] = self.expires_at
        fields["accessed_at"] = self.accessed_at
        if self.tokens is not None:
            fields["tokens"] = self.tokens
            fields["rotated_at"] = self.rotated_at
        if self.retired is not None:
            fields["retired"] = self.retired
        update: Document = {"$set": fields}
        if self.unset_data:
            update["$unset"] = {f"data.{k}": "" for k in self.unset_data}
        return update


def document_write(update: SessionUpdate) -> DocumentWrite:
    """What a save writes: the changed and removed keys, the new deadline, the access time."""
    return DocumentWrite(update.changed, update.removed, update.now, update.expires_at)


def rotated_write(
    write: DocumentWrite, loaded: SessionRecord, rotation: Rotation, now: datetime
) -> DocumentWrite:
    """``write`` with a rotation's: the new token's hash first in ``tokens`` (at most
    ``rotation.keep``), ``rotated_at``, and the evicted hashes first in ``retired``."""
    keep = max(1, rotation.keep)
    tokens = [hash_token(rotation.token), *loaded.token_hashes][:keep]
    evicted = loaded.token_hashes[keep - 1 :]
    retired = None
    if evicted:
        # Set whole, like the tokens: the compare-and-set makes the loaded list current.
        entries: list[Mapping[str, Any]] = [{"h": h, "at": now} for h in evicted]
        retired = [*entries, *loaded.retired][:RETIRED_KEPT]
    return DocumentWrite(
        write.set_data, write.unset_data, write.accessed_at, write.expires_at, tokens, now, retired
    )


def when_retired(token_hash: str, retired: Sequence[Mapping[str, Any]]) -> datetime | None:
    """When ``token_hash`` was retired, per the document's ``retired`` entries; ``None`` if it
    is not among them. Every entry is compared in constant time."""
    rank = token_rank(token_hash, [entry.get("h") for entry in retired])
    if rank is None:
        return None
    try:
        return as_utc(retired[rank]["at"])
    except (KeyError, TypeError, AttributeError, ValueError):
        return None
