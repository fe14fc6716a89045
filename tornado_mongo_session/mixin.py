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
import ipaddress
import logging
import weakref
from collections.abc import Awaitable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import tornado.iostream
import tornado.web
import tornado.websocket
from tornado.httputil import parse_cookie

from tornado_mongo_session._tasks import in_background, step
from tornado_mongo_session.config import SessionConfig, config_of
from tornado_mongo_session.errors import (
    SessionDataError,
    SessionEnded,
    SessionError,
    SessionStoreUnavailable,
)
from tornado_mongo_session.policy import (
    SaveContext,
    SavePlan,
    TokenVerdict,
    arrival,
    judge_token,
    plan_after_error,
    plan_save,
)
from tornado_mongo_session.session import Session
from tornado_mongo_session.stores.base import NewSession, SaveResult, SessionRecord, SessionStore

if TYPE_CHECKING:
    _Base = tornado.web.RequestHandler
else:
    _Base = object

__all__ = ["SessionMixin"]

log = logging.getLogger("tornado_mongo_session")
security_log = logging.getLogger("tornado_mongo_session.security")


_FAILURE_BODIES = {
    503: "Session store unavailable, try again shortly.\n",
    409: "Your session changed in another request (a login, a logout, or a newer token) "
    "before this request's change could be saved: nothing was saved. Reload and try again.\n",
}


_cache_warned: weakref.WeakSet[type] = weakref.WeakSet()  # handler classes warned (item 4)
_insecure_warned = False  # the cookie_secure warning: once per process


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _traceback_of(exc: BaseException) -> BaseException | None:
    # An unreachable store is one line per request: its store logs the cause's traceback once
    # per outage (MongoSessionStore), not the same chained traceback on every request.
    return None if isinstance(exc, SessionStoreUnavailable) else exc


MAX_COOKIE_VALUES = 4
"""How many values of the session cookie's name one request may have tried (cookie tossing)."""


