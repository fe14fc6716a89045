"""Session stores: where session records live. None of them imports tornado."""

from __future__ import annotations

from tornado_mongo_session.stores.base import (
    NewSession,
    Rotation,
    SaveResult,
    SessionRecord,
    SessionStore,
    SessionUpdate,
    UserSession,
    UserSessionStore,
)
from tornado_mongo_session.stores.cookie import CookieSessionStore
from tornado_mongo_session.stores.memory import MemorySessionStore
from tornado_mongo_session.stores.mongo import MongoSessionStore
from tornado_mongo_session.stores.tiered import TieredSessionStore

__all__ = [
    "CookieSessionStore",
    "MemorySessionStore",
    "MongoSessionStore",
    "NewSession",
    "Rotation",
    "SaveResult",
    "SessionRecord",
    "SessionStore",
    "SessionUpdate",
    "TieredSessionStore",
    "UserSession",
    "UserSessionStore",
]
