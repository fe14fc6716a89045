"""Demo: one page that shows a session at work: the counter, the token rotating, the cookie,
and what login (bind_user, which regenerates), logout (invalidate) and regenerate did; and a
"Your sessions" page (/sessions) listing the signed-in user's devices, each with a button that
logs it out, and one that logs out everywhere else.

Run with ``make demo`` (starts a MongoDB-compatible server first), then open
http://127.0.0.1:8888 and reload every few seconds. Settings come from ``TORNADO_SESSION_*``
variables; ``make demo`` points ``TORNADO_SESSION_MONGODB_URL`` at the server of
``make mongo-up`` unless you set it. ``DEMO_PORT`` changes the port. Ctrl-C stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import os
import signal
from collections.abc import Callable
from datetime import datetime
from typing import Any

import tornado.web

from tornado_mongo_session import (
    IntervalRotator,
    MongoSessionStore,
    SessionMixin,
    SessionSettings,
    UserSession,
)
from tornado_mongo_session.clock import utc_now

log = logging.getLogger("demo")

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tornado_mongo_session demo</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 46em; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.45 }}
header {{ display: flex; justify-content: space-between; align-items: baseline }}
table {{ border-collapse: collapse; width: 100% }}
th {{ text-align: left; vertical-align: top; width: 9em; padding: .25em .5em .25em 0 }}
td {{ padding: .25em 0 }}
h2 {{ font-size: 1.1em; margin: 1.5em 0 .3em; border-bottom: 1px solid #ddd }}
.did {{ background: #eef6ee; border-left: 4px solid #4a4; padding: .5em 1em }}
.note {{ color: #666; font-size: .9em }}
form {{ display: inline }}
code {{ background: #f3f3f3; padding: 0 .2em }}
</style></head>
<body>
<header><h1>tornado_mongo_session demo</h1><nav>{nav}</nav></header>
{body}
</body></html>"""


def times(n: int) -> str:
    return "1 time" if n == 1 else f"{n} times"


def clock_time(when: datetime | None) -> str:
    return "-" if when is None else when.strftime("%H:%M:%S UTC")


def duration(seconds: float) -> str:
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} s"


def short_id(session_id: str) -> str:
    """The last 4 characters: enough to tell sessions apart on screen, useless to an attacker."""
    return "…" + session_id[-4:]


class DemoPage(SessionMixin, tornado.web.RequestHandler):
    """The page frame: the login state in the header, and helpers the handlers share."""

    @property
    def now(self) -> datetime:
        clock: Callable[[], datetime] = self.settings.get("session_clock", utc_now)
        return clock()

    def button(self, action: str, label: str) -> str:
        return (
            f'<form method="post" action="{action}">{self.xsrf_form_html()}'
            f"<button>{label}</button></form>"
        )

    def show(self, body: str) -> None:
        user = self.session.get("user")
        if user:
            nav = (
                f"signed in as <b>{html.escape(user)}</b> · "
                '<a href="/sessions">your sessions</a> ' + self.button("/logout", "log out")
            )
        else:
            nav = '<a href="/login">log in</a>'
        self.write(PAGE.format(nav=nav, body=body))


