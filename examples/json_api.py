"""JSON API example: a cart and a login kept in the session, for a single-page app or any
HTTP client. JSON in, JSON out, errors included.

    GET    /api/session        who you are and your cart
    POST   /api/login          {"user": "ada"}: regenerate() (a new id and token), then the user
    POST   /api/cart           {"item": "tea", "qty": 2}: put an item in the cart (qty 0 removes)
    DELETE /api/session        logout: invalidate() (the session deleted, the cookie cleared)

Run it with ``make demo DEMO=json_api`` (or ``python examples/json_api.py`` with
``TORNADO_SESSION_MONGODB_URL`` set), then, keeping cookies in a jar as a browser would::

    curl -s -c jar -b jar http://127.0.0.1:8888/api/session
    curl -s -c jar -b jar -H 'Content-Type: application/json' -d '{"user": "ada"}' \\
        http://127.0.0.1:8888/api/login
    curl -s -c jar -b jar -H 'Content-Type: application/json' -d '{"item": "tea", "qty": 2}' \\
        http://127.0.0.1:8888/api/cart
    curl -s -c jar -b jar -X DELETE http://127.0.0.1:8888/api/session

Cross-site request forgery: the session cookie is ``SameSite=Lax``, and every POST must be
``Content-Type: application/json`` (else 415). A form on another site cannot send that type, and
a script on another site can only send it after a CORS preflight that this API never answers.
For HTML forms use Tornado's ``xsrf_cookies`` instead, as ``examples/app.py`` does.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from typing import Any

import tornado.web

from tornado_mongo_session import MongoSessionStore, SessionMixin, SessionSettings

log = logging.getLogger("json_api")

ITEM = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")
MAX_ITEMS = 50


class ApiError(tornado.web.HTTPError):
    """An error whose ``message`` the client gets as ``{"error": message}``."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(status_code)
        self.message = message


class ApiHandler(SessionMixin, tornado.web.RequestHandler):
    """JSON errors; POST bodies must be JSON objects sent as application/json."""

    async def prepare(self) -> None:
        await super().prepare()
        if self.request.method == "POST":
            content_type = self.request.headers.get("Content-Type", "")
            if content_type.split(";")[0].strip().lower() != "application/json":
                raise ApiError(415, "send Content-Type: application/json")

    def json_body(self) -> dict[str, Any]:
        """The request body as a JSON object; 400 naming the problem otherwise."""
        try:
            body = json.loads(self.request.body or b"null")
        except ValueError as exc:
            raise ApiError(400, f"the body is not JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise ApiError(400, "the body must be a JSON object")
        return body

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = kwargs.get("exc_info", (None, None, None))[1]
        # Other errors (a 503 when the session store is down, a 405) carry their reason.
        self.finish({"error": error.message if isinstance(error, ApiError) else self._reason})

    def answer(self) -> None:
        """The session as the client may see it: never the id or the token."""
        self.write({"user": self.session.get("user"), "cart": self.session.get("cart", {})})


class SessionResource(ApiHandler):
    async def get(self) -> None:
        self.answer()

    async def delete(self) -> None:
        self.session.invalidate()
        self.set_status(204)


class LoginResource(ApiHandler):
    async def post(self) -> None:
        user = self.json_body().get("user")
        if not isinstance(user, str) or not 1 <= len(user) <= 40:
            raise ApiError(400, '"user" must be a string of 1 to 40 chars')
        self.session.regenerate()  # privileges change: a new id and token, the old id dead
        self.session["user"] = user
        self.answer()


class CartResource(ApiHandler):
    async def post(self) -> None:
        body = self.json_body()
        item, qty = body.get("item"), body.get("qty", 1)
        # Item names become keys inside the stored document: check them here, so that the
        # client gets a 400 naming its mistake, not a 500 when the save refuses the key.
        if not isinstance(item, str) or not ITEM.match(item):
            raise ApiError(400, '"item" must match ' + ITEM.pattern)
        if not isinstance(qty, int) or isinstance(qty, bool) or not 0 <= qty <= 99:
            raise ApiError(400, '"qty" must be an integer from 0 to 99')
        cart = self.session.setdefault("cart", {})  # changed in place: the save sees it
        if qty == 0:
            cart.pop(item, None)
        elif item in cart or len(cart) < MAX_ITEMS:
            cart[item] = qty
        else:
            raise ApiError(400, f"the cart holds at most {MAX_ITEMS} items")
        self.answer()


class NotFound(ApiHandler):
    async def prepare(self) -> None:
        raise ApiError(404, "no such resource")


def make_app(settings: SessionSettings, store: MongoSessionStore) -> tornado.web.Application:
    return tornado.web.Application(
        [
            ("/api/session", SessionResource),
            ("/api/login", LoginResource),
            ("/api/cart", CartResource),
        ],
        default_handler_class=NotFound,
        session_store=store,
        session_settings=settings,
    )


async def main() -> None:
    # Plain HTTP on loopback: the example turns off the Secure cookie flag a real API keeps on.
    settings = SessionSettings(cookie_secure=False)
    store = MongoSessionStore.from_settings(settings)
    try:
        port = int(os.environ.get("DEMO_PORT", "8888"))
        make_app(settings, store).listen(port, "127.0.0.1")
        log.info("JSON API on http://127.0.0.1:%d/api/session; Ctrl-C stops it", port)
        await asyncio.Event().wait()
    finally:
        await store.close()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        log.info("stopped")
