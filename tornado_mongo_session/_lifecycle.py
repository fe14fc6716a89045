"""The session's identity over its life: regenerate (login), invalidate (logout), bind a user,
and the flags the save policy reads from them. No I/O; :class:`~tornado_mongo_session.Session`
inherits it (its data and change tracking are in ``session.py``)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from tornado_mongo_session._bson import copy_value
from tornado_mongo_session._values import IMMUTABLE, Kept, check_key
from tornado_mongo_session.tokens import new_session_id, session_handle

__all__ = ["SessionLifecycle"]


class SessionLifecycle:
    """Identity, user binding and the regenerate/invalidate flags of a session."""

    __slots__ = (
        "_bound",
        "_frozen",
        "_invalidated",
        "_regenerated",
        "_replaced_id",
        "created_at",
        "id",
        "ip",
        "is_new",
        "user_agent",
        "user_id",
    )

    id: str
    is_new: bool
    created_at: datetime | None
    user_id: str | None
    ip: str | None
    user_agent: str | None
    _bound: bool
    _frozen: bool
    _regenerated: bool
    _invalidated: bool
    _replaced_id: str | None
    # Session's (its data and snapshot), changed here in place only.
    _data: dict[str, Any]
    _stored: dict[str, bytes | Kept | None]

    def regenerate(self, *, keep: Iterable[str] | None = None) -> None:
        """Give the session a new id and token; the old id dies at save.

        Call it when privileges change (login): it defeats session fixation. The old id and
        all its tokens stop working as soon as the response is saved. The new session keeps
        the old one's creation time, so its absolute deadline does not move.

        ``keep``: the keys to carry over (default: all). Carry over only what the user may
        keep across a privilege change (a cart); never a CSRF token or anything a visitor
        could have planted before logging in. Raises ``RuntimeError`` once the response's
        headers were sent (``flush()``): the new cookie could no longer reach the client, and
        nothing is changed then.
        """
        if self._frozen:
            raise RuntimeError(
                "session.regenerate() once the response headers are sent (after flush(), or "
                "on a WebSocket): the new session's cookie could not reach the client. Call it "
                "before flush(), and not over a WebSocket: do that in an HTTP request. Nothing "
                "was changed"
            )
        if keep is not None:
            kept = {check_key(key) for key in ([keep] if isinstance(keep, str) else keep)}
            for key in [key for key in self._data if key not in kept]:
                del self._data[key]
        self._renew()
        self._regenerated = True

    def freeze_id(self) -> None:
        """Refuse :meth:`regenerate` from now on. The mixin calls it once the response's
        headers are sent, when a new session's cookie can no longer be set."""
        self._frozen = True

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
                if key not in self._stored and type(value) not in IMMUTABLE:
                    self._data[key] = copy_value(value)  # a new session shares nothing loaded
            if self._replaced_id is None:
                self._replaced_id = self.id
        self.id = new_session_id()
        self.is_new = True
        self._stored.clear()  # a new session: nothing of it is stored yet

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
