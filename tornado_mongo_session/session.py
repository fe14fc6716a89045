"""Session: the dict-like object behind ``self.session``, and what it may hold. No I/O.

It holds the data, finds what changed since the store last held it (comparing BSON bytes, so a
change deep inside a nested value counts), and carries the flags that ask for regenerate or
invalidate. The save policy turns that into a store call; the session takes the answer in.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

from bson import ObjectId

from tornado_mongo_session._bson import copy_value, encode
from tornado_mongo_session.tokens import new_session_id, session_handle

if TYPE_CHECKING:
    from tornado_mongo_session.stores import base

__all__ = ["MAX_NESTING", "Session", "check_key", "encode_value"]

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


def check_key(key: object) -> str:
    """Return ``key`` if it may name a session value (a non-empty UTF-8 ``str`` that MongoDB
    would not misread); raise ``ValueError`` naming it if not."""
    problem = _misread(key)
    if problem is None and key == "":
        problem = "must not be empty"
    if problem is not None:
        raise ValueError(f"session key {key!r} {problem}")
    text = cast(str, key)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"session key {key!r} is not valid UTF-8 text") from exc
    return text


def _check_nested(key: str, value: Any, path: str, depth: int = 0) -> None:
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
            _check_nested(key, value[inner], f"{path}.{inner}" if path else inner, depth + 1)
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check_nested(key, item, f"{path}[{index}]", depth + 1)


def _encode(key: str, value: Any) -> bytes:
    return encode({key: value})  # TypeError naming the key if BSON refuses the value


def encode_value(key: str, value: Any) -> bytes:
    """Return the BSON bytes of ``{key: value}``; raise ``TypeError`` naming the key if it can't,
    ``ValueError`` for a nested key MongoDB would misread or nesting past :data:`MAX_NESTING`."""
    _check_nested(key, value, "")
    return _encode(key, value)


# Values that cannot change in place: a handler holding one cannot change the session without
# assigning, so handing one out needs no snapshot and no copy.
_IMMUTABLE = frozenset({str, int, float, bool, type(None), bytes, datetime, ObjectId})


class Session(MutableMapping[str, Any]):
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
    # those first records, in _stored, how the key looks in the store (its BSON bytes, None
    # when the store does not hold it); changes() compares only those keys. Immutable values
    # handed out are not recorded: they can only change by assignment. A loaded value may be
    # shared with the store (MemorySessionStore): it is never changed in place, only copied.
    __slots__ = (
        "_bound",
        "_data",
        "_encoded",
        "_invalidated",
        "_regenerated",
        "_replaced_id",
        "_stored",
        "accessed_at",
        "created_at",
        "expires_at",
        "id",
        "ip",
        "is_new",
        "rotated_at",
        "user_agent",
        "user_id",
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
        self._stored: dict[str, bytes | None] = {}
        self._encoded: dict[str, bytes] | None = None
        self._replaced_id: str | None = None
        self._regenerated = False
        self._invalidated = False

    @classmethod
    def from_record(cls, record: base.SessionRecord) -> Session:
        """The session a store loaded."""
        session = cls(
            record.data,
            session_id=record.id,
            is_new=False,
            created_at=record.created_at,
            rotated_at=record.rotated_at,
            accessed_at=record.accessed_at,
            expires_at=record.expires_at,
        )
        if record.user_id is not None:
            session.user_id, session.ip, session.user_agent = (
                record.user_id,
                record.ip,
                record.user_agent,
            )
        return session

    def __getitem__(self, key: str) -> Any:
        value = self._data[key]
        if type(value) in _IMMUTABLE or key in self._stored or self.is_new:
            return value
        # A stored value handed out for the first time: it may be changed in place, so remember
        # how it is stored, and hand out a copy (the loaded one may be shared with the store).
        self._stored[key] = _encode(key, value)
        value = self._data[key] = copy_value(value)
        return value

    def __setitem__(self, key: str, value: Any) -> None:
        check_key(key)
        encode_value(key, value)
        self._remember(key)
        self._data[key] = value

    def __delitem__(self, key: str) -> None:
        self._remember(key)
        del self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __repr__(self) -> str:
        return f"<Session id=…{self.id[-4:]} new={self.is_new} keys={sorted(self._data)!r}>"

    def _remember(self, key: str) -> None:
        """Record how ``key`` looks in the store, before it first changes."""
        if key not in self._stored and not self.is_new:
            self._stored[key] = _encode(key, self._data[key]) if key in self._data else None

    def regenerate(self) -> None:
        """Give the session a new id and token, keeping its data; the old id dies at save.

        Call it when privileges change (login): it defeats session fixation. The old id and
        all its tokens stop working as soon as the response is saved.
        """
        self._renew()
        self._regenerated = True

    def invalidate(self) -> None:
        """Empty the session and end it: the stored record is deleted, the cookie expired. Data
        written after this call starts a fresh, anonymous session with a new id."""
        self._renew()
        self._data.clear()
        self._invalidated = True
        self.user_id = self.ip = self.user_agent = None

    def bind_user(self, user_id: str | None) -> None:
        """Bind the session to ``user_id`` at login (``None``: unbind); it implies
        :meth:`regenerate`.

        The id is stored in the session document (indexed), so ``current_user`` costs no
        query and a store with the capability can list and revoke the user's sessions; the
        mixin records the client's IP and User-Agent with it (setting ``remember_device``).
        Raises ``TypeError`` for an id that is not a non-empty ``str`` of at most 1024
        characters.
        """
        if user_id is not None and (
            not isinstance(user_id, str) or not user_id or len(user_id) > 1024
        ):
            raise TypeError(
                f"bind_user() takes a non-empty str of at most 1024 characters or None, "
                f"not {type(user_id).__name__} {str(user_id)[:40]!r}"
            )
        self.regenerate()
        self.user_id = user_id
        self.ip = self.user_agent = None
        self._bound = user_id is not None

    @property
    def user_bound(self) -> bool:
        """True once :meth:`bind_user` bound a user in this request (until it is saved)."""
        return self._bound

    def record_device(self, ip: str | None, user_agent: str | None) -> None:
        """Keep the client's IP and User-Agent with the user just bound (the mixin calls it)."""
        self.ip, self.user_agent = ip, user_agent

    @property
    def handle(self) -> str:
        """The session's handle, as :meth:`UserSessionStore.list_user_sessions` shows it: pass
        it as ``current`` to mark this session, as ``keep`` to log out everywhere else."""
        return session_handle(self.id)

    def _renew(self) -> None:
        """Become a new session under a new id, remembering the stored id to retire."""
        if not self.is_new:
            for key, value in self._data.items():
                if key not in self._stored and type(value) not in _IMMUTABLE:
                    self._data[key] = copy_value(value)  # a new session shares nothing loaded
            if self._replaced_id is None:
                self._replaced_id = self.id
        self.id = new_session_id()
        self.is_new = True
        self._stored = {}

    @property
    def regenerated(self) -> bool:
        """True once :meth:`regenerate` was called in this request."""
        return self._regenerated

    @property
    def invalidated(self) -> bool:
        """True once :meth:`invalidate` was called in this request."""
        return self._invalidated

    @property
    def replaced_id(self) -> str | None:
        """The stored id that regenerate/invalidate retired in this request, if any."""
        return self._replaced_id

    # -- for the save policy and the mixin ---------------------------------------------------

    def changes(self) -> tuple[dict[str, Any], list[str]]:
        """Return ``(changed, removed)`` against what the store holds.

        ``changed`` maps each new or modified top-level key to its value (every key, for a new
        session), ``removed`` lists the deleted keys. Raises ``TypeError``/``ValueError`` naming
        the key if a value changed in place can't be stored.
        """
        data, stored = self._data, self._stored
        if self.is_new:
            self._encoded = {key: encode_value(key, value) for key, value in data.items()}
            return dict(data), []
        changed: dict[str, Any] = {}
        encoded: dict[str, bytes] = {}
        if stored:
            for key, value in data.items():
                if key in stored:
                    now = encoded[key] = _encode(key, value)
                    if now != stored[key]:
                        _check_nested(key, value, "")  # only what changed can hold a bad key
                        changed[key] = value
        self._encoded = encoded
        return changed, [key for key, was in stored.items() if was is not None and key not in data]

    def encoded_size(self) -> int:
        """Return the BSON size of all the data, as a save would write it."""
        return len(encode(self._data))

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
        self.is_new = False
        self._replaced_id = None
        self._bound = False
