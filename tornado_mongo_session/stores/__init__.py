"""Session stores: where session records live. None of them imports tornado."""

from __future__ import annotations

from tornado_mongo_session.stores.base import SaveRequest, SaveResult, SessionRecord, SessionStore
from tornado_mongo_session.stores.mongo import MongoSessionStore

__all__ = [
    "MongoSessionStore",
    "SaveRequest",
    "SaveResult",
    "SessionRecord",
    "SessionStore",
]
