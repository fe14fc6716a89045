"""Demo: a visit counter, login (regenerate), logout (invalidate) and a page about the session.

Run with ``make demo`` (starts a MongoDB-compatible server first), then open
http://127.0.0.1:8888. Settings come from ``TORNADO_SESSION_*`` variables; ``make demo`` points
``TORNADO_SESSION_MONGODB_URL`` at the server of ``make mongo-up`` unless you set it.
"""

from __future__ import annotations

import asyncio
import html
import logging
import os

import tornado.web

from tornado_mongo_session import MongoSessionStore, SessionMixin, SessionSettings
from tornado_mongo_session.clock import utc_now

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>tornado_mongo_session demo</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 2em auto">
<h1>tornado_mongo_session</h1>
<nav><a href="/">counter</a> · <a href="/about">this session</a> ·
{login}</nav>
<main>{body}</main>
</body></html>"""


class Page(SessionMixin, tornado.web.RequestHandler):
    def page(self, body: str) -> None:
        user = self.session.get("user")
        if user:
            login = (
                f"signed in as <b>{html.escape(user)}</b> "
                '<form method="post" action="/logout" style="display:inline">'
                f"{self.xsrf_form_html()}<button>log out</button></form>"
            )
        else:
            login = '<a href="/login">log in</a>'
        self.write(PAGE.format(login=login, body=body))


class Counter(Page):
    async def get(self) -> None:
        self.session["visits"] = self.session.get("visits", 0) + 1
        self.page(f"<p>You have visited this page <b>{self.session['visits']}</b> times.</p>")


class Login(Page):
    async def get(self) -> None:
        self.page(
            '<form method="post">'
            f"{self.xsrf_form_html()}"
            '<label>name <input name="name" value="ada" autofocus></label> '
            "<button>log in</button></form>"
            "<p>Logging in calls <code>session.regenerate()</code>: a new id and token, the "
            "same data, the old id dead at once.</p>"
        )

    async def post(self) -> None:
        self.session.regenerate()
        self.session["user"] = self.get_argument("name")[:40] or "anonymous"
        self.redirect("/about")


class Logout(Page):
    async def post(self) -> None:
        self.session.invalidate()
        self.redirect("/")


class About(Page):
    async def get(self) -> None:
        session = self.session
        rotated = session.rotated_at
        age = f"{(utc_now() - rotated).total_seconds():.1f} s" if rotated else "no token yet"
        rows = {
            "session id": session.id if not session.is_new else "(none: nothing stored yet)",
            "token age": age,
            "created": session.created_at,
            "expires": session.expires_at,
            "data": dict(session),
        }
        body = "".join(
            f"<tr><th align=left>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
            for k, v in rows.items()
        )
        self.page(
            f"<table>{body}</table><p>The token rotates every "
            f"{self.application.settings['session_settings'].token_ttl:g} s; reload to watch it."
            "</p>"
        )


def make_app(settings: SessionSettings, store: MongoSessionStore) -> tornado.web.Application:
    return tornado.web.Application(
        [("/", Counter), ("/login", Login), ("/logout", Logout), ("/about", About)],
        session_store=store,
        session_settings=settings,
        cookie_secret=os.environ.get("DEMO_COOKIE_SECRET", os.urandom(32).hex()),
        xsrf_cookies=True,
    )


async def main() -> None:
    logging.basicConfig(level=logging.INFO)
    # Plain HTTP on loopback: the demo turns off the Secure cookie flag a real site keeps on.
    settings = SessionSettings(cookie_secure=False)
    store = MongoSessionStore.from_settings(settings)
    await store.ensure_indexes()
    app = make_app(settings, store)
    port = int(os.environ.get("DEMO_PORT", "8888"))
    app.listen(port, "127.0.0.1")
    logging.info("demo on http://127.0.0.1:%d (store: %s)", port, settings.database)
    try:
        await asyncio.Event().wait()
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(main())
