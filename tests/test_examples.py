"""The demo app of examples/app.py, driven like a browser: counter, login, about page, logout."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import tornado.httpserver
import tornado.netutil
from helpers import Server

from tornado_mongo_session import MongoSessionStore, SessionSettings

APP_PATH = Path(__file__).resolve().parent.parent / "examples" / "app.py"


@pytest.fixture(scope="module")
def demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("demo_app", APP_PATH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["demo_app"] = module
    spec.loader.exec_module(module)
    return module


class Browser:
    """Keeps the cookies a browser would (session and _xsrf), sends them back."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.jar: dict[str, str] = {}

    async def request(self, path: str, body: dict[str, str] | None = None) -> Any:
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in self.jar.items())}
        if body is not None:
            body = {**body, "_xsrf": self.jar["_xsrf"]}
            encoded = "&".join(f"{k}={v}" for k, v in body.items())
            response = await self.server.fetch(path, method="POST", body=encoded, headers=headers)
        else:
            response = await self.server.fetch(path, headers=headers)
        for name in ("session", "_xsrf"):
            morsel = response.cookie(name)
            if morsel is not None:
                if morsel.value:
                    self.jar[name] = morsel.value
                else:
                    self.jar.pop(name, None)
        return response


async def test_demo_flow(demo: ModuleType, collection: Any, sync_db: Any) -> None:
    settings = SessionSettings(cookie_secure=False)
    app = demo.make_app(settings, MongoSessionStore(collection))
    sockets = tornado.netutil.bind_sockets(0, "127.0.0.1")
    http_server = tornado.httpserver.HTTPServer(app)
    http_server.add_sockets(sockets)
    server = Server(app, sockets[0].getsockname()[1])
    browser = Browser(server)
    try:
        assert "<b>1</b> times" in (await browser.request("/")).text
        assert "<b>2</b> times" in (await browser.request("/")).text
        anonymous_id = browser.jar["session"].split(".")[0]

        await browser.request("/login")  # the form sets the _xsrf cookie
        response = await browser.request("/login", {"name": "ada"})
        assert response.code == 302
        assert response.headers["Location"] == "/about"
        user_id = browser.jar["session"].split(".")[0]
        assert user_id != anonymous_id  # regenerate() at login
        assert sync_db.sessions.find_one({"_id": anonymous_id}) is None
        assert sync_db.sessions.find_one({"_id": user_id})["data"] == {"visits": 2, "user": "ada"}

        about = (await browser.request("/about")).text
        assert user_id in about
        assert re.search(r"token age</th><td>\d+\.\d s", about)
        assert "signed in as <b>ada</b>" in about

        response = await browser.request("/logout", {})
        assert response.code == 302
        assert "session" not in browser.jar
        assert sync_db.sessions.find_one({"_id": user_id}) is None
        assert "log in" in (await browser.request("/about")).text
    finally:
        server.client.close()
        http_server.stop()
        await http_server.close_all_connections()