class Home(DemoPage):
    """The counter, and everything the session is doing, explained."""

    async def get(self) -> None:
        session = self.session
        did = self.what_happened()
        rotations = self.count_rotations()
        session["visits"] = visits = session.get("visits", 0) + 1
        parts = [
            did,
            f"<p>You have visited this page <b>{times(visits)}</b>.</p>",
            self.session_table(),
            self.token_table(rotations),
            self.cookie_table(),
            "<h2>Try</h2><p>",
            self.button("/regenerate", "regenerate the session"),
            " " if session.get("user") else ' <a href="/login">log in</a> ',
            '<span class="note">or just reload, and again after the token is older than '
            f"{self.session_settings.token_ttl:g} s.</span></p>",
        ]
        self.show("".join(parts))

    @property
    def session_settings(self) -> SessionSettings:
        settings: SessionSettings = self.settings["session_settings"]
        return settings

    def what_happened(self) -> str:
        """The explanation of the last login, logout or regenerate, shown once."""
        if self.get_argument("did", None) == "logout":
            old = html.escape(self.get_argument("old", "")[-4:])
            return (
                '<p class="did"><b>You logged out.</b> <code>session.invalidate()</code> deleted '
                f"session …{old} from MongoDB and the response cleared your cookie "
                "(<code>Set-Cookie: session=; expires=</code> a date in the past), so every copy "
                "of its tokens is dead. This page started a new, anonymous session.</p>"
            )
        did: dict[str, Any] | None = self.session.pop("did", None)
        if did is None:
            return ""
        new = short_id(self.session.id)
        what = (
            f"<b>You logged in as {html.escape(did.get('user', ''))}.</b> Login called "
            "<code>session.bind_user()</code>, which stored your user id in the session and "
            "called "
            if did["action"] == "login"
            else "<b>You regenerated the session.</b> That called "
        )
        return (
            f'<p class="did">{what}<code>session.regenerate()</code>: your data moved to a new '
            f"session id ({html.escape(did['old'])} → {new}) with a new token, in one insert; "
            f"then the old session {html.escape(did['old'])} was deleted, so a cookie planted "
            "or stolen before now opens nothing (session fixation defeated). The visit count "
            "came along.</p>"
        )

    def count_rotations(self) -> int:
        """Rotations seen so far: each page records when its token was issued; a later page
        that arrives with a token issued at another time saw a rotation in between."""
        session = self.session
        rotations: int = session.get("rotations", 0)
        issued = session.rotated_at
        if issued is not None:
            stamp = issued.isoformat()
            seen = session.get("token_seen")
            if seen is not None and seen != stamp:
                rotations = session["rotations"] = rotations + 1
            session["token_seen"] = stamp
        return rotations

    def session_table(self) -> str:
        session = self.session
        settings = self.session_settings
        if session.is_new:
            identity = "none yet: this page's response stores the session and sets its cookie"
        else:
            identity = f"{short_id(session.id)} (the rest is in your cookie, not shown)"
        data = {k: v for k, v in session.items() if k not in ("token_seen", "did")}
        expiry = f"{clock_time(session.expires_at)}: {duration(settings.idle_timeout)} after "
        expiry += "the last use"
        if settings.absolute_timeout is not None:
            expiry += f", and at most {duration(settings.absolute_timeout)} after creation"
        rows = {
            "id": identity,
            "data": html.escape(repr(data)),
            "created": clock_time(session.created_at),
            "expires": "-" if session.expires_at is None else expiry,
        }
        return "<h2>Your session</h2>" + table(rows)

    def token_table(self, rotations: int) -> str:
        session = self.session
        settings = self.session_settings
        rotator: IntervalRotator = self.settings["session_rotator"]
        issued = session.rotated_at
        if issued is None:
            return (
                "<h2>The token</h2><p>Not issued yet: this response creates the session and its "
                f"first token. It will be replaced every {settings.token_ttl:g} s while you use "
                f"the session; the {settings.tokens_kept} newest stay valid.</p>"
            )
        age = (self.now - issued).total_seconds()
        if rotator.should_rotate(rotated_at=issued, now=self.now):
            due = (
                f"<b>yes</b>: it is {age:.1f} s old, at least {settings.token_ttl:g} s, so this "
                "response carries a new token (its <code>Set-Cookie</code>) and the oldest of "
                f"the {settings.tokens_kept} kept is evicted"
            )
        else:
            due = (
                f"no: it is {age:.1f} s old; it is replaced at {settings.token_ttl:g} s, "
                f"on your first visit after {clock_time(issued + rotator.every)}"
            )
        rows = {
            "issued": f"{clock_time(issued)}, {age:.1f} s ago (the token this request came with)",
            "rotations": f"{times(rotations)} so far in this session",
            "rotates now?": due,
        }
        return "<h2>The token</h2>" + table(rows)

    def cookie_table(self) -> str:
        settings = self.session_settings
        attributes = [f"Path={settings.cookie_path}"]
        if settings.cookie_domain:
            attributes.append(f"Domain={settings.cookie_domain}")
        if settings.cookie_httponly:
            attributes.append("HttpOnly (page scripts cannot read it)")
        attributes.append(
            "Secure (sent over HTTPS only)"
            if settings.cookie_secure
            else "no Secure flag: this demo runs on plain HTTP; keep it on in production"
        )
        if settings.cookie_samesite:
            attributes.append(f"SameSite={settings.cookie_samesite}")
        attributes.append(
            "Max-Age up to the session's expiry, renewed with each new token"
            if settings.persistent_cookie
            else "no Max-Age: deleted when the browser closes"
        )
        rows = {
            "name": html.escape(settings.effective_cookie_name),
            "value": "<code>&lt;session id&gt;.&lt;token&gt;</code>",
            "attributes": html.escape("; ".join(attributes)),
            "sent": "only when the token changes (a new session, a rotation, a login) or the "
            "cookie is cleared (logout); never the token your browser already has",
        }
        return "<h2>The cookie</h2>" + table(rows)


def table(rows: dict[str, str]) -> str:
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in rows.items())
    return f"<table>{body}</table>"


class Login(DemoPage):
    async def get(self) -> None:
        self.show(
            '<form method="post" action="/login">'
            f"{self.xsrf_form_html()}"
            '<label>name <input name="name" value="ada" maxlength="40" autofocus></label> '
            "<button>log in</button></form>"
            "<p>There is no password: this only shows what a login does to the session. It "
            "calls <code>session.bind_user(name)</code>, which calls "
            "<code>session.regenerate()</code>: a new id and token, the same data, the old id "
            "dead at once. Log in from a second browser to see two devices on "
            "<i>your sessions</i>.</p>"
        )

    async def post(self) -> None:
        old = "none" if self.session.is_new else short_id(self.session.id)
        user = self.get_argument("name").strip()[:40] or "anonymous"
        self.session.bind_user(user)  # regenerates, and lists the session under the user
        self.session["user"] = user
        self.session["did"] = {"action": "login", "old": old, "user": user}
        self.session["token_seen"] = None  # a new token, but not a rotation
        self.redirect("/")


