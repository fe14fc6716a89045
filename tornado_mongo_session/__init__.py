"""Server-side sessions for Tornado, kept in MongoDB, found through a rotating hashed token.

.. code-block:: python

    settings = SessionSettings()
    store = MongoSessionStore.from_settings(settings)
    app = tornado.web.Application(handlers, session_store=store, session_settings=settings)

    class Counter(SessionMixin, tornado.web.RequestHandler):
        async def get(self) -> None:
            self.session["n"] = self.session.get("n", 0) + 1
            self.write(str(self.session["n"]))
"""

from __future__ import annotations

from tornado_mongo_session.errors import (
    SessionConfigError,
    SessionDataError,
    SessionEnded,
    SessionError,
    SessionStoreError,
    SessionStoreUnavailable,
    SessionTooLarge,
)
from tornado_mongo_session.events import SessionEvent, SessionEventListener
from tornado_mongo_session.mixin import SessionMixin
from tornado_mongo_session.rotation import IntervalRotator, NeverRotator, TokenRotator
from tornado_mongo_session.session import Session
from tornado_mongo_session.settings import SessionSettings
from tornado_mongo_session.stores._user_sessions import UserSession, UserSessionStore
from tornado_mongo_session.stores.base import (
    NewSession,
    Rotation,
    SaveResult,
    SessionRecord,
    SessionStore,
    SessionUpdate,
)
from tornado_mongo_session.stores.cookie import CookieSessionStore
from tornado_mongo_session.stores.memory import MemorySessionStore
from tornado_mongo_session.stores.mongo import MongoSessionStore
from tornado_mongo_session.stores.tiered import TieredSessionStore

__all__ = [
    "CookieSessionStore",
    "IntervalRotator",
    "MemorySessionStore",
    "MongoSessionStore",
    "NeverRotator",
    "NewSession",
    "Rotation",
    "SaveResult",
    "Session",
    "SessionConfigError",
    "SessionDataError",
    "SessionEnded",
    "SessionError",
    "SessionEvent",
    "SessionEventListener",
    "SessionMixin",
    "SessionRecord",
    "SessionSettings",
    "SessionStore",
    "SessionStoreError",
    "SessionStoreUnavailable",
    "SessionTooLarge",
    "SessionUpdate",
    "TieredSessionStore",
    "TokenRotator",
    "UserSession",
    "UserSessionStore",
]

__version__ = "0.1.0"