def cookie_values(header: str, name: str) -> list[str]:
    """The values of cookie ``name`` in a ``Cookie`` header, in order, at most
    :data:`MAX_COOKIE_VALUES`.

    Not ``get_cookie()`` (Tornado builds a SimpleCookie of every cookie for it, which costs
    more than the rest of a read) nor ``parse_cookie`` (a dict: it keeps only the last value of
    a name, which a sibling subdomain can plant). Splits as ``parse_cookie`` does.
    """
    if name not in header:
        return []
    values: list[str] = []
    for chunk in header.split(";"):
        key, equals, value = chunk.partition("=")
        if not equals or key.strip() != name:
            continue
        value = value.strip()
        if value.startswith('"'):
            value = parse_cookie(chunk).get(name, "")  # unquoted as Tornado would
        if value:
            values.append(value)
            if len(values) == MAX_COOKIE_VALUES:
                break
    return values


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
    _session_cookie_stale: bool = False
    _session_cookie_late: bool = False

    @property
    def _session_config(self) -> SessionConfig:
        config = self._session_config_of_app
        if config is None:  # looked up once per request (functools.cached_property locks)
            config = self._session_config_of_app = config_of(self.application)
        return config

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

    async def prepare(self) -> None:
        """Load the session named by the request's cookie, if there is one.

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
                await self._load_session(store, cookies)
                record = self._session_record
                if record is not None and record.user_id is not None and self._loads_user():
                    self.current_user = await self.load_current_user(record.user_id)
        parent = super().prepare()
        if parent is not None:
            await parent

    async def _load_session(self, store: SessionStore, cookies: list[str]) -> None:
        # Several values of the name (a sibling subdomain planted one: cookie tossing): each is
        # tried, the first that opens a session wins, and when several were sent and none
        # opens, none is kept as the request's cookie: expiring the name could delete the
        # client's own valid cookie.
        config = self._session_config
        now = config.clock()
        elapsed = self.request.request_time()  # since Tornado read the headers
        events = config.events
        for cookie in cookies:
            try:
                load = store.load(cookie, now=now)
                if events is None:  # no listener: not even a timing is taken
                    record = await load
                else:
                    record = await events.observe("load", load, _load_event)
                if record is not None and record.token_retired_at is not None:
                    # A retired token: judged (late request, or reuse), and that is the answer.
                    self._session_record = await self._session_judge(record, store, now, elapsed)
                    self._session_cookie_in = cookie
                    return
            except SessionError as exc:
                # Deferred: a handler that never touches self.session still gets its answer.
                status = 503 if isinstance(exc, SessionStoreUnavailable) else 500
                message = "session load failed (%d if the handler uses it): %s"
                log.error(message, status, exc, exc_info=_traceback_of(exc))
                self._session_load_error = (status, exc)
                self._session_cookie_in = cookie
                return
            if record is not None:
                self._session_record = record
                self._session_cookie_in = cookie
                return
        if len(cookies) == 1:
            self._session_cookie_in = cookies[0]

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
        alive = getattr(self._session_config.store_for(type(self)), "session_alive", None)
        if alive is None or record.in_cookie:
            return record.expires_at > now
        return bool(await alive(record.id, now=now))

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
            await (delete if events is None else events.observe("delete", delete, _revoke_event))
        return None

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
        for ``on_finish`` (a save whose result travels in the response never waits). While a
        save is pending, further calls return the same future: Tornado calls ``finish()`` again
        after a handler that already did (redirect, explicit finish).
        """
        pending = self._session_pending
        if pending is not None:
            if chunk is not None:
                raise RuntimeError("finish() called with data while the session is being saved")
            return pending
        untouched = (
            self._session is None
            and self._session_record is None
            and not self._session_cookie_stale
        )
        if self._session is not None and not self._headers_written:
            self._vary_on_cookie()
        if (
            not untouched
            and not self._finished
            and not isinstance(self, tornado.websocket.WebSocketHandler)  # no cookie over a socket
        ):
            config = self._session_config
            if self.get_status() < 500:
                try:
                    plan = self._session_plan()
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
                save = self._save(plan, True)
                if not getattr(config.store_for(type(self)), "waits_for_io", True):
                    # A store that never waits saves here and now (see _tasks.step), and the
                    # response goes out as a plain one does: no task, no turn of the loop.
                    rest = step(save)
                    if rest is None:
                        pending = self._session_pending = super().finish()
                        return pending
                    save = rest
                pending = self._session_pending = asyncio.ensure_future(self._finish_after(save))
                return pending
            self._session_deferred = plan
            if plan.resend_cookie is not None:
                self._set_session_cookie(plan.resend_cookie, plan.max_age)
        return super().finish(chunk)

    def on_finish(self) -> None:
        """In ``after_response`` mode, run the save that waited for the response to go out."""
        plan = self._session_deferred
        if plan is not None:
            self._session_deferred = None
            save = self._save(plan, False)
            if getattr(self._session_config.store_for(type(self)), "waits_for_io", True):
                in_background(save)
            else:  # a store that never waits: no task (see _tasks.step)
                rest = step(save)
                if rest is not None:
                    in_background(rest)
        super().on_finish()

    def _session_plan(self) -> SavePlan | None:
        """What this request must write (the pure policy), the device recorded first for a
        session bound to a user."""
        config = self._session_config
        session = self._session
        if session is not None and session.user_bound and config.settings.remember_device:
            user_agent = self.request.headers.get("User-Agent")
            session.record_device(
                self.request.remote_ip[:64] if self.request.remote_ip else None,
                user_agent[:256] if user_agent else None,
            )
        context = SaveContext(
            loaded=self._session_record,
            session=session,
            cookie_in=self._session_cookie_in,
            now=config.clock(),
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

    async def _save(self, plan: SavePlan, answering: bool) -> None:
        """Carry the plan out: the save (one store call), then the retired session's delete
        (insert first: a failure leaves the user in the old session, not none), then the
        cookie. ``answering``: the response waits for this; a failure becomes its answer (the
        caller then finishes it)."""
        config = self._session_config
        store, events = config.store_for(type(self)), config.events
        try:
            if plan.save is not None:
                save = store.save(plan.save)
                if events is None:  # no listener: not even a timing is taken
                    result = await save
                else:
                    name = _new_event if isinstance(plan.save, NewSession) else _update_event
                    result = await events.observe("save", save, name)
                cookie = result.cookie_value or plan.resend_cookie
                if cookie is not None and not self._headers_written:
                    self._set_session_cookie(cookie, plan.max_age)
                if self._session is not None:
                    self._session.saved(plan.save, result)
            if plan.retire is not None:
                delete = store.delete(plan.retire)
                if events is not None:
                    delete = events.observe("delete", delete, _revoke_event)
                await delete
            if plan.clear_cookie and not self._headers_written:
                self.clear_cookie(config.cookie_name, **config.cookie_attrs)
                self._keep_from_shared_caches()
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
        if isinstance(exc, SessionEnded):
            status = 409
            log.warning("session save refused, answering 409: %s", exc)
        else:
            status = 503 if isinstance(exc, SessionStoreUnavailable) else 500
            log.error(
                "session save failed, answering %d: %s", status, exc, exc_info=_traceback_of(exc)
            )
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
        self.write(_FAILURE_BODIES.get(status, "The session could not be saved.\n"))

    def _set_session_cookie(self, value: str, max_age: int | None) -> None:
        config = self._session_config
        header = config.cookie_header(value, max_age)
        # Tornado's set_cookie builds a Morsel on every call, a good share of a write's CPU;
        # the header is composed from parts made once instead. Tornado's path stays for a value
        # that would need quoting, and when the handler set a cookie of this name itself:
        # Tornado keeps the last one set per name (in its private _new_cookie), so must we.
        if header is None or config.cookie_name in self.__dict__.get("_new_cookie", ()):
            self.set_cookie(config.cookie_name, value, max_age=max_age, **config.cookie_attrs)
        else:
            self.add_header("Set-Cookie", header)
        self._keep_from_shared_caches()
        if not _insecure_warned and config.cookie_attrs["secure"]:
            self._warn_if_insecure_transport()

    def _keep_from_shared_caches(self) -> None:
        # A response that sets or expires the session cookie is one user's: a shared cache
        # that stored it would hand the token (or its removal) to everyone. ``private`` is the
        # directive that forbids exactly that (RFC 9111 5.2.2.7) and still lets the user's own
        # browser cache the page; ``public`` and ``s-maxage`` (which override ``private`` for
        # shared caches) are removed, with one warning per handler class.
        current = self._headers.get("Cache-Control")
        if current is None:
            self._headers["Cache-Control"] = "private"
            return
        directives = [d.strip() for d in current.split(",") if d.strip()]
        kept = [
            d for d in directives if d.lower() != "public" and not d.lower().startswith("s-maxage")
        ]
        lowered = {d.lower() for d in kept}
        if len(kept) == len(directives) and lowered & {"private", "no-store"}:
            return
        if len(kept) != len(directives) and type(self) not in _cache_warned:
            _cache_warned.add(type(self))
            log.warning(
                "%s: Cache-Control %r on a response that sets the session cookie; 'public' and "
                "'s-maxage' removed and 'private' added, so that no shared cache stores the "
                "session token (warned once per handler class)",
                type(self).__qualname__,
                current,
            )
        if not lowered & {"private", "no-store"}:
            kept.insert(0, "private")
        self._headers["Cache-Control"] = ", ".join(kept)

    def _vary_on_cookie(self) -> None:
        # The handler used the session: its response may differ by cookie (Django does the
        # same). Untouched handlers get nothing: they are as cacheable as without the library.
        current = self._headers.get("Vary")
        if current is None:
            self._headers["Vary"] = "Cookie"
        elif current.strip() != "*" and "cookie" not in current.lower():
            self._headers["Vary"] = f"{current}, Cookie"

    def _warn_if_insecure_transport(self) -> None:
        global _insecure_warned
        request = self.request
        if request.protocol == "https" or _is_loopback(request.host_name):
            return
        _insecure_warned = True
        log.warning(
            "the session cookie is Secure (cookie_secure=True) but this request to %r came over "
            "plain http: browsers will not send the cookie back, so every visit starts a new "
            "session. Behind a TLS-terminating proxy, start Tornado's HTTPServer with "
            "xheaders=True so the request's protocol is the proxy's; for plain-http "
            "development set cookie_secure=False (warned once per process)",
            request.host_name,
        )


# What each store call's result is called as a SessionEvent (tornado_mongo_session.events).


def _load_event(record: SessionRecord | None) -> str:
    return "expired" if record is None else "loaded"


def _new_event(_result: SaveResult) -> str:
    return "created"


def _update_event(result: SaveResult) -> str:
    return "rotated" if result.rotated else "saved"


def _revoke_event(_result: None) -> str:
    return "revoked"
