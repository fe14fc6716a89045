"""SessionMixin: the request flow. The only module of the library that imports tornado.web.

1. ``prepare()``: no cookie, nothing (zero store commands). A cookie: one store ``load``; a
   cookie that opens no live session means a new, empty session (and the stale cookie is
   cleared), never the client's id.
2. The handler uses ``self.session`` like a dict.
3. ``finish()`` (every response passes through it: plain, redirect, ``send_error`` and explicit
   calls) asks the save policy (:mod:`tornado_mongo_session.policy`) what to write, carries the
   plan out (the save, the retired session, the cookie), and only then sends the response
   (``write_mode="before_response"``). A failed save turns the response into 503 (store
   unreachable) or 500 (data refused), and nothing partial is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

import tornado.iostream
import tornado.web
import tornado.websocket
from tornado.httputil import parse_cookie

from tornado_mongo_session._tasks import in_background, start
from tornado_mongo_session.config import SessionConfig, config_of
from tornado_mongo_session.errors import (
    SessionConfigError,
    SessionDataError,
    SessionError,
    SessionStoreUnavailable,
)
from tornado_mongo_session.policy import SavePlan, plan_save
from tornado_mongo_session.session import Session
from tornado_mongo_session.stores.base import (
    NewSession,
    SaveResult,
    SessionRecord,
    SessionStore,
)

if TYPE_CHECKING:
    from datetime import datetime

    _Base = tornado.web.RequestHandler
else:
    _Base = object

__all__ = ["SessionMixin"]

log = logging.getLogger("tornado_mongo_session")


class SessionMixin(_Base):
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
    overrides ``finish`` or ``on_finish`` must call the parent's. Set ``session_autoload =
    False`` on a handler class to skip loading the session for it (zero store commands).

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

    session_store: SessionStore | None = None
    session_autoload: bool = True

    _session: Session | None = None
    _session_record: SessionRecord | None = None
    _session_cookie_in: str | None = None
    _session_pending: asyncio.Future[None] | None = None
    _session_deferred: SavePlan | None = None
    _session_load_error: tuple[int, BaseException] | None = None
    _session_config_of_app: SessionConfig | None = None

    @property
    def _session_config(self) -> SessionConfig:
        config = self._session_config_of_app
        if config is None:  # looked up once per request (functools.cached_property locks)
            config = self._session_config_of_app = config_of(self.application)
        return config

    def _session_store(self) -> SessionStore:
        store = type(self).session_store
        if store is None:
            store = self._session_config.store
        if store is None:
            raise SessionConfigError(
                "no session store: set the Application setting 'session_store' (for example "
                "MongoSessionStore.from_settings(SessionSettings())) or a 'session_store' "
                f"attribute on {type(self).__name__}"
            )
        return store

    # -- loading -----------------------------------------------------------------------------

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
            self._session = session
        return session

    async def prepare(self) -> None:
        """Load the session named by the request's cookie, if there is one.

        A store failure is logged here and raised (503, or 500) only when the handler touches
        ``self.session``: handlers that never use the session are unaffected by an outage.
        """
        config = self._session_config
        store = self._session_store()
        if self.session_autoload:
            # Not get_cookie(): Tornado builds a SimpleCookie of every cookie for it, which costs
            # more than the rest of a read; parse_cookie finds the same value.
            header = self.request.headers.get("Cookie")
            cookie = parse_cookie(header).get(config.cookie_name) if header else None
            if cookie:
                self._session_cookie_in = cookie
                events = config.events
                try:
                    load = store.load(cookie, now=config.clock())
                    if events is None:  # no listener: not even a timing is taken
                        record = self._session_record = await load
                    else:
                        record = await events.observe("load", load, _load_event)
                        self._session_record = record
                except SessionError as exc:
                    # Deferred: a handler that never touches self.session still gets its answer.
                    status = 503 if isinstance(exc, SessionStoreUnavailable) else 500
                    message = "session load failed (%d if the handler uses it): %s"
                    log.error(message, status, exc, exc_info=exc)
                    self._session_load_error = (status, exc)
                else:
                    if record is not None and record.user_id is not None and self._loads_user():
                        self.current_user = await self.load_current_user(record.user_id)
        parent = super().prepare()
        if parent is not None:
            await parent

    # -- users -------------------------------------------------------------------------------

    async def load_current_user(self, user_id: str) -> Any:
        """Override to turn the session's user id into ``current_user`` (a database lookup,
        say); ``prepare`` awaits it once per request whose session has a user bound, after the
        session is loaded. Return ``None`` for a user who no longer exists: then
        ``@authenticated`` sends the request to ``login_url``. Not overridden, nothing is
        awaited and ``current_user`` is the user id itself.
        """
        return user_id

    def _loads_user(self) -> bool:
        return type(self).load_current_user is not SessionMixin.load_current_user

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

    # -- WebSocket handlers (or any handler that saves before it finishes) -------------------

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
        plan = plan_save(
            loaded=record,
            session=session,
            cookie_in=None,
            now=now,
            rotator=config.rotator,
            rules=config.rules,
            headers_open=False,
        )
        if plan is None or plan.save is None:
            return
        save = self._session_store().save(plan.save)
        events = config.events
        if events is None:
            result = await save
        else:  # a "saved" event (never "rotated": no rotation over a socket)
            result = await events.observe("save", save, _update_event)
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
        alive = getattr(self._session_store(), "session_alive", None)
        if alive is None or record.in_cookie:
            return record.expires_at > now
        return bool(await alive(record.id, now=now))

    # -- saving ------------------------------------------------------------------------------

    def finish(self, chunk: str | bytes | dict[str, Any] | None = None) -> asyncio.Future[None]:
        """Save the session, then finish the response.

        What to save is decided here, synchronously: a request with nothing to write (no
        change, no rotation, no touch due) finishes at once. In ``before_response`` mode the
        save then runs before anything is sent. In ``after_response`` mode only a save whose
        result must travel in the response (a new session, a rotation, regenerate, invalidate,
        a cookie-held session) runs first; the rest waits for ``on_finish``. While a save is
        pending, further calls return the same future: Tornado calls ``finish()`` again after a
        handler that already did (redirect, explicit finish).
        """
        pending = self._session_pending
        if pending is not None:
            if chunk is not None:
                raise RuntimeError("finish() called with data while the session is being saved")
            return pending
        untouched = self._session is None and self._session_record is None
        if (
            not untouched
            and not self._finished
            and self.get_status() < 500
            and not isinstance(self, tornado.websocket.WebSocketHandler)  # no cookie over a socket
        ):
            try:
                plan = self._session_plan()
            except (SessionDataError, TypeError, ValueError) as exc:
                self._session_failure_response(exc)  # nothing was written
                return super().finish()
            if plan is not None:
                config = self._session_config
                if plan.before_response or config.settings.write_mode == "before_response":
                    if chunk is not None:
                        self.write(chunk)
                    # A store that never waits saves here and now (see _tasks.start).
                    eagerly = not getattr(self._session_store(), "waits_for_io", True)
                    pending = start(self._save_then_finish(plan), eagerly=eagerly)
                    self._session_pending = pending
                    return pending
                self._session_deferred = plan
                if plan.resend_cookie is not None:
                    self._set_session_cookie(plan.resend_cookie, plan.expires_at, plan.now)
        return super().finish(chunk)

    def on_finish(self) -> None:
        """In ``after_response`` mode, run the save that waited for the response to go out."""
        plan = self._session_deferred
        if plan is not None:
            self._session_deferred = None
            in_background(self._save_after_response(plan))
        super().on_finish()

    def _session_plan(self) -> SavePlan | None:
        config = self._session_config
        session = self._session
        if session is not None and session.user_bound and config.settings.remember_device:
            user_agent = self.request.headers.get("User-Agent")
            session.record_device(
                self.request.remote_ip[:64] if self.request.remote_ip else None,
                user_agent[:256] if user_agent else None,
            )
        plan = plan_save(
            loaded=self._session_record,
            session=self._session,
            cookie_in=self._session_cookie_in,
            now=config.clock(),
            rotator=config.rotator,
            rules=config.rules,
            headers_open=not self._headers_written,
        )
        if plan is not None and plan.unsaved_data:
            log.warning(
                "session data of a new session not saved: the headers were already sent, "
                "so its cookie could not be set"
            )
        return plan

    async def _save_then_finish(self, plan: SavePlan) -> None:
        try:
            await self._execute_plan(plan)
        except Exception as exc:  # every failure becomes an error response
            self._session_failure_response(exc)
        if not self._finished:
            # The client may have gone while the session was saved: nobody left to answer.
            with contextlib.suppress(tornado.iostream.StreamClosedError):
                await super().finish()

    async def _save_after_response(self, plan: SavePlan) -> None:
        try:
            await self._execute_plan(plan)
        except Exception as exc:  # nobody awaits this task: log it
            log.error("session save after the response failed: %s", exc, exc_info=exc)

    async def _execute_plan(self, plan: SavePlan) -> None:
        """Send the plan's save (one store call) and retire the replaced session, if any."""
        store = self._session_store()
        events = self._session_config.events
        if plan.save is not None:
            save = store.save(plan.save)
            if events is None:
                result = await save
            else:
                name = _new_event if isinstance(plan.save, NewSession) else _update_event
                result = await events.observe("save", save, name)
            cookie = result.cookie_value or plan.resend_cookie
            if cookie is not None and not self._headers_written:
                self._set_session_cookie(cookie, plan.expires_at, plan.now)
            if self._session is not None:
                self._session.saved(plan.save, result)
        # Insert first, delete second: a failure leaves the user in the old session, not none.
        if plan.retire is not None:
            delete = store.delete(plan.retire)
            await (delete if events is None else events.observe("delete", delete, _revoke_event))
        if plan.clear_cookie and not self._headers_written:
            self.clear_cookie(self._session_config.cookie_name, **self._session_config.cookie_attrs)

    def _session_failure_response(self, exc: BaseException) -> None:
        status = 503 if isinstance(exc, SessionStoreUnavailable) else 500
        log.error("session save failed, answering %d: %s", status, exc, exc_info=exc)
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
        self.write(
            "Session store unavailable, try again shortly.\n"
            if status == 503
            else "The session could not be saved.\n"
        )

    def _set_session_cookie(self, value: str, expires_at: datetime | None, now: datetime) -> None:
        config = self._session_config
        max_age: int | None = None
        if config.rules.persistent_cookie and expires_at is not None:
            max_age = max(0, int((expires_at - now).total_seconds()))
        header = config.cookie_header(value, max_age)
        # Tornado's set_cookie builds a Morsel on every call, a good share of a write's CPU;
        # the header is composed from parts made once instead. Tornado's path stays for a value
        # that would need quoting, and when the handler set a cookie of this name itself:
        # Tornado keeps the last one set per name (in its private _new_cookie), so must we.
        if header is None or config.cookie_name in self.__dict__.get("_new_cookie", ()):
            self.set_cookie(config.cookie_name, value, max_age=max_age, **config.cookie_attrs)
        else:
            self.add_header("Set-Cookie", header)


# What each store call's result is called as a SessionEvent (tornado_mongo_session.events).


def _load_event(record: SessionRecord | None) -> str:
    return "expired" if record is None else "loaded"


def _new_event(_result: SaveResult) -> str:
    return "created"


def _update_event(result: SaveResult) -> str:
    return "rotated" if result.rotated else "saved"


def _revoke_event(_result: None) -> str:
    return "revoked"
