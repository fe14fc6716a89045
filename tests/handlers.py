"""Request handlers shared by the test apps: one declaration each.

A handler that answers both GET and POST says so; where two suites wanted a handler to differ,
the difference is a keyword of the route (Tornado's ``initialize``), e.g.
``("/login", Login, {"user": "victim"})``.
"""

from __future__ import annotations

from datetime import timezone
from typing import Any

import tornado.web
from bson import json_util
from bson.json_util import JSONMode, JSONOptions

from tornado_mongo_session import SessionMixin

JSON = JSONOptions(json_mode=JSONMode.CANONICAL, tz_aware=True, tzinfo=timezone.utc)
"""Canonical extended JSON: what :class:`ExtendedGet` and :class:`ExtendedUpdate` speak."""


class Untouched(SessionMixin, tornado.web.RequestHandler):
    """``GET``: answers ``plain`` and never touches the session."""

    async def get(self) -> None:
        self.write("plain")


class Counter(SessionMixin, tornado.web.RequestHandler):
    """``GET``: adds one to the session's ``n`` (from 0) and answers it."""

    async def get(self) -> None:
        self.session["n"] = self.session.get("n", 0) + 1
        self.write(str(self.session["n"]))


class SetKey(SessionMixin, tornado.web.RequestHandler):
    """``GET`` or ``POST ?k=&v=``: sets key ``k`` to ``v``; answers ``ok``.

    With ``?wait=1``, or ``wait=True`` in the route, the request first waits at the app's
    ``barrier`` setting (a :class:`helpers.Barrier`), after its session was loaded: requests
    that overlap this way all load the same stored session before any of them saves.
    """

    def initialize(self, *, wait: bool = False) -> None:
        super().initialize()
        self.wait_at_barrier = wait

    async def get(self) -> None:
        key = self.get_argument("k")
        value = self.get_argument("v")
        if self.wait_at_barrier or self.get_argument("wait", None):
            _ = self.session  # loaded in prepare(); the barrier makes the requests overlap
            await self.settings["barrier"].wait()
        self.session[key] = value
        self.write("ok")

    post = get


class DeleteKey(SessionMixin, tornado.web.RequestHandler):
    """``GET`` or ``POST ?k=``: deletes key ``k`` (a missing key is a 500); answers ``ok``."""

    async def get(self) -> None:
        del self.session[self.get_argument("k")]
        self.write("ok")

    post = get


class Login(SessionMixin, tornado.web.RequestHandler):
    """``GET`` or ``POST [?user=]``: a login: ``regenerate()``, then sets ``user``.

    Answers the new session id as text. ``user`` defaults to the route's ``user`` (``ada``).
    """

    def initialize(self, *, user: str = "ada") -> None:
        super().initialize()
        self.default_user = user

    async def get(self) -> None:
        self.session.regenerate()
        self.session["user"] = self.get_argument("user", self.default_user)
        self.write(self.session.id)

    post = get


class Logout(SessionMixin, tornado.web.RequestHandler):
    """``GET`` or ``POST``: ``invalidate()``; answers ``bye``."""

    async def get(self) -> None:
        self.session.invalidate()
        self.write("bye")

    post = get


class ReadJSON(SessionMixin, tornado.web.RequestHandler):
    """``GET``: the session as JSON: ``{"id", "loaded", "data"}``.

    ``loaded`` says whether a stored session was loaded (not a new one). With
    ``with_data=False`` in the route, ``data`` is left out.
    """

    def initialize(self, *, with_data: bool = True) -> None:
        super().initialize()
        self.with_data = with_data

    async def get(self) -> None:
        self.answer(loaded=not self.session.is_new)

    def answer(self, *, loaded: bool) -> None:
        body: dict[str, Any] = {"id": self.session.id, "loaded": loaded}
        if self.with_data:
            body["data"] = dict(self.session)
        self.write(body)


class WriteJSON(ReadJSON):
    """``GET`` or ``POST ?k=&v=``: sets key ``k`` to ``v``; answers as :class:`ReadJSON`.

    ``loaded`` is as the request found the session, before the write.
    """

    async def get(self) -> None:
        loaded = not self.session.is_new
        self.session[self.get_argument("k")] = self.get_argument("v")
        self.answer(loaded=loaded)

    post = get


class ExtendedGet(SessionMixin, tornado.web.RequestHandler):
    """``GET``: ``{"id", "new", "data"}`` as canonical extended JSON (:data:`JSON`)."""

    async def get(self) -> None:
        session = self.session
        body = {"id": session.id, "new": session.is_new, "data": dict(session)}
        self.set_header("Content-Type", "application/json")
        self.write(json_util.dumps(body, json_options=JSON))


class ExtendedUpdate(SessionMixin, tornado.web.RequestHandler):
    """``POST``: updates the session with the canonical extended JSON document in the body."""

    async def post(self) -> None:
        self.session.update(json_util.loads(self.request.body, json_options=JSON))
        self.write("ok")


STORE_ROUTES: list[tuple[Any, ...]] = [
    ("/get", ExtendedGet),
    ("/set", ExtendedUpdate),
    ("/del", DeleteKey),
    ("/login", Login),
    ("/logout", Logout),
    ("/wait", SetKey, {"wait": True}),
    ("/untouched", Untouched),
]
"""The store behaviour suite's app (``helpers.session_app``): every store behind these routes."""
