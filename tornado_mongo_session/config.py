"""The library's application settings, read and checked once per Tornado application.

:func:`config_of` turns an application's ``session_*`` settings into a :class:`SessionConfig`.
It does not import tornado: it needs only the application's ``settings`` dict.
"""

from __future__ import annotations

import http.cookies
import re
import weakref
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

from tornado_mongo_session.clock import utc_now
from tornado_mongo_session.errors import SessionConfigError
from tornado_mongo_session.events import EventHooks
from tornado_mongo_session.policy import SaveRules
from tornado_mongo_session.rotation import IntervalRotator, TokenRotator
from tornado_mongo_session.settings import SessionSettings
from tornado_mongo_session.stores.base import SessionStore

__all__ = ["SessionConfig", "config_of"]


class _Application(Protocol):
    settings: dict[str, Any]


class SessionConfig:
    """What the mixin needs from the application settings, checked, with defaults filled in.

    Settings read: ``session_settings`` (a :class:`SessionSettings`; default: one read from the
    environment), ``session_rotator`` (a :class:`TokenRotator`; default: ``IntervalRotator``
    from ``token_ttl`` and ``tokens_kept``), ``session_store``, ``session_clock`` and
    ``session_events`` (listeners of :class:`~tornado_mongo_session.events.SessionEvent`;
    ``events`` is ``None`` without any, so the mixin skips them at no cost). Raises
    :class:`SessionConfigError` naming the setting that has the wrong type.
    """

    def __init__(self, app_settings: Mapping[str, Any]) -> None:
        settings: SessionSettings = _setting(
            app_settings, "session_settings", SessionSettings, SessionSettings
        )
        self.settings = settings
        self.rotator: TokenRotator = _setting(
            app_settings,
            "session_rotator",
            TokenRotator,
            lambda: IntervalRotator(every=settings.token_ttl, keep=settings.tokens_kept),
        )
        self.store: SessionStore | None = app_settings.get("session_store")
        clock = app_settings.get("session_clock", utc_now)
        if not callable(clock):
            raise SessionConfigError("Application setting 'session_clock' must be callable")
        self.clock: Callable[[], datetime] = clock
        self.events = EventHooks.from_setting(app_settings.get("session_events"))
        self.rules = SaveRules.from_settings(settings)
        self.cookie_name = settings.effective_cookie_name
        self.cookie_attrs: dict[str, Any] = {
            "path": settings.cookie_path,
            "domain": settings.cookie_domain,
            "secure": settings.cookie_secure,
            "httponly": settings.cookie_httponly,
            "samesite": settings.cookie_samesite,
        }
        self._header = _header_parts(self.cookie_name, self.cookie_attrs)

    def store_for(self, handler: type[Any]) -> SessionStore:
        """The store of a handler class: its ``session_store`` attribute, else the setting."""
        store: SessionStore | None = getattr(handler, "session_store", None)
        if store is None:
            store = self.store
        if store is None:
            raise SessionConfigError(
                "no session store: set the Application setting 'session_store' (for example "
                "MongoSessionStore.from_settings(SessionSettings())) or a 'session_store' "
                f"attribute on {handler.__name__}"
            )
        return store

    def cookie_header(self, value: str, max_age: int | None) -> str | None:
        """The ``Set-Cookie`` header Tornado's ``set_cookie`` would write for the session
        cookie; ``None`` for a value that would need quoting."""
        if not _PLAIN_VALUE.fullmatch(value):
            return None
        head, before, after = self._header
        if max_age:
            return f"{head}{value}{before}; Max-Age={max_age}{after}"
        return f"{head}{value}{before}{after}"


_PLAIN_VALUE = re.compile(r"[A-Za-z0-9._-]+")  # every store's cookie value: sent unquoted
_UNSAFE = re.compile(r"[\x00-\x20;\x7f]")  # what Tornado's set_cookie refuses in attributes


def _header_parts(name: str, attrs: Mapping[str, Any]) -> tuple[str, str, str]:
    """The session cookie's header around its value and its Max-Age, as Tornado's set_cookie
    writes it (through the standard library's Morsel), composed once."""
    for attr in ("path", "domain", "samesite"):
        if attrs[attr] and _UNSAFE.search(attrs[attr]):
            raise SessionConfigError(
                f"cookie_{attr} {attrs[attr]!r} must hold no spaces, control characters or ';'"
            )
    morsel: http.cookies.Morsel[str] = http.cookies.Morsel()
    morsel.set(name, "\x00", "\x00")
    for attr in ("domain", "path", "samesite", "httponly", "secure"):
        if attrs[attr]:
            morsel[attr] = attrs[attr]
    morsel["max-age"] = "\x01"
    head, rest = morsel.OutputString().split("\x00")
    before, after = rest.split("; Max-Age=\x01")
    return head, before, after


def _setting(
    app_settings: Mapping[str, Any], name: str, kind: type[object], default: Callable[[], Any]
) -> Any:
    """The setting ``name``, checked to be a ``kind``; ``default()`` when it is absent."""
    value = app_settings.get(name)
    if value is None:
        return default()
    if not isinstance(value, kind):
        raise SessionConfigError(
            f"Application setting {name!r} must be a {kind.__name__}, not {type(value).__name__}"
        )
    return value


# Why a cache: the settings are converted (timedeltas, cookie attributes, defaults built) once,
# not on every request, where they would cost more than an untouched request's whole share of
# the library. Keyed weakly by the application, so nothing is added to it and nothing outlives
# it; like Tornado's own settings, they are read once and later changes are not seen.
_configs: weakref.WeakKeyDictionary[_Application, SessionConfig] = weakref.WeakKeyDictionary()


_last: tuple[weakref.ReferenceType[_Application], SessionConfig] | None = None
"""The application asked for last, weakly, and its config: one process mostly serves one
application, and this answers it without the WeakKeyDictionary's lookup."""


def config_of(application: _Application) -> SessionConfig:
    """The :class:`SessionConfig` of ``application`` (a ``tornado.web.Application``)."""
    global _last
    last = _last
    if last is not None and last[0]() is application:
        return last[1]
    config = _configs.get(application)
    if config is None:
        config = _configs[application] = SessionConfig(application.settings)
    _last = (weakref.ref(application, _forget), config)
    return config


def _forget(gone: weakref.ReferenceType[_Application]) -> None:
    """The last application is gone: its config goes with it."""
    global _last
    if _last is not None and _last[0] is gone:
        _last = None
