"""Log out everywhere: end a user's sessions on every device at once (after a password change,
a lost phone), or on every device but this one.

    GET  /                     who you are and on how many devices (@authenticated)
    GET  /login, POST /login   a form; session.bind_user(name)
    POST /logout               this device: session.invalidate()
    POST /logout/others        every other device: store.revoke_user(user, keep=this session)
    POST /logout/everywhere    every device, this one included

Run it with ``make demo DEMO=logout_everywhere`` and open http://127.0.0.1:8888 in two browsers
(or a normal and a private window); log in to both as the same name, then press "log out
everywhere" in one and reload the other. Settings come from ``TORNADO_SESSION_*`` variables;
``DEMO_PORT`` changes the port. Ctrl-C stops it. docs/examples.md says what each request does.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import os
import signal

import tornado.web

from tornado_mongo_session import MongoSessionStore, SessionMixin, SessionSettings

log = logging.getLogger("logout_everywhere")


class Base(SessionMixin, tornado.web.RequestHandler):
    """``current_user`` is the user id bound to the session (None: nobody)."""

    @property
    def store(self) -> MongoSessionStore:
        store: MongoSessionStore = self.settings["session_store"]
        return store

    def button(self, action: str, label: str) -> str:
        return (
            f'<form method="post" action="{action}">{self.xsrf_form_html()}'
            f"<button>{label}</button></form>"
        )


class Home(Base):
    @tornado.web.authenticated  # nobody bound (never logged in, or revoked): to /login
    async def get(self) -> None:
        devices = await self.store.list_user_sessions(self.current_user)  # one find
        self.write(
            f"<p>Signed in as <b>{html.escape(self.current_user)}</b> on "
            f"{len(devices)} device{'' if len(devices) == 1 else 's'}.</p>"
            + self.button("/logout", "log out")
            + self.button("/logout/others", "log out everywhere else")
            + self.button("/logout/everywhere", "log out everywhere")
        )


class Login(Base):
    def get(self) -> None:
        self.write(
            f'<form method="post">{self.xsrf_form_html()}'
            '<input name="name" placeholder="any name"> <button>log in</button></form>'
        )

    def post(self) -> None:
        name = self.get_argument("name").strip()
        if not 1 <= len(name) <= 40:  # a real app checks a password here
            raise tornado.web.HTTPError(400, "a name of 1 to 40 characters")
        self.session.bind_user(name)  # a new id and token; listed under the user
        self.redirect(self.get_argument("next", "/"))


class Logout(Base):
    def post(self) -> None:
        self.session.invalidate()  # this session deleted, this browser's cookie cleared
        self.redirect("/login")


# --8<-- [start:everywhere]
class LogoutOthers(Base):
    @tornado.web.authenticated
    async def post(self) -> None:
        # One delete of every session bound to the user but this one: their next request
        # opens nothing. This device stays signed in (after a password change, say).
        await self.store.revoke_user(self.current_user, keep=self.session.handle)
        self.redirect("/")


class LogoutEverywhere(Base):
    @tornado.web.authenticated
    async def post(self) -> None:
        # The other devices in one delete, then this one with invalidate(), which also clears
        # this browser's cookie (a revoked device's cookie is left to open nothing).
        await self.store.revoke_user(self.current_user, keep=self.session.handle)
        self.session.invalidate()
        self.redirect("/login")


# --8<-- [end:everywhere]


def make_app(settings: SessionSettings, store: MongoSessionStore) -> tornado.web.Application:
    return tornado.web.Application(
        [
            ("/", Home),
            ("/login", Login),
            ("/logout", Logout),
            ("/logout/others", LogoutOthers),
            ("/logout/everywhere", LogoutEverywhere),
        ],
        session_store=store,
        session_settings=settings,
        login_url="/login",
        xsrf_cookies=True,  # a page on another site cannot post "log out everywhere"
    )


async def main() -> None:
    # Ctrl-C sets `stop` through the loop (why: examples/app.py).
    stop = asyncio.Event()
    with contextlib.suppress(NotImplementedError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGINT, stop.set)
    # Plain HTTP to try it out: the example turns off the Secure cookie flag a real site keeps on.
    settings = SessionSettings(cookie_secure=False)
    store = MongoSessionStore.from_settings(settings)
    try:
        await store.ensure_indexes()  # the TTL index, and the user_id index revoke_user uses
        port = int(os.environ.get("DEMO_PORT", "8888"))
        make_app(settings, store).listen(port, "127.0.0.1")
        log.info("log out everywhere on http://127.0.0.1:%d; Ctrl-C stops it", port)
        await stop.wait()
    finally:
        await store.close()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    log.info("log out everywhere stopped")
