"""SessionMixin: the request flow, Tornado glue. With ``compat.py``, the only module of the
library that imports tornado.web; its parts are composed here: the loading
(``_loading.py``), the carrying out of a save plan (``_saving.py``), the WebSocket saves
(``_socket.py``), on the request's state (``_handler_state.py``).

1. ``prepare()``: no cookie, nothing (zero store commands). A cookie: one store ``load``; a
   cookie that opens no live session means a new, empty session, never the client's id (the
   cookie is left alone: only a logout or proven reuse clears one).
2. The handler uses ``self.session`` like a dict.
3. ``finish()`` (every response passes through it: plain, redirect, ``send_error`` and explicit
   calls) asks the save policy (:mod:`tornado_mongo_session.policy`) what to write, carries the
   plan out (the save, the retired session, the cookie), and only then sends the response
   (``write_mode="before_response"``). A failed save turns the response into 503 (store
   unreachable) or 500 (data refused), and nothing partial is written.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

import tornado.iostream
import tornado.web
import tornado.websocket

from tornado_mongo_session._loading import SessionLoading
from tornado_mongo_session._request_cookie import cookie_values
from tornado_mongo_session._response import vary_on_cookie
from tornado_mongo_session._saving import SessionSaving
from tornado_mongo_session._socket import SessionSocket
from tornado_mongo_session._tasks import in_background, step
from tornado_mongo_session.config import SessionConfig
from tornado_mongo_session.errors import SessionDataError, SessionEnded
from tornado_mongo_session.policy import (
    SaveContext,
    SavePlan,
    nothing_due,
    plan_after_error,
    plan_save,
)
from tornado_mongo_session.session import Session

__all__ = ["SessionMixin"]


log = logging.getLogger("tornado_mongo_session")


class SessionMixin(SessionLoading, SessionSaving, SessionSocket):
    """Give a ``RequestHandler`` a ``self.session`` kept in a session store.

    Put it before ``RequestHandler`` in the bases: ``class H(SessionMixin, RequestHandler)``.
    Application settings it reads: ``session_store`` (required unless the handler class sets a
    ``session_store`` attribute), ``session_settings`` (a :class:`SessionSettings`; default: one
    read from the environment), ``session_rotator`` (a :class:`TokenRotator`; default:
    ``IntervalRotator(token_ttl, tokens_kept)``), ``session_clock`` (a callable returning an
    aware UTC datetime; for tests) and ``session_events`` (listeners called with a
    :class:`~tornado_mongo_session.events.SessionEvent` per store call; see
    docs/observability.md).

    A handler that overrides ``prepare`` must ``await super().prepare()`` first; one that
    overrides ``finish`` must call the parent's. Set ``session_autoload = False`` on a handler
    class to skip loading the session for it (zero store commands).

    Users (docs/integration.md): ``self.session.bind_user(user_id)`` at login; then
    ``self.current_user`` is the session's ``user_id`` (no query: it is in the document the
    request loaded), or what an overridden :meth:`load_current_user` returns for it, awaited in
    ``prepare``; so ``@tornado.web.authenticated`` redirects to ``login_url`` when nobody is
    bound.

    On a ``tornado.websocket.WebSocketHandler`` the session is loaded during the handshake and
    readable in ``open()`` and ``on_message()``; nothing is saved and no cookie is set
    automatically (the handshake response carries none): save changes with
    :meth:`save_session`, re-check a long-lived connection with :meth:`session_still_valid`.
    """

    @property
    def session(self) -> Session:
        """The current session; a new, empty one when the request opened none.

        Creating it costs nothing: a new session is stored only once it holds data. Raises
        ``HTTPError(503)`` when the request's session could not be loaded because the store is
        unreachable (Tornado answers 503; the cause was logged).
        """
        session = self._session
        if session is None:
            record = self._session_record
            if record is not None:
                # Built on first use: a handler that never touches the session costs nothing.
                session = Session.from_record(record)
            elif self._session_load_error is not None:
                status, exc = self._session_load_error
                reason = "Session Store Unavailable" if status == 503 else None
                raise tornado.web.HTTPError(status, reason=reason) from exc
            else:
                session = Session()
            if self._headers_written:
                session.freeze_id()
            self._session = session
        return session

    def prepare(self) -> Awaitable[None]:
        """Load the session named by the request's cookie, if there is one; await the result.

        A store failure is logged here and raised (503, or 500) only when the handler touches
        ``self.session``: handlers that never use the session are unaffected by an outage.
        """
        config = self._session_config
        store = config.store_for(type(self))
        if self.session_autoload:
            # Not get_cookie(): Tornado builds a SimpleCookie of every cookie for it, which costs
            # more than the rest of a read (get_list: no KeyError raised and caught for a
            # request without one).
            headers = self.request.headers.get_list("Cookie")
            cookies = cookie_values("; ".join(headers), config.cookie_name) if headers else None
            if cookies:
                return self._prepare_loaded(config, store, cookies)
        return self._prepare_parent()  # nothing to load: one coroutine either way

    async def _prepare_parent(self) -> None:
        parent = super().prepare()
        if parent is not None:
            await parent

    # -- users -------------------------------------------------------------------------------

    def get_current_user(self) -> Any:
        """What a ``get_current_user`` further along the bases returns (an application's own,
        from a signed cookie, say), else the user id bound to the session (``None`` when
        nobody is, and when the store could not be reached). Costs no query."""
        user = super().get_current_user()
        if user is not None:
            return user
        # Not self.session: Tornado reads current_user for every render(), and a page that
        # never uses the session must not build one, nor fail while the store is unreachable
        # (then nobody is signed in: @authenticated redirects to the login page).
        record = self._session_record
        if record is not None and self._session is None:
            return record.user_id
        if self._session is None and (
            self._session_cookie_in is None or self._session_load_error is not None
        ):
            return None
        # The session, built if need be: a cookie that opened nothing is then cleared.
        return self.session.user_id

    def flush(self, include_footers: bool = False) -> asyncio.Future[None]:
        """Send what is written so far; from then on ``session.regenerate()`` raises, since
        a new session's cookie could no longer be set."""
        future = super().flush(include_footers)
        if self._session is not None:
            self._session.freeze_id()
        return future

    def finish(self, chunk: str | bytes | dict[str, Any] | None = None) -> asyncio.Future[None]:
        """Save the session, then finish the response.

        What to save is decided here, synchronously; nothing to write finishes at once. The
        save runs before anything is sent, unless ``write_mode="after_response"`` lets it wait
        for the response to go out (a save whose result travels in the response never waits).
        While a save is pending, further calls return the same future: Tornado calls
        ``finish()`` again after a handler that already did (redirect, explicit finish).
        """
        pending = self._session_pending
        if pending is not None:
            if chunk is not None:
                raise RuntimeError("finish() called with data while the session is being saved")
            return pending
        session = self._session
        if session is None and self._session_record is None and not self._session_cookie_stale:
            return super().finish(chunk)  # untouched: nothing to save, nothing to add
        if session is not None and not self._headers_written:
            vary_on_cookie(self._headers)
        # A WebSocket's handshake response carries no cookie: its saves are save_session()'s.
        if not self._finished and not isinstance(self, tornado.websocket.WebSocketHandler):
            config = self._session_config
            if self.get_status() < 500:
                try:
                    plan = self._session_plan(config)
                except (SessionDataError, SessionEnded, TypeError, ValueError) as exc:
                    self._session_failure_response(exc)  # nothing was written
                    return super().finish()
            else:  # a failed request still logs out (invalidate() before the error)
                plan = plan_after_error(
                    loaded=self._session_record,
                    session=self._session,
                    now=config.clock(),
                    headers_open=not self._headers_written,
                )
            if plan is None:
                return super().finish(chunk)
            if plan.before_response or config.settings.write_mode == "before_response":
                if chunk is not None:
                    self.write(chunk)
                store = config.store_for(type(self))
                save = self._save(plan, True, store, config)
                if not getattr(store, "waits_for_io", True):
                    # A store that never waits saves here and now (see _tasks.step), and the
                    # response goes out as a plain one does: no task, no turn of the loop.
                    rest = step(save)
                    if rest is None:
                        pending = self._session_pending = super().finish()
                        return pending
                    save = rest
                pending = self._session_pending = asyncio.ensure_future(self._finish_after(save))
                return pending
            if plan.resend_cookie is not None:
                self._set_session_cookie(plan.resend_cookie, plan.max_age, config)
            sent = super().finish(chunk)
            # write_mode="after_response": the save starts once the response is out (and
            # on_finish has run), in this call rather than in an on_finish of ours: an
            # override every request would pay for.
            store = config.store_for(type(self))
            save = self._save(plan, False, store, config)
            if getattr(store, "waits_for_io", True):
                in_background(save)
            else:  # a store that never waits: no task (see _tasks.step)
                rest = step(save)
                if rest is not None:
                    in_background(rest)
            return sent
        return super().finish(chunk)

    def _session_plan(self, config: SessionConfig) -> SavePlan | None:
        """What this request must write (the pure policy), the device recorded first for a
        session bound to a user."""
        session, loaded, now = self._session, self._session_record, config.clock()
        if loaded is not None and nothing_due(loaded, session, now, config.rotator, config.rules):
            return None  # the most common request, told without building a context
        if session is not None and session.user_bound and config.settings.remember_device:
            user_agent = self.request.headers.get("User-Agent")
            session.record_device(
                self.request.remote_ip[:64] if self.request.remote_ip else None,
                user_agent[:256] if user_agent else None,
            )
        context = SaveContext(
            loaded=loaded,
            session=session,
            cookie_in=self._session_cookie_in,
            now=now,
            rotator=config.rotator,
            rules=config.rules,
            headers_open=not self._headers_written,
            cookie_stale=self._session_cookie_stale,
            cookie_late=self._session_cookie_late,
        )
        plan = plan_save(context)
        if plan is not None and plan.unsaved_data:
            log.warning(
                "session data of a new session not saved: the headers were already sent, "
                "so its cookie could not be set"
            )
        return plan
