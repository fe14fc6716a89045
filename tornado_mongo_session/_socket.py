"""The WebSocket half of the session mixin: saving and re-checking a session outside an HTTP
response (no cookie can be set there, so nothing that needs one is allowed)."""

from __future__ import annotations

from tornado_mongo_session._event_names import update_event
from tornado_mongo_session._handler_state import HandlerState
from tornado_mongo_session.errors import SessionDataError
from tornado_mongo_session.policy import SaveContext, plan_save

__all__ = ["SessionSocket"]


class SessionSocket(HandlerState):
    """:meth:`save_session` and :meth:`session_still_valid`, for WebSocket handlers (or any
    handler that saves before it finishes)."""

    async def save_session(self) -> None:
        """Save the session's changes now, without a cookie: what a WebSocket handler calls
        after changing ``self.session`` in ``open()`` or ``on_message()``.

        One store update (also pushing the idle deadline forward when ``touch_interval`` has
        passed, so calling it keeps a long connection's session alive); nothing when nothing
        is due. Never rotates the token. Raises :class:`SessionDataError` for what can only
        travel in a cookie: a new session (the request came without one), one regenerated,
        invalidated or bound to a user here, or a session held in the cookie itself; and what
        the store raises (:class:`SessionStoreUnavailable`, …).
        """
        session, record = self._session, self._session_record
        if session is None or (
            record is None and session.is_new and not len(session) and session.user_id is None
        ):
            return  # nothing was ever stored, and nothing is to be
        if session.is_new or record is None or record.in_cookie:
            raise SessionDataError(
                "this session can only be saved with a response that sets its cookie (a new, "
                "regenerated, invalidated, user-bound or cookie-held session): not over a "
                "WebSocket; do that in an HTTP request"
            )
        config = self._session_config
        now = config.clock()
        context = SaveContext(
            loaded=record,
            session=session,
            cookie_in=None,
            now=now,
            rotator=config.rotator,
            rules=config.rules,
            headers_open=False,
        )
        plan = plan_save(context)
        if plan is None or plan.save is None:
            return
        save = config.store_for(type(self)).save(plan.save)
        events = config.events
        if events is None:
            result = await save
        else:  # a "saved" event (never "rotated": no rotation over a socket)
            result = await events.observe("save", save, update_event)
        session.saved(plan.save, result)
        record.accessed_at, record.expires_at = now, plan.save.expires_at

    async def session_still_valid(self) -> bool:
        """Tell whether the session this request opened still exists: not revoked, logged out
        elsewhere or expired. One find (none for a cookie-held session, whose expiry is all
        there is to check); ``False`` when the request opened no session.

        For long-lived WebSocket connections: call it when it matters (before a sensitive
        message, or every few minutes), not per message. The token is not checked: HTTP
        requests of the same browser may have rotated it since the handshake.
        """
        record = self._session_record
        if record is None:
            return False
        now = self._session_config.clock()
        alive = getattr(self._session_config.store_for(type(self)), "session_alive", None)
        if alive is None or record.in_cookie:
            return record.expires_at > now
        return bool(await alive(record.id, now=now))
