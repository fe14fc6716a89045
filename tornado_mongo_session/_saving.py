"""The saving half of the session mixin: a save plan carried out (the store calls, the
cookie), and the response of a save that failed. What to save is the policy's
(:mod:`tornado_mongo_session.policy`); when, the mixin's ``finish()``."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable

import tornado.iostream

from tornado_mongo_session._event_names import new_event, revoke_event, update_event
from tornado_mongo_session._handler_state import HandlerState
from tornado_mongo_session._response import (
    failure_answer,
    keep_from_shared_caches,
    warn_if_insecure_transport,
)
from tornado_mongo_session.config import SessionConfig
from tornado_mongo_session.policy import SavePlan
from tornado_mongo_session.stores.base import NewSession, SessionStore

__all__ = ["SessionSaving"]

log = logging.getLogger("tornado_mongo_session")


class SessionSaving(HandlerState):
    """Carry out a :class:`~tornado_mongo_session.policy.SavePlan` on the handler."""

    async def _save(
        self, plan: SavePlan, answering: bool, store: SessionStore, config: SessionConfig
    ) -> None:
        """Carry the plan out: the save (one store call), then the retired session's delete
        (insert first: a failure leaves the user in the old session, not none), then the
        cookie. ``answering``: the response waits for this; a failure becomes its answer (the
        caller then finishes it)."""
        events = config.events
        try:
            if plan.save is not None:
                save = store.save(plan.save)
                if events is None:  # no listener: not even a timing is taken
                    result = await save
                else:
                    name = new_event if isinstance(plan.save, NewSession) else update_event
                    result = await events.observe("save", save, name)
                cookie = result.cookie_value or plan.resend_cookie
                if cookie is not None and not self._headers_written:
                    self._set_session_cookie(cookie, plan.max_age, config)
                if self._session is not None:
                    self._session.saved(plan.save, result)
            if plan.retire is not None:
                delete = store.delete(plan.retire)
                if events is not None:
                    delete = events.observe("delete", delete, revoke_event)
                await delete
            if plan.clear_cookie and not self._headers_written:
                self.clear_cookie(config.cookie_name, **config.cookie_attrs)
                keep_from_shared_caches(self._headers, type(self))
        except Exception as exc:  # every failure becomes an error response, or a log line
            if not answering:
                log.error("session save after the response failed: %s", exc, exc_info=exc)
                return
            self._session_failure_response(exc)

    async def _finish_after(self, save: Awaitable[None]) -> None:
        """Finish the response once ``save`` (a save that waits for its store) is done."""
        await save
        if not self._finished:
            # The client may have gone while the session was saved: nobody left to answer.
            with contextlib.suppress(tornado.iostream.StreamClosedError):
                await super().finish()

    def _session_failure_response(self, exc: BaseException) -> None:
        status, body = failure_answer(exc)  # logged there
        if self._headers_written:
            return
        # clear() resets the headers but not the cookies set so far, which Tornado keeps in its
        # private _new_cookie until the headers go out, and no public method takes one back. An
        # error response must not carry them: a session cookie for a save that failed would
        # point the client at nothing, and the handler's own cookies belonged to a response
        # that is not being sent.
        self.__dict__.pop("_new_cookie", None)
        self.clear()
        self.set_status(status)
        self.set_header("Content-Type", "text/plain; charset=UTF-8")
        self.write(body)

    def _set_session_cookie(self, value: str, max_age: int | None, config: SessionConfig) -> None:
        header = config.cookie_header(value, max_age)
        # Tornado's set_cookie builds a Morsel on every call, a good share of a write's CPU;
        # the header is composed from parts made once instead. Tornado's path stays for a value
        # that would need quoting, and when the handler set a cookie of this name itself:
        # Tornado keeps the last one set per name (in its private _new_cookie), so must we.
        if header is None or config.cookie_name in self.__dict__.get("_new_cookie", ()):
            self.set_cookie(config.cookie_name, value, max_age=max_age, **config.cookie_attrs)
        elif "Set-Cookie" in self._headers:  # one the handler added itself stays, before ours
            self._headers.add("Set-Cookie", header)
        else:  # not add(): its checks of the name and value were made on the parts, once
            self._headers["Set-Cookie"] = header
        keep_from_shared_caches(self._headers, type(self))
        if config.cookie_attrs["secure"]:
            warn_if_insecure_transport(self.request)
