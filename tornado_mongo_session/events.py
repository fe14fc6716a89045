"""Session events: what happened to a session and what the store call cost. No tornado, no I/O.

Register listeners with the application setting ``session_events`` (a callable, or a list of
them): each is called with one :class:`SessionEvent` per store call the mixin makes, on the
event loop, before the response goes out, so it must be quick and must not block (count, time,
queue; never wait). With no listener registered the mixin takes no timings and builds no
events: the hooks cost nothing.

An event never carries a token, a cookie value or a session id: a metric or a log line built
from it cannot leak a credential.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from time import perf_counter
from typing import Any, Final, Protocol, TypeVar

from tornado_mongo_session.errors import (
    SessionConfigError,
    SessionDataError,
    SessionStoreUnavailable,
)

__all__ = ["EVENT_NAMES", "EventHooks", "SessionEvent", "SessionEventListener"]

log = logging.getLogger("tornado_mongo_session.events")

_T = TypeVar("_T")

EVENT_NAMES: Final = (
    "created",
    "loaded",
    "rotated",
    "saved",
    "expired",
    "revoked",
    "theft_detected",
    "store_failed",
)
"""Every event name, each documented in docs/observability.md.

- ``created``: a new session was stored (a first save, or the new id of ``regenerate()``).
- ``loaded``: the request's cookie opened a live session.
- ``rotated``: a save replaced the session's token.
- ``saved``: a save of a loaded session that kept its token (data written, or the expiry
  pushed forward).
- ``expired``: the request's cookie opened no live session. Stores answer alike for an
  expired, purged, revoked or unknown session (a forged cookie must learn nothing), so this
  counts all of them; in practice it is dominated by expiry.
- ``revoked``: a stored session was ended before its deadline: ``invalidate()`` (logout) or
  the old id after ``regenerate()``.
- ``theft_detected``: reserved for the token theft detection of issue 11; not emitted yet.
- ``store_failed``: a store call raised; ``outcome`` says how (``unavailable``: the store
  could not be reached, the request gets 503; ``refused``: the data could not be stored, 500;
  ``error``: anything else).
"""


@dataclass(frozen=True, slots=True)
class SessionEvent:
    """One store call the mixin made, and what came of it.

    ``name`` is one of :data:`EVENT_NAMES`; ``operation`` the store method (``load``,
    ``save``, ``delete``); ``latency`` the seconds that call took (wall clock, on the event
    loop); ``outcome`` ``ok``, or for ``store_failed`` the kind of failure.
    """

    name: str
    operation: str
    latency: float
    outcome: str = "ok"


class SessionEventListener(Protocol):
    """Anything callable with one :class:`SessionEvent`. Called on the event loop: it must not
    block. An exception it raises is logged and otherwise ignored: a broken metric never breaks
    a request."""

    def __call__(self, event: SessionEvent, /) -> None: ...


def failure_kind(exc: BaseException) -> str:
    """The ``outcome`` of a ``store_failed`` event for ``exc``."""
    if isinstance(exc, SessionStoreUnavailable):
        return "unavailable"
    if isinstance(exc, SessionDataError):
        return "refused"
    return "error"


class EventHooks:
    """The listeners of one application, and the timing of the store calls they observe."""

    __slots__ = ("listeners",)

    def __init__(self, listeners: Iterable[SessionEventListener]) -> None:
        self.listeners = tuple(listeners)

    @classmethod
    def from_setting(cls, value: Any) -> EventHooks | None:
        """The hooks for the ``session_events`` application setting: a listener or a list (or
        tuple) of them; ``None`` when there is none (the mixin then skips events entirely).

        Raises :class:`SessionConfigError` naming what is not callable.
        """
        if value is None:
            return None
        # A callable is one listener, even if it is also a list (one that collects events).
        listeners = (
            list(value) if isinstance(value, (list, tuple)) and not callable(value) else [value]
        )
        for listener in listeners:
            if not callable(listener):
                raise SessionConfigError(
                    "Application setting 'session_events' must be a callable or a list of "
                    f"callables taking a SessionEvent; got {type(listener).__name__}"
                )
        return cls(listeners) if listeners else None

    def emit(self, name: str, operation: str, latency: float, outcome: str = "ok") -> None:
        """Hand one event to every listener; a listener that raises is logged and skipped."""
        event = SessionEvent(name, operation, latency, outcome)
        for listener in self.listeners:
            try:
                listener(event)
            except Exception:  # a metric must never break the request
                log.exception("session event listener %r failed on %r", listener, event.name)

    async def observe(
        self, operation: str, call: Awaitable[_T], name_of: Callable[[_T], str]
    ) -> _T:
        """Await the store call ``call``, timing it; emit ``name_of(result)`` or, if it
        raises, ``store_failed`` (and raise it on)."""
        started = perf_counter()
        try:
            result = await call
        except Exception as exc:
            self.emit("store_failed", operation, perf_counter() - started, failure_kind(exc))
            raise
        self.emit(name_of(result), operation, perf_counter() - started)
        return result
