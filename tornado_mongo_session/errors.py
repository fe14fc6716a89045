"""The exception hierarchy of tornado_mongo_session.

Every error the library raises on purpose derives from :class:`SessionError`. Errors that wrap a
driver failure are raised ``from`` the driver's exception, so the cause stays in the traceback.
"""

from __future__ import annotations

__all__ = [
    "SessionConfigError",
    "SessionDataError",
    "SessionEnded",
    "SessionError",
    "SessionStoreError",
    "SessionStoreUnavailable",
    "SessionTooLarge",
]


class SessionError(Exception):
    """Base class of every error raised by tornado_mongo_session."""


class SessionConfigError(SessionError, ValueError):
    """The application is configured wrongly (a missing setting, a store of the wrong kind)."""


class SessionStoreError(SessionError):
    """The store refused or failed an operation."""


class SessionStoreUnavailable(SessionStoreError):
    """The store could not be reached in time (server down, network error, timeout).

    The mixin answers such a request with 503; the app recovers when the server returns.
    """


class SessionEnded(SessionStoreError):
    """The session ended (a login, logout or theft revocation in another request deleted it)
    while this request was writing to it: nothing was written.

    The mixin answers such a request with 409, so that no 200 ever acknowledges a write that
    landed nowhere the client can read it.
    """


class SessionDataError(SessionError):
    """The session data cannot be saved as it is; nothing was written."""


class SessionTooLarge(SessionDataError):
    """The encoded session is larger than the configured limit; nothing was written.

    ``size`` is the encoded size in bytes and ``limit`` the limit it exceeded.
    """

    def __init__(self, message: str, *, size: int, limit: int) -> None:
        super().__init__(message)
        self.size = size
        self.limit = limit
