"""The loading half of the session mixin: the session a request's cookie opens (``prepare``).

Each value of the cookie's name is tried (cookie tossing), one store ``load`` each; a retired
token is judged as of the request's arrival (:func:`~tornado_mongo_session.policy.judge_token`):
a slow request is served, a late one refused, a reused one (theft) logged and, by default, its
session revoked. A store failure is kept for the handler's first use of ``self.session``.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from tornado_mongo_session._event_names import load_event, revoke_event
from tornado_mongo_session._handler_state import HandlerState
from tornado_mongo_session._response import traceback_of
from tornado_mongo_session.config import SessionConfig
from tornado_mongo_session.errors import SessionError, SessionStoreUnavailable
from tornado_mongo_session.policy import TokenVerdict, arrival, judge_token
from tornado_mongo_session.stores.base import SessionRecord, SessionStore

__all__ = ["SessionLoading"]

log = logging.getLogger("tornado_mongo_session")
security_log = logging.getLogger("tornado_mongo_session.security")


class SessionLoading(HandlerState):
    """Load the request's session into the handler's state (called by ``prepare``)."""

    async def load_current_user(self, user_id: str) -> Any:
        """Override to turn the session's user id into ``current_user`` (a database lookup,
        say); ``prepare`` awaits it once per request whose session has a user bound, after the
        session is loaded. Return ``None`` for a user who no longer exists: then
        ``@authenticated`` sends the request to ``login_url``. Not overridden, nothing is
        awaited and ``current_user`` is the user id itself.
        """
        return user_id

    async def _prepare_loaded(
        self, config: SessionConfig, store: SessionStore, cookies: list[str]
    ) -> None:
        """``prepare`` for a request with the session cookie: load, then the user, then the
        ``prepare`` further along the bases. (One coroutine: this runs on every such request.)"""
        # Several values of the name (a sibling subdomain planted one: cookie tossing): each is
        # tried, the first that opens a session wins, and when several were sent and none
        # opens, none is kept as the request's cookie: expiring the name could delete the
        # client's own valid cookie.
        now = config.clock()
        elapsed = self.request.request_time()  # since Tornado read the headers
        events = config.events
        for cookie in cookies:
            try:
                load = store.load(cookie, now=now)
                if events is None:  # no listener: not even a timing is taken
                    record = await load
                else:
                    record = await events.observe("load", load, load_event)
                if record is not None and record.token_retired_at is not None:
                    # A retired token: judged (late request, or reuse), and that is the answer.
                    record = await self._session_judge(record, store, now, elapsed)
                    self._session_record, self._session_cookie_in = record, cookie
                    break
            except SessionError as exc:
                # Deferred: a handler that never touches self.session still gets its answer.
                status = 503 if isinstance(exc, SessionStoreUnavailable) else 500
                message = "session load failed (%d if the handler uses it): %s"
                log.error(message, status, exc, exc_info=traceback_of(exc))
                self._session_load_error = (status, exc)
                self._session_cookie_in = cookie
                break
            if record is not None:
                self._session_record, self._session_cookie_in = record, cookie
                break
        else:
            if len(cookies) == 1:
                self._session_cookie_in = cookies[0]
        record = self._session_record
        if record is not None and record.user_id is not None and self._loads_user():
            self.current_user = await self.load_current_user(record.user_id)
        parent = super().prepare()
        if parent is not None:
            await parent

    def _loads_user(self) -> bool:
        return type(self).load_current_user is not SessionLoading.load_current_user

    async def _session_judge(
        self, record: SessionRecord, store: SessionStore, now: datetime, elapsed: float
    ) -> SessionRecord | None:
        """The record a retired token opens, judged as of the request's arrival: itself, or
        ``None`` (and, for a token reused long after its retirement, the session revoked)."""
        config = self._session_config
        arrived = arrival(now, elapsed)
        verdict = judge_token(record, arrived=arrived, rules=config.rules)
        if verdict is TokenVerdict.OPENS:
            return record
        if verdict is TokenVerdict.LATE:
            self._session_cookie_late = True
            return None
        self._session_cookie_stale = True
        revoke = config.rules.revoke_on_reuse
        retired_at = record.token_retired_at or now
        # A security event: never the token, never the whole session id.
        security_log.warning(
            "token reuse: session …%s presented a token retired %.1f s before the request "
            "arrived (from %s); %s",
            record.id[-4:],
            (arrived - retired_at).total_seconds(),
            self.request.remote_ip,
            "session revoked" if revoke else "logged only (reuse_detection=log)",
        )
        events = config.events
        if events is not None:
            events.emit("theft_detected", "load", 0.0)
        if revoke:
            delete = store.delete(record)
            await (delete if events is None else events.observe("delete", delete, revoke_event))
        return None
