"""DocumentStore: the session document and its updates, for stores that keep one per session.

MongoSessionStore and MemorySessionStore differ only in where a document lives; what goes into
it, how a save becomes one ``$set``/``$unset`` update, and how rotation is a compare-and-set on
the loaded ``rotated_at`` are decided here once.
"""

from __future__ import annotations

import abc
import logging
from datetime import datetime
from typing import Any

from tornado_mongo_session.clock import as_utc
from tornado_mongo_session.errors import SessionStoreError
from tornado_mongo_session.stores._locks import KeyedLocks
from tornado_mongo_session.stores.base import SaveRequest, SaveResult, SessionRecord
from tornado_mongo_session.tokens import encode_cookie, hash_token, parse_cookie, token_matches

__all__ = ["DocumentStore"]

log = logging.getLogger("tornado_mongo_session.stores")


class DocumentStore(abc.ABC):
    """A store of ``{_id, tokens, created_at, accessed_at, rotated_at, expires_at, data}``.

    Subclasses provide three primitives: find a live document, insert one, and update one with
    an optional compare-and-set on ``rotated_at``. Writes to one session are serialized within
    the process (see :class:`~tornado_mongo_session.stores._locks.KeyedLocks`).
    """

    origin = "document"

    def __init__(self) -> None:
        self._writing = KeyedLocks()

    # -- what a subclass provides ------------------------------------------------------------

    @abc.abstractmethod
    async def _find(self, session_id: str) -> dict[str, Any] | None:
        """The document of ``session_id``, live or not (``load`` checks the deadline)."""

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
        doc = await self._find(session_id)
        if doc is None:
            return None
        hashes = doc.get("tokens")
        if not isinstance(hashes, list) or not token_matches(token, hashes):
            return None
        try:
            record = SessionRecord(
                id=session_id,
                data=dict(doc.get("data") or {}),
                created_at=as_utc(doc["created_at"]),
                accessed_at=as_utc(doc["accessed_at"]),
                rotated_at=as_utc(doc["rotated_at"]),
                expires_at=as_utc(doc["expires_at"]),
                token=token,
                token_hashes=list(hashes),
                origin=self.origin,
            )
        except (KeyError, TypeError, AttributeError):
            log.warning("session document …%s is malformed; treated as absent", session_id[-4:])
            return None
        # The deadline is checked here rather than in the query: a filter on _id alone is the
        # one every server answers from its index (FerretDB scans the collection otherwise).
        return record if record.expires_at > now else None

    async def save(self, request: SaveRequest) -> SaveResult:
        loaded = request.loaded
        if loaded is None:
            return await self._insert(request)
        async with self._writing.hold(loaded.id):
            return await self._update(request, loaded)

    # -- the steps ---------------------------------------------------------------------------

    async def _insert(self, request: SaveRequest) -> SaveResult:
        token = request.new_token
        if token is None:
            raise SessionStoreError("a new session needs a token: SaveRequest.new_token is None")
        if request.expires_at is None:
            raise SessionStoreError("a new session needs SaveRequest.expires_at")
        await self._insert_document(
            {
                "_id": request.session_id,
                "tokens": [hash_token(token)],
                "created_at": request.created_at,
                "accessed_at": request.accessed_at or request.now,
                "rotated_at": request.now,
                "expires_at": request.expires_at,
                "data": dict(request.data),
            }
        )
        return SaveResult(encode_cookie(request.session_id, token), True, request.session_id)

    async def _update(self, request: SaveRequest, loaded: SessionRecord) -> SaveResult:
        fields: dict[str, Any] = {f"data.{k}": v for k, v in request.changed.items()}
        if request.expires_at is not None:
            fields["expires_at"] = request.expires_at
            fields["accessed_at"] = request.accessed_at or request.now
        removed = [f"data.{k}" for k in request.removed]
        if request.new_token is None:
            if not fields and not removed:
                return SaveResult(None, False, loaded.id)
            await self._update_document(loaded.id, None, fields, removed)
            return SaveResult(None, False, loaded.id)

        kept = max(1, request.tokens_kept)
        rotation = {
            "tokens": [hash_token(request.new_token), *loaded.token_hashes][:kept],
            "rotated_at": request.now,
        }
        # Compare-and-set: only the request that loaded the current rotated_at may rotate.
        if await self._update_document(
            loaded.id, loaded.rotated_at, {**fields, **rotation}, removed
        ):
            return SaveResult(encode_cookie(loaded.id, request.new_token), True, loaded.id)
        # Another request rotated first (and pushed the deadline): our token is still kept, so
        # only data, if any, remains to be written.
        if request.changed or request.removed:
            await self._update_document(loaded.id, None, fields, removed)
        return SaveResult(None, False, loaded.id)
