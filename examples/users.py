"""Users: login with ``session.bind_user()``, ``current_user`` from an async loader,
``@tornado.web.authenticated``, a "your devices" API, and a WebSocket that knows who is on it.

Run with ``make demo DEMO=users`` and open http://127.0.0.1:8888 (users: ada, grace; no
passwords: this shows the session side of a login only). Settings come from
``TORNADO_SESSION_*`` variables; ``DEMO_PORT`` changes the port. Ctrl-C stops it.
docs/integration.md walks through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import os
import signal
from typing import Any

import tornado.web
import tornado.websocket

from tornado_mongo_session import MongoSessionStore, SessionMixin, SessionSettings

log = logging.getLogger("users")

# --8<-- [start:loader]
USERS = {"ada": {"name": "Ada Lovelace"}, "grace": {"name": "Grace Hopper"}}


async def find_user(user_id: str) -> dict[str, Any] | None:
    """Stands in for the application's own user lookup (a database query, say)."""
    await asyncio.sleep(0)
    return USERS.get(user_id)


class UserLoader(SessionMixin):
    async def load_current_user(self, user_id: str) -> Any:
        # Awaited in prepare() when the session has a user bound; None: not signed in.
        return await find_user(user_id)


class BaseHandler(UserLoader, tornado.web.RequestHandler):
    pass


# --8<-- [end:loader]


# --8<-- [start:login]
class LoginHandler(BaseHandler):
    def get(self) -> None:
        self.write(
            f'<form method="post">{self.xsrf_form_html()}'
            '<input name="name" placeholder="ada or grace"> <button>log in</button></form>'
        )

    def post(self) -> None:
        user_id = self.get_argument("name")
        if user_id not in USERS:  # a real app checks a password here
            raise tornado.web.HTTPError(403)
        self.session.bind_user(user_id)  # regenerates the session: a planted cookie dies
        self.redirect(self.get_argument("next", "/"))


class LogoutHandler(BaseHandler):
    def post(self) -> None:
        self.session.invalidate()  # deletes the session and clears the cookie
        self.redirect("/")


class HomeHandler(BaseHandler):
    @tornado.web.authenticated  # nobody bound: a redirect to login_url
    def get(self) -> None:
        self.write(f"Hello, {html.escape(self.current_user['name'])}")


# --8<-- [end:login]


# --8<-- [start:devices]
class DevicesHandler(BaseHandler):
    @tornado.web.authenticated
    async def get(self) -> None:
        store: MongoSessionStore = self.settings["session_store"]
        sessions = await store.list_user_sessions(self.session.user_id, current=self.session.handle)
        self.write(
            {
                "sessions": [
                    {
                        "handle": s.handle,  # opens nothing: safe to put in a page
                        "signed_in": s.created_at.isoformat(),
                        "last_active": s.accessed_at.isoformat(),
                        "ip": s.ip,
                        "user_agent": s.user_agent,
                        "this_device": s.current,
                    }
                    for s in sessions
                ]
            }
        )

    @tornado.web.authenticated
    async def post(self) -> None:
        """``handle=``: log out that device; ``others=1``: everywhere else; neither:
        everywhere (this device too)."""
        store: MongoSessionStore = self.settings["session_store"]
        user_id = self.session.user_id
        handle = self.get_argument("handle", None)
        if handle is not None:
            # With the user id: a handle of another user's session revokes nothing.
            revoked = int(await store.revoke_session(handle, user_id=user_id))
        else:
            keep = self.session.handle if self.get_argument("others", None) else None
            revoked = await store.revoke_user(user_id, keep=keep)
        self.write({"revoked": revoked})


# --8<-- [end:devices]


# --8<-- [start:websocket]
class ChatSocket(UserLoader, tornado.websocket.WebSocketHandler):
    @tornado.web.authenticated  # the handshake is a GET: prepare() loaded the session
    async def get(self, *args: Any, **kwargs: Any) -> None:
        await super().get(*args, **kwargs)

    def open(self, *args: str, **kwargs: str) -> None:
        self.write_message(f"welcome, {self.current_user['name']}")

    async def on_message(self, message: str | bytes) -> None:
        # Re-checked on demand: one find when asked, not one per message.
        if message == "/check" and not await self.session_still_valid():
            self.close(4001, "session ended")
            return
        self.session["messages"] = self.session.get("messages", 0) + 1
        await self.save_session()  # one update; no cookie, no rotation over the socket
        self.write_message(f"{self.current_user['name']} ({self.session['messages']}): {message}")


# --8<-- [end:websocket]


# --8<-- [start:app]
def make_app(settings: SessionSettings, store: MongoSessionStore) -> tornado.web.Application:
    return tornado.web.Application(
        [
            ("/", HomeHandler),
            ("/login", LoginHandler),
            ("/logout", LogoutHandler),
            ("/devices", DevicesHandler),
            ("/chat", ChatSocket),
        ],
        session_store=store,
        session_settings=settings,
        login_url="/login",
        xsrf_cookies=True,  # checked before prepare(): forms and POSTs carry _xsrf
    )


# --8<-- [end:app]


async def main() -> None:
    # Ctrl-C sets `stop` through the loop (why: examples/app.py).
    stop = asyncio.Event()
    with contextlib.suppress(NotImplementedError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGINT, stop.set)
    # Plain HTTP on loopback: the example turns off the Secure cookie flag a real site keeps on.
    settings = SessionSettings(cookie_secure=False)
    store = MongoSessionStore.from_settings(settings)
    try:
        await store.ensure_indexes()
        port = int(os.environ.get("DEMO_PORT", "8888"))
        make_app(settings, store).listen(port, "127.0.0.1")
        log.info("users example on http://127.0.0.1:%d; Ctrl-C stops it", port)
        await stop.wait()
    finally:
        await store.close()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    log.info("users example stopped")
