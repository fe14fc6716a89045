"""DocumentStore: the session document and its updates, for stores that keep one per session.

MongoSessionStore and MemorySessionStore differ only in where a document lives; what goes into
it, how a save becomes one ``$set``/``$unset`` update, and how rotation is a compare-and-set on
the loaded ``rotated_at`` are decided here once.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tornado_mongo_session.clock import as_utc
from tornado_mongo_session.stores._locks import KeyedLocks
from tornado_mongo_session.stores.base import NewSession, SaveResult, SessionRecord, SessionUpdate
from tornado_mongo_session.tokens import encode_cookie, hash_token, parse_cookie, token_matches

__all__ = ["DocumentStore", "StoredSession"]

log = logging.getLogger("tornado_mongo_session.stores")


@dataclass(slots=True)
class StoredSession:
    """A session document, read: token hashes newest first, aware UTC times, the data."""

    tokens: Sequence[str]
    created_at: datetime
    accessed_at: datetime
    rotated_at: datetime
    expires_at: datetime
    data: dict[str, Any]

    @classmethod
    def read(cls, doc: Mapping[str, Any]) -> StoredSession | None:
        """The session a document holds; ``None``, and a warning, for a malformed one."""
        try:
            tokens = doc["tokens"]
            return cls(
                tokens=tokens if isinstance(tokens, list) else [],
                created_at=as_utc(doc["created_at"]),
                accessed_at=as_utc(doc["accessed_at"]),
                rotated_at=as_utc(doc["rotated_at"]),
                expires_at=as_utc(doc["expires_at"]),
                data=dict(doc.get("data") or {}),
            )
        except (KeyError, TypeError, AttributeError, ValueError):
            log.warning("session document …%s is malformed; treated as absent", doc["_id"][-4:])
            return None


class DocumentStore(abc.ABC):
    """A store of ``{_id, tokens, created_at, accessed_at, rotated_at, expires_at, data}``.

    Subclasses provide three primitives: find a live document, insert one, and update one with
    an optional compare-and-set on ``rotated_at``. Writes to one session are serialized within
    the process (see :class:`~tornado_mongo_session.stores._locks.KeyedLocks`).
    """

    def __init__(self) -> None:
        self._writing = KeyedLocks()

    # -- what a subclass provides ------------------------------------------------------------

    @abc.abstractmethod
    async def _find(self, session_id: str) -> StoredSession | None:
        """The session ``session_id`` names, live or not (``load`` checks the deadline)."""

    @abc.abstractmethod
    async def _insert_document(self, doc: dict[str, Any]) -> None:
        """Insert a new document; raise SessionStoreError if its id exists."""

    @abc.abstractmethod
    async def _update_document(
        self,
        session_id: str,
        rotated_at: datetime | None,
        fields: dict[str, Any],
        removed: list[str],
    ) -> bool:
        """``$set`` fields and ``$unset`` removed (dotted paths) on the document of
        ``session_id`` (and ``rotated_at``, when given); True if a document matched."""

    # -- the SessionStore protocol -----------------------------------------------------------

    async def load(self, cookie_value: str, *, now: datetime) -> SessionRecord | None:
        parsed = parse_cookie(cookie_value)
        if parsed is None:
            return None
        session_id, token = parsed
        found = await self._find(session_id)
        # The deadline is checked here rather than in the query: a filter on _id alone is the
        # one every server answers from its index (FerretDB scans the collection otherwise).
        if found is None or found.expires_at <= now or not token_matches(token, found.tokens):
            return None
        return SessionRecord(
            id=session_id,
            data=dict(found.data),
            created_at=found.created_at,
            accessed_at=found.accessed_at,
            rotated_at=found.rotated_at,
            expires_at=found.expires_at,
            token=token,
            token_hashes=list(found.tokens),
        )

    async def save(self, request: NewSession | SessionUpdate) -> SaveResult:
        if isinstance(request, NewSession):
            return await self._insert(request)
        async with self._writing.hold(request.session_id):
            return await self._update(request)

    # -- the steps ---------------------------------------------------------------------------

    async def _insert(self, new: NewSession) -> SaveResult:
        await self._insert_document(
            {
                "_id": new.session_id,
                "tokens": [hash_token(new.token)],
                "created_at": new.created_at,
                "accessed_at": new.now,
                "rotated_at": new.now,
                "expires_at": new.expires_at,
                "data": dict(new.data),
            }
        )
        cookie = encode_cookie(new.session_id, new.token)
        return SaveResult(session_id=new.session_id, cookie_value=cookie, rotated=True)

    async def _update(self, update: SessionUpdate) -> SaveResult:
        loaded = update.loaded
        fields: dict[str, Any] = {f"data.{k}": v for k, v in update.changed.items()}
        fields["expires_at"] = update.expires_at
        fields["accessed_at"] = update.now
        removed = [f"data.{k}" for k in update.removed]
        unrotated = SaveResult(session_id=loaded.id)
        rotation = update.rotation
        if rotation is None:
            await self._update_document(loaded.id, None, fields, removed)
            return unrotated

        rotated = {
            "tokens": [hash_token(rotation.token), *loaded.token_hashes][: max(1, rotation.keep)],
            "rotated_at": update.now,
        }
        # Compare-and-set: only the request that loaded the current rotated_at may rotate.
        if await self._update_document(
            loaded.id, loaded.rotated_at, {**fields, **rotated}, removed
        ):
            cookie = encode_cookie(loaded.id, rotation.token)
            return SaveResult(session_id=loaded.id, cookie_value=cookie, rotated=True)
        # Another request rotated first (and pushed the deadline): our token is still kept, so
        # only data, if any, remains to be written.
        if update.changed or update.removed:
            await self._update_document(loaded.id, None, fields, removed)
        return unrotated
