"""What each store call's result is called as a :class:`~tornado_mongo_session.events.SessionEvent`
(the mixin passes these to ``EventHooks.observe``)."""

from __future__ import annotations

from tornado_mongo_session.stores.base import SaveResult, SessionRecord

__all__ = ["load_event", "new_event", "revoke_event", "update_event"]


def load_event(record: SessionRecord | None) -> str:
    return "expired" if record is None else "loaded"


def new_event(_result: SaveResult) -> str:
    return "created"


def update_event(result: SaveResult) -> str:
    return "rotated" if result.rotated else "saved"


def revoke_event(_result: None) -> str:
    return "revoked"
