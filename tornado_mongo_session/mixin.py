"""SessionMixin: the request flow. The only module of the library that imports tornado.web.

1. ``prepare()``: no cookie, nothing (zero store commands). A cookie: one store ``load``; a
   cookie that opens no live session means a new, empty session (and the stale cookie is
   cleared), never the client's id.
2. The handler uses ``self.session`` like a dict.
3. ``finish()`` (every response passes through it: plain, redirect, ``send_error`` and explicit
   calls) saves what changed, rotates the token when the rotator says so, pushes the expiry
   forward when due, sets the cookie, and only then sends the response (``write_mode=
   "before_response"``). A failed save turns the response into 503 (store unreachable) or 500
   (data refused), and nothing partial is written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

import tornado.iostream
import tornado.web

from tornado_mongo_session.clock import utc_now
from tornado_mongo_session.errors import (
    SessionConfigError,
    SessionDataError,
    SessionError,
    SessionStoreUnavailable,
    SessionTooLarge,
)
from tornado_mongo_session.rotation import IntervalRotator, TokenRotator
from tornado_mongo_session.session import Session
from tornado_mongo_session.settings import SessionSettings
from tornado_mongo_session.stores.base import (
    NewSession,
    Rotation,
    SessionRecord,
    SessionStore,
    SessionUpdate,
)

if TYPE_CHECKING:
    _Base = tornado.web.RequestHandler
else:
    _Base = object

__all__ = ["SessionMixin"]

log = logging.getLogger("tornado_mongo_session")


@dataclass
class _Plan:
    """What one request will write: computed before the response, sent by ``_execute_plan``.

    ``request`` is the one store save (``None``: nothing to store), ``retire`` a record that
    regenerate/invalidate replaced (deleted after the save). ``keep_cookie``: the client's
    cookie, resent to renew its Max-Age when the expiry is pushed without a new token (only
    with a rotator that never rotates: otherwise a newer token may exist and must not be
    clobbered; the Max-Age is renewed at each rotation instead).
    """

    now: datetime
    request: NewSession | SessionUpdate | None
    retire: SessionRecord | None
    clear_cookie: bool
    must_precede_response: bool
    keep_cookie: str | None = None

    @property
    def expires_at(self) -> datetime | None:
        return None if self.request is None else self.request.expires_at


class _Config:
    """What the mixin needs from the application settings, computed once per application."""

    def __init__(self, app_settings: dict[str, Any]) -> None:
        settings = app_settings.get("session_settings")
        if settings is None:
            settings = SessionSettings()
        elif not isinstance(settings, SessionSettings):
            raise SessionConfigError(
                "Application setting 'session_settings' must be a SessionSettings, "
                f"not {type(settings).__name__}"
            )
        self.settings: SessionSettings = settings
        rotator = app_settings.get("session_rotator")
        if rotator is None:
            rotator = IntervalRotator(every=settings.token_ttl, keep=settings.tokens_kept)
        elif not isinstance(rotator, TokenRotator):
            raise SessionConfigError(
                "Application setting 'session_rotator' must be a TokenRotator, "
                f"not {type(rotator).__name__}"
            )
        self.rotator: TokenRotator = rotator
        self.store: SessionStore | None = app_settings.get("session_store")
        clock = app_settings.get("session_clock", utc_now)
        if not callable(clock):
            raise SessionConfigError("Application setting 'session_clock' must be callable")
        self.clock: Callable[[], datetime] = clock
        self.idle = timedelta(seconds=settings.idle_timeout)
        self.absolute = (
            timedelta(seconds=settings.absolute_timeout)
            if settings.absolute_timeout is not None
            else None
        )
        self.touch = timedelta(seconds=settings.touch_interval)
        self.cookie_attrs: dict[str, Any] = {
            "path": settings.cookie_path,
            "domain": settings.cookie_domain,
            "secure": settings.cookie_secure,
            "httponly": settings.cookie_httponly,
            "samesite": settings.cookie_samesite,
        }

    def deadline(self, created_at: datetime, now: datetime) -> datetime:
        """The earlier of the idle and the absolute deadline."""
        idle = now + self.idle
        if self.absolute is None:
            return idle
        return min(idle, created_at + self.absolute)


class SessionMixin(_Base):
    """Give a ``RequestHandler`` a ``self.session`` kept in a session store.

    Put it before ``RequestHandler`` in the bases: ``class H(SessionMixin, RequestHandler)``.
    Application settings it reads: ``session_store`` (required unless the handler class sets a
    ``session_store`` attribute), ``session_settings`` (a :class:`SessionSettings`; default: one
    read from the environment), ``session_rotator`` (a :class:`TokenRotator`; default:
    ``IntervalRotator(token_ttl, tokens_kept)``) and ``session_clock`` (a callable returning an
    aware UTC datetime; for tests).

    A handler that overrides ``prepare`` must ``await super().prepare()`` first; one that
    overrides ``finish`` or ``on_finish`` must call the parent's. Set ``session_autoload =
    False`` on a handler class to skip loading the session for it (zero store commands).
    """

    session_store: SessionStore | None = None
    session_autoload: bool = True

    _session: Session | None = None
    _session_record: SessionRecord | None = None
    _session_cookie_in: str | None = None
    _session_pending: asyncio.Future[None] | None = None
    _session_deferred: _Plan | None = None
    _session_load_error: tuple[int, BaseException] | None = None

    # -- configuration -----------------------------------------------------------------------

    @property
    def _session_config(self) -> _Config:
        app = self.application
        config = cast("_Config | None", getattr(app, "_tornado_mongo_session_config", None))
        if config is None:
            config = _Config(app.settings)
            app._tornado_mongo_session_config = config  # type: ignore[attr-defined]
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

    # -- the session -------------------------------------------------------------------------

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
                # Built on first use: a handler that never touches the session costs no encoding.
                session = Session(
                    record.data,
                    session_id=record.id,
                    is_new=False,
                    created_at=record.created_at,
                    rotated_at=record.rotated_at,
                    accessed_at=record.accessed_at,
                    expires_at=record.expires_at,
                )
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
            cookie = self.get_cookie(config.settings.cookie_name)
            if cookie:
                self._session_cookie_in = cookie
                await self._load_session(store, config, cookie)
        parent = super().prepare()
        if parent is not None:
            await parent

    async def _load_session(self, store: SessionStore, config: _Config, cookie: str) -> None:
        try:
            record = await store.load(cookie, now=config.clock())
        except SessionError as exc:
            # Deferred: a handler that never touches self.session still gets its answer.
            status = 503 if isinstance(exc, SessionStoreUnavailable) else 500
            log.error(
                "session load failed (%d if the handler uses it): %s", status, exc, exc_info=exc
            )
            self._session_load_error = (status, exc)
            return
        self._session_record = record

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
        if not self._finished and self.get_status() < 500:
            try:
                plan = self._session_plan()
            except (SessionDataError, TypeError, ValueError) as exc:
                self._session_failure_response(exc)  # nothing was written
                return super().finish()
            if plan is not None:
                if plan.must_precede_response or self._session_write_mode == "before_response":
                    if chunk is not None:
                        self.write(chunk)
                    pending = asyncio.ensure_future(self._save_then_finish(plan))
                    self._session_pending = pending
                    return pending
                self._session_deferred = plan
                if plan.keep_cookie is not None:
                    self._set_session_cookie(plan.keep_cookie, plan.expires_at, plan.now)
                    plan.keep_cookie = None
        return super().finish(chunk)

    def on_finish(self) -> None:
        """In ``after_response`` mode, run the save that waited for the response to go out."""
        plan = self._session_deferred
        if plan is not None:
            self._session_deferred = None
            task = asyncio.ensure_future(self._save_after_response(plan))
            _background.add(task)
            task.add_done_callback(_background.discard)
        super().on_finish()

    @property
    def _session_write_mode(self) -> str:
        return self._session_config.settings.write_mode

    async def _save_then_finish(self, plan: _Plan) -> None:
        try:
            await self._execute_plan(plan)
        except Exception as exc:  # every failure becomes an error response
            self._session_failure_response(exc)
        if not self._finished:
            # The client may have gone while the session was saved: nobody left to answer.
            with contextlib.suppress(tornado.iostream.StreamClosedError):
                await super().finish()

    async def _save_after_response(self, plan: _Plan) -> None:
        try:
            await self._execute_plan(plan)
        except Exception as exc:  # nobody awaits this task: log it
            log.error("session save after the response failed: %s", exc, exc_info=exc)

    def _session_failure_response(self, exc: BaseException) -> None:
        status = 503 if isinstance(exc, SessionStoreUnavailable) else 500
        log.error("session save failed, answering %d: %s", status, exc, exc_info=exc)
        if self._headers_written:
            return
        self.__dict__.pop("_new_cookie", None)
        self.clear()
        self.set_status(status)
        self.set_header("Content-Type", "text/plain; charset=UTF-8")
        self.write(
            "Session store unavailable, try again shortly.\n"
            if status == 503
            else "The session could not be saved.\n"
        )

    def _session_plan(self) -> _Plan | None:
        """Decide what this request must write; ``None`` when nothing. No I/O.

        Raises ``TypeError``/``ValueError`` naming the key for data that can't be stored, and
        :class:`SessionTooLarge` over ``max_session_bytes``.
        """
        session, record = self._session, self._session_record
        if session is None and record is None:
            return None
        config = self._session_config
        rotator = config.rotator
        now = config.clock()
        can_set_cookie = not self._headers_written

        if session is not None and session.is_new:
            retire = record if record is not None and session.replaced_id == record.id else None
            data = session.data()
            if data and can_set_cookie:
                self._check_size(session.changes()[2])
                expires_at = config.deadline(now, now)
                request: NewSession | SessionUpdate = NewSession(
                    data=data,
                    created_at=now,
                    now=now,
                    expires_at=expires_at,
                    session_id=session.id,
                    promote=session.regenerated,
                )
                return _Plan(now, request, retire, clear_cookie=False, must_precede_response=True)
            if data:
                log.warning(
                    "session data of a new session not saved: the headers were already sent, "
                    "so its cookie could not be set"
                )
            clear = bool(self._session_cookie_in) and can_set_cookie
            if retire is None and not clear:
                return None
            return _Plan(now, None, retire, clear_cookie=clear, must_precede_response=clear)

        if record is None:
            return None
        changed: dict[str, Any] = {}
        removed: list[str] = []
        if session is not None:  # untouched by the handler: nothing can have changed
            changed, removed, size = session.changes()
            if changed or removed:
                self._check_size(size)
        rotate = can_set_cookie and rotator.should_rotate(rotated_at=record.rotated_at, now=now)
        if not (changed or removed or rotate) and now - record.accessed_at < config.touch:
            return None
        request = SessionUpdate(
            loaded=record,
            now=now,
            expires_at=config.deadline(record.created_at, now),
            changed=changed,
            removed=tuple(removed),
            rotation=Rotation(keep=rotator.keep) if rotate else None,
        )
        plan = _Plan(
            now,
            request,
            None,
            clear_cookie=False,
            # A cookie-held session's data is the cookie: it can only travel in the response.
            must_precede_response=rotate or record.in_cookie,
        )
        if (
            not rotator.rotates
            and can_set_cookie
            and config.settings.persistent_cookie
            and self._session_cookie_in
        ):
            plan.keep_cookie = self._session_cookie_in
        return plan

    async def _execute_plan(self, plan: _Plan) -> None:
        """Send the plan's save (one store call) and retire the replaced session, if any."""
        store = self._session_store()
        session = self._session
        request = plan.request
        if request is not None:
            result = await store.save(request)
            cookie = result.cookie_value or plan.keep_cookie
            if cookie is not None and not self._headers_written:
                self._set_session_cookie(cookie, plan.expires_at, plan.now)
            if session is not None:
                if isinstance(request, NewSession):
                    session.created_at = session.rotated_at = plan.now
                elif result.rotated:
                    session.rotated_at = plan.now
                session.accessed_at = plan.now
                session.expires_at = plan.expires_at
                session.id = result.session_id
        # Insert first, delete second: a failure leaves the user in the old session, not none.
        if plan.retire is not None:
            await store.delete(plan.retire)
        if plan.clear_cookie and not self._headers_written:
            self._clear_session_cookie()
        if session is not None:
            session.mark_saved()

    def _check_size(self, size: int) -> None:
        limit = self._session_config.settings.max_session_bytes
        if size > limit:
            raise SessionTooLarge(
                f"session data is {size} bytes encoded, over max_session_bytes={limit}; "
                "nothing was written",
                size=size,
                limit=limit,
            )

    # -- cookies -----------------------------------------------------------------------------

    def _set_session_cookie(self, value: str, expires_at: datetime | None, now: datetime) -> None:
        config = self._session_config
        max_age: int | None = None
        if config.settings.persistent_cookie and expires_at is not None:
            max_age = max(0, int((expires_at - now).total_seconds()))
        self.set_cookie(config.settings.cookie_name, value, max_age=max_age, **config.cookie_attrs)

    def _clear_session_cookie(self) -> None:
        config = self._session_config
        self.clear_cookie(config.settings.cookie_name, **config.cookie_attrs)


_background: set[asyncio.Future[None]] = set()