class Regenerate(DemoPage):
    async def post(self) -> None:
        old = "none" if self.session.is_new else short_id(self.session.id)
        self.session.regenerate()
        self.session["did"] = {"action": "regenerate", "old": old}
        self.session["token_seen"] = None
        self.redirect("/")


class Logout(DemoPage):
    async def post(self) -> None:
        old = "" if self.session.is_new else self.session.id[-4:]
        self.session.invalidate()
        self.redirect(f"/?did=logout&old={old}")


class YourSessions(DemoPage):
    """The signed-in user's sessions, as GitHub and Google show them: one per device."""

    @tornado.web.authenticated
    async def get(self) -> None:
        store: MongoSessionStore = self.settings["session_store"]
        sessions = await store.list_user_sessions(self.current_user, current=self.session.handle)
        rows = "".join(self.device_row(session) for session in sessions)
        others = len(sessions) > 1
        self.show(
            "<h2>Your sessions</h2>"
            '<table class="devices"><tr><th>device</th><th>IP address</th><th>signed in</th>'
            f"<th>last active</th><th></th></tr>{rows}</table>"
            + (
                "<p>" + self.button("/sessions/revoke-others", "log out everywhere else") + "</p>"
                if others
                else ""
            )
            + '<p class="note">Each row is a session bound to you with '
            "<code>session.bind_user()</code>, listed by <code>store.list_user_sessions()</code> "
            "(one query). The buttons call <code>store.revoke_session(handle, user_id=…)</code> "
            "and <code>store.revoke_user(user_id, keep=…)</code>: that device's next request "
            "opens nothing. A handle opens no session.</p>"
        )

    def device_row(self, session: UserSession) -> str:
        if session.current:
            action = "<b>this device</b>"
        else:
            action = (
                f'<form method="post" action="/sessions/revoke">{self.xsrf_form_html()}'
                f'<input type="hidden" name="handle" value="{html.escape(session.handle)}">'
                "<button>log out</button></form>"
            )
        return (
            f"<tr><td>{html.escape(session.user_agent or 'unknown')}</td>"
            f"<td>{html.escape(session.ip or '-')}</td>"
            f"<td>{clock_time(session.created_at)}</td>"
            f"<td>{clock_time(session.accessed_at)}</td><td>{action}</td></tr>"
        )


class RevokeSession(DemoPage):
    @tornado.web.authenticated
    async def post(self) -> None:
        store: MongoSessionStore = self.settings["session_store"]
        # With the signed-in user's id: a handle of someone else's session revokes nothing.
        await store.revoke_session(self.get_argument("handle"), user_id=self.current_user)
        self.redirect("/sessions")


class RevokeOthers(DemoPage):
    @tornado.web.authenticated
    async def post(self) -> None:
        store: MongoSessionStore = self.settings["session_store"]
        await store.revoke_user(self.current_user, keep=self.session.handle)
        self.redirect("/sessions")


def make_app(
    settings: SessionSettings,
    store: MongoSessionStore,
    *,
    clock: Callable[[], datetime] | None = None,
) -> tornado.web.Application:
    """The demo application; ``clock`` replaces the session clock (tests move time)."""
    extra: dict[str, Any] = {} if clock is None else {"session_clock": clock}
    return tornado.web.Application(
        [
            ("/", Home),
            ("/login", Login),
            ("/logout", Logout),
            ("/regenerate", Regenerate),
            ("/sessions", YourSessions),
            ("/sessions/revoke", RevokeSession),
            ("/sessions/revoke-others", RevokeOthers),
        ],
        login_url="/login",
        session_store=store,
        session_settings=settings,
        session_rotator=IntervalRotator(every=settings.token_ttl, keep=settings.tokens_kept),
        xsrf_cookies=True,
        **extra,
    )


async def main() -> None:
    # Ctrl-C sets `stop` through the loop, from the start: on Python 3.10 a KeyboardInterrupt can
    # be raised inside a finalizer, which swallows it, and the program would run on. (Windows'
    # loop has no signal handlers: there Ctrl-C raises KeyboardInterrupt, caught below.)
    stop = asyncio.Event()
    with contextlib.suppress(NotImplementedError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGINT, stop.set)
    # Plain HTTP on loopback: the demo turns off the Secure cookie flag a real site keeps on.
    settings = SessionSettings(cookie_secure=False)
    store = MongoSessionStore.from_settings(settings)
    try:
        await store.ensure_indexes()
        port = int(os.environ.get("DEMO_PORT", "8888"))
        make_app(settings, store).listen(port, "127.0.0.1")
        log.info(
            "demo on http://127.0.0.1:%d (sessions in %s.%s); Ctrl-C stops it",
            port,
            settings.database,
            settings.collection,
        )
        await stop.wait()
    finally:
        await store.close()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    log.info("demo stopped")
