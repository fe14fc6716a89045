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
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

import tornado.web

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
from tornado_mongo_session.stores.base import SaveRequest, SessionRecord, SessionStore, utc_now
from tornado_mongo_session.tokens import new_token

if TYPE_CHECKING:
    _Base = tornado.web.RequestHandler
else:
    _Base = object

__all__ = ["SessionMixin", "utc_now"]

log = logging.getLogger("tornado_mongo_session")


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

        In ``before_response`` mode every save happens here, before anything is sent. In
        ``after_response`` mode only a save that changes the cookie (a new session, a rotation,
        regenerate, invalidate) happens here, since the cookie must be in the response; the
        rest waits for ``on_finish``. While a save is pending, further calls return the same
        future: Tornado calls ``finish()`` again after a handler that already did (redirect,
        explicit finish).
        """
        pending = self._session_pending
        if pending is not None:
            if chunk is not None:
                raise RuntimeError("finish() called with data while the session is being saved")
            return pending
        if (
            not self._finished
            and self._session_needs_save()
            and (
                self._session_config.settings.write_mode == "before_response"
                or self._session_changes_cookie()
            )
        ):
            if chunk is not None:
                self.write(chunk)
            pending = asyncio.ensure_future(self._save_then_finish())
            self._session_pending = pending
            return pending
        return super().finish(chunk)

    def on_finish(self) -> None:
        """In ``after_response`` mode, save what is left after the response went out."""
        if (
            self._session_config.settings.write_mode == "after_response"
            and self._session_pending is None
            and self._session_needs_save()
        ):
            task = asyncio.ensure_future(self._save_after_response())
            _background.add(task)
            task.add_done_callback(_background.discard)
        super().on_finish()

    def _session_needs_save(self) -> bool:
        return (
            self._session is not None or self._session_record is not None
        ) and self.get_status() < 500

    def _session_changes_cookie(self) -> bool:
        session, record = self._session, self._session_record
        if session is not None and session.is_new:
            return bool(session.data() or self._session_cookie_in)
        if record is None or self._headers_written:
            return False
        if record.origin == "cookie":
            return True  # the cookie holds the data: any save sends a new cookie
        config = self._session_config
        return config.rotator.should_rotate(rotated_at=record.rotated_at, now=config.clock())

    async def _save_then_finish(self) -> None:
        try:
            await self._save_session()
        except Exception as exc:  # every failure becomes an error response
            self._session_failure_response(exc)
        if not self._finished:
            await super().finish()

    async def _save_after_response(self) -> None:
        try:
            await self._save_session()
        except Exception as exc:  # nobody awaits this task: log it
            log.error("session save after the response failed: %s", exc, exc_info=exc)

    def _session_failure_response(self, exc: BaseException) -> None:
        status = 503 if isinstance(exc, SessionStoreUnavailable) else 500
        if isinstance(exc, SessionDataError | TypeError | ValueError):
            status = 500
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

    async def _save_session(self) -> None:
        """Turn the session's changes into at most one store save (plus a delete on regenerate)."""
        session = self._session
        record = self._session_record
        config = self._session_config
        store = self._session_store()
        now = config.clock()
        can_set_cookie = not self._headers_written
        rotator = config.rotator

        if session is not None and session.is_new:
            data = session.data()
            if data and can_set_cookie:
                _changed, _removed, size = session.changes()
                self._check_size(size)
                created = now
                result = await store.save(
                    SaveRequest(
                        session_id=session.id,
                        loaded=None,
                        data=data,
                        changed=data,
                        removed=[],
                        now=now,
                        created_at=created,
                        new_token=new_token(),
                        tokens_kept=rotator.keep,
                        expires_at=config.deadline(created, now),
                        accessed_at=now,
                        promote=session.regenerated,
                    )
                )
                session.id = result.session_id or session.id
                session.created_at = session.rotated_at = session.accessed_at = now
                session.expires_at = config.deadline(created, now)
                if result.cookie_value is not None:
                    self._set_session_cookie(result.cookie_value, session.expires_at, now)
            elif data:
                log.warning(
                    "session data of a new session not saved: the headers were already sent, "
                    "so its cookie could not be set"
                )
            elif self._session_cookie_in and can_set_cookie:
                self._clear_session_cookie()
            if record is not None and session.replaced_id == record.id:
                await store.delete(record)
            session.mark_saved()
            return

        if record is None:
            return
        changed: dict[str, Any] = {}
        removed: list[str] = []
        if session is not None:  # untouched by the handler: nothing can have changed
            changed, removed, size = session.changes()
            if changed or removed:
                self._check_size(size)
        rotate = can_set_cookie and rotator.should_rotate(rotated_at=record.rotated_at, now=now)
        touch = bool(changed or removed or rotate) or now - record.accessed_at >= config.touch
        if not touch:
            return
        expires_at = config.deadline(record.created_at, now)
        result = await store.save(
            SaveRequest(
                session_id=record.id,
                loaded=record,
                data=record.data if session is None else session.data(),
                changed=changed,
                removed=removed,
                now=now,
                created_at=record.created_at,
                new_token=new_token() if rotate else None,
                tokens_kept=rotator.keep,
                expires_at=expires_at,
                accessed_at=now,
            )
        )
        if result.cookie_value is not None and can_set_cookie:
            self._set_session_cookie(result.cookie_value, expires_at, now)
        if session is not None:
            if result.rotated:
                session.rotated_at = now
            session.accessed_at = now
            session.expires_at = expires_at
            session.id = result.session_id or session.id
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
