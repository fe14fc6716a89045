"""What the session does to a response's headers and status, apart from the cookie itself.

Shared caches kept off responses that set the session cookie (``Cache-Control: private``),
``Vary: Cookie`` on responses of handlers that used the session, the answer of a save that
failed (status, body, log line), and the warning for a Secure cookie sent over plain http.
Functions on Tornado's header map and request; no ``tornado.web``.
"""

from __future__ import annotations

import ipaddress
import logging
import weakref
from collections.abc import MutableMapping

from tornado.httputil import HTTPServerRequest

from tornado_mongo_session.errors import SessionEnded, SessionStoreUnavailable

__all__ = [
    "failure_answer",
    "keep_from_shared_caches",
    "traceback_of",
    "vary_on_cookie",
    "warn_if_insecure_transport",
]

log = logging.getLogger("tornado_mongo_session")

_FAILURE_BODIES = {
    503: "Session store unavailable, try again shortly.\n",
    409: "Your session changed in another request (a login, a logout, or a newer token) "
    "before this request's change could be saved: nothing was saved. Reload and try again.\n",
}

_cache_warned: weakref.WeakSet[type] = weakref.WeakSet()  # handler classes warned (item 4)
_insecure_warned = False  # the cookie_secure warning: once per process


def traceback_of(exc: BaseException) -> BaseException | None:
    """What to log as the traceback of ``exc``: none for an unreachable store."""
    # An unreachable store is one line per request: its store logs the cause's traceback once
    # per outage (MongoSessionStore), not the same chained traceback on every request.
    return None if isinstance(exc, SessionStoreUnavailable) else exc


def failure_answer(exc: BaseException) -> tuple[int, str]:
    """The status and body of a response whose session save failed with ``exc``; logged here:
    409 for a session ended elsewhere, 503 for an unreachable store, else 500."""
    if isinstance(exc, SessionEnded):
        status = 409
        log.warning("session save refused, answering 409: %s", exc)
    else:
        status = 503 if isinstance(exc, SessionStoreUnavailable) else 500
        log.error("session save failed, answering %d: %s", status, exc, exc_info=traceback_of(exc))
    return status, _FAILURE_BODIES.get(status, "The session could not be saved.\n")


def keep_from_shared_caches(headers: MutableMapping[str, str], handler: type) -> None:
    """Make a response that sets or expires the session cookie ``Cache-Control: private``.

    A response that sets or expires the session cookie is one user's: a shared cache that
    stored it would hand the token (or its removal) to everyone. ``private`` is the directive
    that forbids exactly that (RFC 9111 5.2.2.7) and still lets the user's own browser cache
    the page; ``public`` and ``s-maxage`` (which override ``private`` for shared caches) are
    removed, with one warning per ``handler`` class.
    """
    # "in", not get(): Tornado's header map answers a missing name by raising KeyError inside
    # Mapping.get, which costs more than the rest of this on every response setting the cookie.
    if "Cache-Control" not in headers:
        headers["Cache-Control"] = "private"
        return
    current = headers["Cache-Control"]
    directives = [d.strip() for d in current.split(",") if d.strip()]
    kept = [d for d in directives if d.lower() != "public" and not d.lower().startswith("s-maxage")]
    lowered = {d.lower() for d in kept}
    if len(kept) == len(directives) and lowered & {"private", "no-store"}:
        return
    if len(kept) != len(directives) and handler not in _cache_warned:
        _cache_warned.add(handler)
        log.warning(
            "%s: Cache-Control %r on a response that sets the session cookie; 'public' and "
            "'s-maxage' removed and 'private' added, so that no shared cache stores the "
            "session token (warned once per handler class)",
            handler.__qualname__,
            current,
        )
    if not lowered & {"private", "no-store"}:
        kept.insert(0, "private")
    headers["Cache-Control"] = ", ".join(kept)


def vary_on_cookie(headers: MutableMapping[str, str]) -> None:
    """Add ``Vary: Cookie`` to the response of a handler that used the session."""
    # Its response may differ by cookie (Django does the same). Untouched handlers get
    # nothing: they are as cacheable as without the library.
    if "Vary" not in headers:  # not get(): see keep_from_shared_caches
        headers["Vary"] = "Cookie"
        return
    current = headers["Vary"]
    if current.strip() != "*" and "cookie" not in current.lower():
        headers["Vary"] = f"{current}, Cookie"


def warn_if_insecure_transport(request: HTTPServerRequest) -> None:
    """Warn, once per process, that a Secure cookie was set over plain http (not loopback)."""
    global _insecure_warned
    if _insecure_warned or request.protocol == "https" or _is_loopback(request.host_name):
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


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
