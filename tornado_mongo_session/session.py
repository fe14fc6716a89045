"""Session: the dict-like object behind ``self.session``. No I/O.

It holds the data and finds what changed since the store last held it (comparing BSON bytes, so
a change deep inside a nested value counts); what it may hold is ``_values.py``'s rule, its
identity over its life (regenerate, invalidate, a bound user) ``_lifecycle.py``'s. The save
policy turns that into a store call; the session takes the answer in.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tornado_mongo_session._bson import copy_value, encode
from tornado_mongo_session._lifecycle import SessionLifecycle
from tornado_mongo_session._values import (
    IMMUTABLE,
    MAX_NESTING,
    Kept,
    check_key,
    check_nested,
    encode_value,
    same_as_stored,
)
from tornado_mongo_session.tokens import new_session_id

if TYPE_CHECKING:
    from tornado_mongo_session.stores import base

__all__ = ["MAX_NESTING", "Session", "check_key", "encode_value"]


class Session(SessionLifecycle, MutableMapping[str, Any]):
    """The session data of one request, with change tracking.

    Use it as a dict. Keys are checked on assignment (``ValueError`` naming the key) and values
    must be BSON-encodable (``TypeError`` naming the key, on assignment, or at save time for a
    nested value changed in place). The mixin saves the changes when the response is finished.

    Attributes a handler may read: ``id`` (the session id, never sent alone to the client),
    ``is_new`` (not yet stored), ``created_at``, ``rotated_at`` (when the current token was
    issued), ``accessed_at`` and ``expires_at`` (``None`` until stored), ``user_id`` (the user
    bound by :meth:`bind_user`, or ``None``), ``ip`` and ``user_agent`` (the client's when the
    user was bound, if recorded) and :attr:`handle`.
    """

    # How changes are found without encoding what the handler never touched: a value can only
    # change if it is assigned, deleted, or handed out (and then changed in place). Each of
    # those first records, in _stored, how the key looks in the store (its BSON bytes; an
    # immutable value as itself, in a Kept, compared with same_as_stored; None when the store
    # does not hold it); changes() compares only those keys. Immutable values handed out are
    # not recorded: they can only change by assignment. A loaded value may be
    # shared with the store (MemorySessionStore): it is never changed in place, only copied.
    # (The identity's slots are SessionLifecycle's.)
    __slots__ = (
        "_data",
        "_encoded",
        "_fresh",
        "_size_stored",
        "_stored",
        "accessed_at",
        "expires_at",
        "rotated_at",
    )

    def __init__(
        self,
        data: Mapping[str, Any] | None = None,
        *,
        session_id: str | None = None,
        is_new: bool = True,
        created_at: datetime | None = None,
        rotated_at: datetime | None = None,
        accessed_at: datetime | None = None,
        expires_at: datetime | None = None,
    ) -> None:
        self.id: str = session_id or new_session_id()
        self.user_id: str | None = None
        self.ip: str | None = None
        self.user_agent: str | None = None
        self._bound = False
        self.is_new = is_new
        self.created_at = created_at
        self.rotated_at = rotated_at
        self.accessed_at = accessed_at
        self.expires_at = expires_at
        self._data: dict[str, Any] = dict(data or {})
        self._stored: dict[str, bytes | Kept | None] = {}
        self._encoded: dict[str, bytes] | None = None
        self._fresh: dict[str, bytes] = {}  # the encoding of each immutable value assigned
        self._replaced_id: str | None = None
        self._size_stored: int | None = None  # an upper bound, when the store knew one
        self._regenerated = False
        self._invalidated = False
        self._frozen = False

    @classmethod
    def from_record(cls, record: base.SessionRecord) -> Session:
        """The session a store loaded; it takes the record's data dict as its own."""
        # Not through __init__: on every request that reads its session, each field set once.
        session = cls.__new__(cls)
        session.id, session.is_new = record.id, False
        session.created_at, session.rotated_at = record.created_at, record.rotated_at
        session.accessed_at, session.expires_at = record.accessed_at, record.expires_at
        session.user_id, session.ip, session.user_agent = (
            record.user_id,
            record.ip,
            record.user_agent,
        )
        session._data = record.data  # a load's own dict: no copy needed
        session._stored, session._encoded, session._fresh = {}, None, {}
        session._size_stored = record.size
        session._bound = session._regenerated = session._invalidated = session._frozen = False
        session._replaced_id = None
        return session

    def __getitem__(self, key: str) -> Any:
        value = self._data[key]
        if type(value) in IMMUTABLE or key in self._stored or self.is_new:
            return value
        # A stored value handed out for the first time: it may be changed in place, so remember
        # how it is stored, and hand out a copy (the loaded one may be shared with the store).
        self._stored[key] = encode({key: value})
        value = self._data[key] = copy_value(value)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        """``session[key]`` if the key is there, else ``default`` (as a dict's)."""
        data = self._data
        if key not in data:
            return default
        value = data[key]
        if type(value) in IMMUTABLE or key in self._stored or self.is_new:
            return value  # as __getitem__ would, without its frame: read on most requests
        return self[key]

    def __setitem__(self, key: str, value: Any) -> None:
        check_key(key)
        if type(value) in IMMUTABLE:  # its encoding cannot change: changes() reuses it
            raw = encode({key: value})
            self._remember(key)
            self._fresh[key] = raw
        else:
            encode_value(key, value)  # checked now, encoded again at save: it may change
            self._remember(key)
            self._fresh.pop(key, None)
        self._data[key] = value

    def __delitem__(self, key: str) -> None:
        self._remember(key)
        del self._data[key]
        self._fresh.pop(key, None)

    def __len__(self) -> int:
        return len(self._data)

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data  # not Mapping's: that would hand the value out

    def __repr__(self) -> str:
        return f"<Session id=…{self.id[-4:]} new={self.is_new} keys={sorted(self._data)!r}>"

    def _remember(self, key: str) -> None:
        """Record how ``key`` looks in the store, before it first changes."""
        if key not in self._stored and not self.is_new:
            data = self._data
            if key not in data:
                self._stored[key] = None
            elif type(data[key]) in IMMUTABLE:
                self._stored[key] = Kept(data[key])
            else:
                self._stored[key] = encode({key: data[key]})

    @property
    def unchanged(self) -> bool:
        """True when nothing can differ from what the store holds: a stored session in which
        no value was assigned, deleted, or handed out in a form that could change in place
        (reading immutable values, such as str, int or datetime, leaves it True). False does
        not mean changed: :meth:`changes` tells."""
        return not self.is_new and not self._stored

    def changes(self) -> tuple[dict[str, Any], list[str]]:
        """Return ``(changed, removed)``: each new or modified key with its value (every key of a
        new session) and the deleted keys, against what the store holds. Raises ``TypeError``
        or ``ValueError`` naming the key if a value changed in place can't be stored."""
        data, stored, fresh = self._data, self._stored, self._fresh
        if self.is_new:
            self._encoded = {
                key: fresh.get(key) or encode_value(key, value) for key, value in data.items()
            }
            return dict(data), []
        changed: dict[str, Any] = {}
        encoded: dict[str, bytes] = {}
        if not stored:  # nothing assigned, deleted or handed out: nothing can have changed
            self._encoded = encoded
            return changed, []
        removed: list[str] = []
        for key, was in stored.items():  # only these keys can have changed
            if key in data:
                value = data[key]
                if type(was) is Kept:
                    if same_as_stored(was.value, value):
                        continue  # stored as it was: its stored element counts as it is
                    encoded[key] = fresh.get(key) or encode({key: value})
                else:
                    now = encoded[key] = fresh.get(key) or encode({key: value})
                    if now == was:
                        continue
                if type(value) not in IMMUTABLE:  # only a container holds keys
                    check_nested(key, value, "")  # only what changed can hold a bad key
                changed[key] = value
            elif was is not None:
                removed.append(key)
        self._encoded = encoded
        return changed, removed

    def encoded_size(self) -> int:
        """Return the BSON size of all the data, as a save would write it."""
        return len(encode(self._data))

    def size_bound(self) -> int:
        """Return an upper bound of :meth:`encoded_size`, from the encodings of the last
        :meth:`changes` and the store's size where they allow (exact for a new session),
        without encoding the data whole; else the exact size."""
        encoded, stored = self._encoded, self._size_stored
        if encoded is not None and (self.is_new or stored is not None):
            # A document's elements plus its 5 bytes of frame; each encoding has its own frame.
            added = sum(map(len, encoded.values())) - 5 * len(encoded)
            if self.is_new and len(encoded) == len(self._data):
                return 5 + added
            if not self.is_new and stored is not None:
                return stored + added  # each touched key's stored element is counted in both
        return self.encoded_size()

    def saved(self, save: base.NewSession | base.SessionUpdate, result: base.SaveResult) -> None:
        """Take in a save the store made: id and times become the save's, and what the store
        holds is what the session holds (the next :meth:`changes` is empty)."""
        self.id = result.session_id
        self.created_at = save.created_at
        if result.rotated:
            self.rotated_at = save.now
        self.accessed_at = save.now
        self.expires_at = save.expires_at
        # A new session's every value may be held by the handler; a loaded one's, those seen.
        if self._encoded is None:
            self.changes()
        self._stored, self._encoded = dict(self._encoded or {}), None
        self._size_stored = None  # what the store now holds was not measured
        self.is_new = False
        self._replaced_id = None
        self._bound = False
