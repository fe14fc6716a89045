"""DocumentStore: load and save for the stores that keep one document per session.

MongoSessionStore and MemorySessionStore differ only in where a document lives; how a cookie
opens a document, how a save becomes one ``$set``/``$unset`` update, and how rotation is a
compare-and-set on the loaded ``rotated_at`` are decided here once. What a document holds, and
the fields each write sets, is the layout of ``_document_layout``.
"""

from __future__ import annotations

import abc
from datetime import datetime

from tornado_mongo_session.clock import utc_now
from tornado_mongo_session.errors import SessionEnded
from tornado_mongo_session.stores._document_layout import (
    Document,
    DocumentWrite,
    StoredSession,
    document_write,
    new_document,
    rotated_write,
    when_retired,
)
from tornado_mongo_session.stores._locks import KeyedLocks
from tornado_mongo_session.stores._user_sessions import UserSession
from tornado_mongo_session.stores.base import NewSession, SaveResult, SessionRecord, SessionUpdate
from tornado_mongo_session.tokens import encode_cookie, hash_token, parse_cookie, token_rank

__all__ = ["DocumentStore"]


class DocumentStore(abc.ABC):
    """A store of ``{_id, tokens, created_at, accessed_at, rotated_at, expires_at, data}``.

    Subclasses provide three primitives: find a live document, insert one, and write a
    :class:`DocumentWrite` to one with an optional compare-and-set on ``rotated_at``; and two
    for the sessions bound to a user (:meth:`_bound_sessions`, :meth:`_delete_bound`). Writes to
    one session are serialized within the process (see
    :class:`~tornado_mongo_session.stores._locks.KeyedLocks`).

    A session bound to a user (``Session.bind_user``) also holds ``user_id``, ``handle`` (see
    :func:`~tornado_mongo_session.tokens.session_handle`) and, when recorded, ``ip`` and ``ua``
    (the client's at login); an anonymous session holds none of them.
    """

    _serialize_writes = True
    """Serialize the writes to one session within the process (:class:`KeyedLocks`). A store
    whose primitives never await (memory) sets it False: each save then runs whole without
    yielding to the loop, and a lock would guard nothing."""

    def __init__(self) -> None:
        self._writing = KeyedLocks()

    # -- what a subclass provides ------------------------------------------------------------

    @abc.abstractmethod
    async def _find(self, session_id: str) -> StoredSession | None:
        """The session ``session_id`` names, live or not (``load`` checks the deadline)."""

    @abc.abstractmethod
    async def _insert_document(self, doc: Document) -> None:
        """Insert a new document; raise SessionStoreError if its id exists."""

    @abc.abstractmethod
    async def _update_document(
        self, session_id: str, rotated_at: datetime | None, write: DocumentWrite
    ) -> bool:
        """Apply ``write`` to the document ``session_id``, only if its ``rotated_at`` is still
        ``rotated_at`` when one is given (a compare-and-set); True if a document matched."""

    @abc.abstractmethod
    async def _bound_sessions(self, user_id: str, now: datetime) -> list[StoredSession]:
        """The sessions bound to ``user_id`` that are live at ``now`` (one query)."""

    @abc.abstractmethod
    async def _delete_bound(
        self, *, user_id: str | None, handle: str | None, keep: str | None
    ) -> int:
        """Delete the bound sessions matching ``user_id`` and ``handle`` (each when given),
        except the one whose handle is ``keep``; return how many (one delete)."""

    def _now(self) -> datetime:
        """The default ``now`` of :meth:`list_user_sessions`."""
        return utc_now()

    # -- the SessionStore protocol -----------------------------------------------------------

    async def load(self, cookie_value: str, *, now: datetime) -> SessionRecord | None:
        parsed = parse_cookie(cookie_value)
        if parsed is None:
            return None
        session_id, token = parsed
        found = await self._find(session_id)
        # The deadline is checked here rather than in the query: a filter on _id alone is the
        # one every server answers from its index (FerretDB scans the collection otherwise).
        if found is None or found.expires_at <= now:
            return None
        token_hash = hash_token(token)
        rank = token_rank(token_hash, found.tokens)
        retired_at = None
        if rank is None:
            retired_at = when_retired(token_hash, found.retired)
            if retired_at is None:
                return None
        record = SessionRecord(
            id=session_id,
            data=dict(found.data),
            created_at=found.created_at,
            accessed_at=found.accessed_at,
            rotated_at=found.rotated_at,
            expires_at=found.expires_at,
            token=token,
            token_hashes=list(found.tokens),
            token_newest=rank == 0,
            token_retired_at=retired_at,
            retired=found.retired,
            size=found.size,
        )
        if found.user_id is not None:  # only a bound session pays for its user's fields
            record.user_id, record.ip = found.user_id, found.ip
            record.user_agent = found.user_agent
        return record

    async def save(self, request: NewSession | SessionUpdate) -> SaveResult:
        if isinstance(request, NewSession):
            return await self._insert(request)
        if not self._serialize_writes:
            return await self._update(request)
        async with self._writing.hold(request.session_id):
            return await self._update(request)

    async def session_alive(self, session_id: str, *, now: datetime) -> bool:
        """Tell whether the session ``session_id`` is still stored and live at ``now`` (one
        find): not revoked, not logged out, not expired. Its tokens are not checked."""
        found = await self._find(session_id)
        return found is not None and found.expires_at > now

    # -- the sessions of a user (UserSessionStore) -------------------------------------------

    async def list_user_sessions(
        self, user_id: str, *, current: str | None = None, now: datetime | None = None
    ) -> list[UserSession]:
        """The live sessions bound to ``user_id``, newest login first (one query); the one whose
        handle is ``current`` is marked. ``now`` defaults to the store's clock."""
        found = await self._bound_sessions(_user(user_id), now or self._now())
        sessions = [
            UserSession(
                handle=stored.handle,
                created_at=stored.created_at,
                accessed_at=stored.accessed_at,
                ip=stored.ip,
                user_agent=stored.user_agent,
                current=stored.handle == current,
            )
            for stored in found
            if stored.handle is not None
        ]
        sessions.sort(key=lambda session: session.created_at, reverse=True)
        return sessions

    async def revoke_session(self, handle: str, *, user_id: str | None = None) -> bool:
        """Delete the session ``handle`` names (of ``user_id`` only, when given); True if one
        was deleted. One delete. A handle from a request must come with the signed-in user's
        id: then another user's handle revokes nothing."""
        if not isinstance(handle, str):
            raise TypeError(f"handle must be a str, not {type(handle).__name__}")
        owner = None if user_id is None else _user(user_id)
        return await self._delete_bound(user_id=owner, handle=handle, keep=None) > 0

    async def revoke_user(self, user_id: str, *, keep: str | None = None) -> int:
        """Delete every session bound to ``user_id`` but the one whose handle is ``keep``;
        return how many. One delete."""
        return await self._delete_bound(user_id=_user(user_id), handle=None, keep=keep)

    # -- the steps ---------------------------------------------------------------------------

    async def _insert(self, new: NewSession) -> SaveResult:
        await self._insert_document(new_document(new))
        cookie = encode_cookie(new.session_id, new.token)
        return SaveResult(session_id=new.session_id, cookie_value=cookie, rotated=True)

    async def _update(self, update: SessionUpdate) -> SaveResult:
        loaded = update.loaded
        write = document_write(update)
        rotation = update.rotation
        if rotation is None:
            if not await self._update_document(loaded.id, None, write):
                _ended(loaded, update)
            return SaveResult(session_id=loaded.id)

        rotated = rotated_write(write, loaded, rotation, update.now)
        # Compare-and-set: only the request that loaded the current rotated_at may rotate.
        if await self._update_document(loaded.id, loaded.rotated_at, rotated):
            cookie = encode_cookie(loaded.id, rotation.token)
            return SaveResult(session_id=loaded.id, cookie_value=cookie, rotated=True)
        # Another request rotated first (and pushed the deadline): our token is still kept, so
        # only data, if any, remains to be written.
        if (update.changed or update.removed) and not await self._update_document(
            loaded.id, None, write
        ):
            _ended(loaded, update)
        return SaveResult(session_id=loaded.id)


def _user(user_id: object) -> str:
    """``user_id`` checked: a non-empty str (a query for another type would match nothing)."""
    if not isinstance(user_id, str) or not user_id:
        raise TypeError(f"user_id must be a non-empty str, not {user_id!r}")
    return user_id


def _ended(loaded: SessionRecord, update: SessionUpdate) -> None:
    """Raise :class:`SessionEnded` for a write that matched no document; a touch that found
    none lost nothing and passes."""
    if update.changed or update.removed:
        raise SessionEnded(
            f"session …{loaded.id[-4:]} ended (login, logout or revocation elsewhere) while "
            "this request was writing to it; nothing was written"
        )
