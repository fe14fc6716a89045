"""The examples, driven through real HTTP as their users would: README's example run as written
in a process of its own, the demo page (examples/app.py) like a browser (counter, rotation,
login, regenerate, logout), the JSON API (examples/json_api.py) like a client with a cookie jar.
Raw Set-Cookie headers and raw documents are checked, not only the pages."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from shutil import which
from types import ModuleType
from typing import Any

import pytest
import tornado.httpclient
import tornado.web
import tornado.websocket
from helpers import Clock, Response, Server, assert_cleared, serve, session_id_of
from mongo_helpers import doc_of

from tornado_mongo_session import MongoSessionStore, SessionSettings

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def demo() -> ModuleType:
    return load_example("app")


@pytest.fixture(scope="module")
def json_api() -> ModuleType:
    return load_example("json_api")


@pytest.fixture(scope="module")
def users_example() -> ModuleType:
    return load_example("users")


@pytest.fixture(scope="module")
def everywhere_example() -> ModuleType:
    return load_example("logout_everywhere")


class Browser:
    """Keeps the cookies a browser would (session and _xsrf), sends them back."""

    def __init__(
        self, server: Server, user_agent: str = "Mozilla/5.0 (X11; Linux) Firefox"
    ) -> None:
        self.server = server
        self.user_agent = user_agent
        self.jar: dict[str, str] = {}

    async def request(
        self,
        path: str,
        form: dict[str, str] | None = None,
        *,
        method: str | None = None,
        json_body: Any = None,
        content_type: str | None = None,
    ) -> Response:
        headers = {
            "Cookie": "; ".join(f"{k}={v}" for k, v in self.jar.items()),
            "User-Agent": self.user_agent,
        }
        body = None
        if form is not None:
            body = urllib.parse.urlencode({**form, "_xsrf": self.jar["_xsrf"]})
        elif json_body is not None:
            body = json.dumps(json_body)
            headers["Content-Type"] = "application/json"
        if content_type is not None:
            headers["Content-Type"] = content_type
        method = method or ("GET" if body is None else "POST")
        response = await self.server.fetch(path, method=method, body=body, headers=headers)
        for name in ("session", "_xsrf"):
            morsel = response.cookie(name)
            if morsel is not None:
                if morsel.value:
                    self.jar[name] = morsel.value
                else:
                    self.jar.pop(name, None)
        return response

    @property
    def session_id(self) -> str:
        return session_id_of(self.jar.get("session"))


def text_of(page: str) -> str:
    """The page's text without tags, entities decoded, whitespace collapsed."""
    text = re.sub(r"<[^>]+>", "", page).replace("&lt;", "<").replace("&gt;", ">")
    return re.sub(r"\s+", " ", text.replace("&#x27;", "'").replace("&quot;", '"'))


def row(page: str, name: str) -> str:
    """The text of the demo table row headed ``name``."""
    found = re.search(rf"<th>{re.escape(name)}</th><td>(.*?)</td>", page)
    assert found is not None, f"no row {name!r} in {page}"
    return text_of(found.group(1)).strip()


# -- README's example --------------------------------------------------------------------------


def readme_example() -> str:
    """The Python block between README's example markers (docs/quickstart.md includes it)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(
        r"<!-- --8<-- \[start:example\] -->\n```python\n(.*?)```\n<!-- --8<-- \[end:example\] -->",
        readme,
        re.DOTALL,
    )
    assert found is not None, "README.md lost its example markers"
    return found.group(1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


class Program:
    """An example run as its user runs it: a process of its own, listening on ``port``."""

    def __init__(self, script: Path, *, port: int, env: dict[str, str], log: Path) -> None:
        self.port = port
        self.log = log
        with log.open("wb") as output:
            self.process = subprocess.Popen(
                [sys.executable, str(script)],
                cwd=script.parent,
                env={**os.environ, **env, "DEMO_PORT": str(port)},
                stdout=output,
                stderr=output,
            )
        deadline = time.monotonic() + 15
        while True:
            assert self.process.poll() is None, self.output()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                assert time.monotonic() < deadline, f"no answer on {port}:\n{self.output()}"
                time.sleep(0.05)

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(10)


PLAIN_HTTP = "SessionSettings(cookie_secure=False)"


def start_readme(
    mongo_url: str, db_name: str, folder: Path, *, production: bool = False
) -> Program:
    """README's example in a process of its own, on a free port; ``production``: with its
    ``cookie_secure=False`` deleted, as README says to do for production."""
    code = readme_example()
    assert code.count("8888") == 1  # the one thing changed: a free port instead of 8888
    assert code.count(PLAIN_HTTP) == 1
    if production:
        code = code.replace(PLAIN_HTTP, "SessionSettings()")
    port = free_port()
    folder.mkdir(exist_ok=True)
    (folder / "app.py").write_text(code.replace("8888", str(port)), encoding="utf-8")
    env = {"TORNADO_SESSION_MONGODB_URL": mongo_url, "TORNADO_SESSION_DATABASE": db_name}
    return Program(folder / "app.py", port=port, env=env, log=folder / "app.log")


@pytest.fixture
def readme_app(mongo_url: str, db_name: str, tmp_path: Path) -> Iterator[int]:
    """README's example running as written, on a free port (returned)."""
    program = start_readme(mongo_url, db_name, tmp_path)
    try:
        yield program.port
    finally:
        program.stop()


async def test_readme_example_runs_as_written(readme_app: int, sync_db: Any) -> None:
    server = Server(tornado.web.Application(), readme_app)
    try:
        browser = Browser(server)
        response = await browser.request("/")
        assert json.loads(response.body) == {"visits": 1, "user": None}
        assert json.loads((await browser.request("/")).body) == {"visits": 2, "user": None}
        anonymous = browser.session_id

        form = await browser.request("/login")  # a browser can try it: a GET form
        assert '<input name="name">' in form.text
        response = await browser.request("/login", {"name": "ada"})
        assert response.code == 302
        assert browser.session_id != anonymous
        assert response.cookie("session") is not None  # the new id's cookie, this response
        assert json.loads((await browser.request("/")).body) == {"visits": 3, "user": "ada"}
        assert sync_db.sessions.find_one({"_id": anonymous}) is None
        doc = doc_of(sync_db, browser.jar["session"])
        assert doc is not None
        assert doc["data"] == {"visits": 3}
        assert doc["user_id"] == "ada"  # current_user, from bind_user()
    finally:
        server.client.close()


CHROMIUM = next(
    (found for name in ("chromium", "chromium-browser", "google-chrome") if (found := which(name))),
    None,
)


class Chromium:
    """A headless Chromium driven through its DevTools protocol, with a profile of its own.
    ``other.test`` resolves to 127.0.0.1 inside it: a host that is not loopback by name, as a
    VM or a container reached by its name is, without leaving this machine."""

    def __init__(self, profile: Path) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [
                CHROMIUM or "chromium",
                "--headless=new",
                "--no-sandbox",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                "--remote-debugging-address=127.0.0.1",
                f"--remote-debugging-port={self.port}",
                "--host-resolver-rules=MAP other.test 127.0.0.1",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.calls = 0
        self.events: list[str] = []  # the methods of the events received, oldest first

    async def connect(self) -> None:
        deadline = time.monotonic() + 30
        client = tornado.httpclient.AsyncHTTPClient()
        while True:
            try:
                answer = await client.fetch(f"http://127.0.0.1:{self.port}/json/version")
                break
            except OSError:
                assert time.monotonic() < deadline, "Chromium did not start"
                await asyncio.sleep(0.1)
        url = json.loads(answer.body)["webSocketDebuggerUrl"]
        self.socket = await tornado.websocket.websocket_connect(url)
        target = (await self.call("Target.createTarget", url="about:blank"))["targetId"]
        attached = await self.call("Target.attachToTarget", targetId=target, flatten=True)
        self.page = attached["sessionId"]
        await self.call("Page.enable", session=self.page)

    async def call(self, method: str, *, session: str | None = None, **params: Any) -> Any:
        self.calls += 1
        message: dict[str, Any] = {"id": self.calls, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        await self.socket.write_message(json.dumps(message))
        while True:
            raw = await self.socket.read_message()
            assert raw is not None, "Chromium closed its DevTools socket"
            reply = json.loads(raw)
            if reply.get("id") == self.calls:
                assert "error" not in reply, reply
                return reply["result"]
            if "method" in reply:
                self.events.append(reply["method"])

    async def visit(self, url: str) -> str:
        """Open ``url`` as a typed address would, and return the page's text."""
        self.events.clear()
        await self.call("Page.navigate", session=self.page, url=url)
        while "Page.loadEventFired" not in self.events:  # this navigation's load event
            raw = await self.socket.read_message()
            assert raw is not None, "Chromium closed its DevTools socket"
            self.events.append(json.loads(raw).get("method", ""))
        result = await self.call(
            "Runtime.evaluate", session=self.page, expression="document.body.innerText"
        )
        return str(result["result"]["value"])

    async def cookies(self) -> list[tuple[str, str, bool]]:
        found = await self.call("Network.getAllCookies", session=self.page)
        return sorted((c["name"], c["domain"], c["secure"]) for c in found["cookies"])

    def close(self) -> None:
        self.socket.close()
        self.process.terminate()
        self.process.wait(10)


async def visits_in_chromium(chromium: Chromium, port: int) -> dict[str, list[int]]:
    """Three visits to the example's counter from each host name."""
    counts: dict[str, list[int]] = {}
    for host in ("127.0.0.1", "localhost", "other.test"):
        pages = [await chromium.visit(f"http://{host}:{port}/") for _ in range(3)]
        counts[host] = [json.loads(page)["visits"] for page in pages]
    return counts


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on PATH")
async def test_readme_example_in_chromium_as_written_and_for_production(
    mongo_url: str, db_name: str, tmp_path: Path
) -> None:
    """What README says a browser does: as written (cookie_secure=False), the session sticks
    on every host; with the production defaults (Secure, __Host-session) Chromium keeps the
    cookie on http://127.0.0.1 and http://localhost only, and the library warns about the rest."""
    as_written = start_readme(mongo_url, db_name, tmp_path / "as_written")
    production = start_readme(mongo_url, db_name, tmp_path / "production", production=True)
    chromium = Chromium(tmp_path / "profile")
    try:
        await chromium.connect()
        assert await visits_in_chromium(chromium, as_written.port) == {
            "127.0.0.1": [1, 2, 3],
            "localhost": [1, 2, 3],
            "other.test": [1, 2, 3],
        }
        assert await chromium.cookies() == [
            ("session", host, False) for host in ("127.0.0.1", "localhost", "other.test")
        ]
        await chromium.call("Network.clearBrowserCookies", session=chromium.page)
        assert await visits_in_chromium(chromium, production.port) == {
            "127.0.0.1": [1, 2, 3],
            "localhost": [1, 2, 3],
            "other.test": [1, 1, 1],  # the Secure cookie was dropped: a new session every time
        }
        assert await chromium.cookies() == [
            ("__Host-session", "127.0.0.1", True),
            ("__Host-session", "localhost", True),
        ]
    finally:
        chromium.close()
        as_written.stop()
        production.stop()
    warning = "the session cookie is Secure (cookie_secure=True) but this request to 'other.test'"
    assert warning in production.output()
    assert production.output().count(warning[:40]) == 1  # once per process
    assert "cookie_secure" not in as_written.output()


@pytest.mark.parametrize("name", ["app", "json_api", "metrics", "users", "logout_everywhere"])
def test_examples_stop_quietly_on_ctrl_c(
    name: str, mongo_url: str, db_name: str, tmp_path: Path
) -> None:
    env = {"TORNADO_SESSION_MONGODB_URL": mongo_url, "TORNADO_SESSION_DATABASE": db_name}
    program = Program(EXAMPLES / f"{name}.py", port=free_port(), env=env, log=tmp_path / "log")
    assert program.stop(signal.SIGINT) == 0, program.output()
    output = program.output()
    assert "Ctrl-C stops it" in output
    assert "Traceback" not in output
    assert output.rstrip().endswith("stopped")


# -- the demo -------------------------------------------------------------------------------


def serve_app(app: tornado.web.Application) -> Any:
    """Serve an example's application (its routes and settings) on a free loopback port."""
    return serve(app.wildcard_router.rules, **app.settings)


@pytest.fixture
async def demo_server(demo: ModuleType, collection: Any, clock: Clock) -> AsyncIterator[Server]:
    settings = SessionSettings(cookie_secure=False, token_ttl=5, tokens_kept=3)
    async with serve_app(demo.make_app(settings, MongoSessionStore(collection), clock=clock)) as s:
        yield s


async def test_demo_counter_and_cookie(demo_server: Server) -> None:
    browser = Browser(demo_server)
    first = await browser.request("/")
    assert "visited this page <b>1 time</b>." in first.text
    assert "Not issued yet" in first.text
    assert row(first.text, "id").startswith("none yet")
    set_cookie = next(line for line in first.set_cookies if line.startswith("session="))
    attributes = {part.strip().split("=")[0].lower() for part in set_cookie.split(";")[1:]}
    assert attributes == {"path", "httponly", "samesite", "max-age"}  # no Secure
    assert "no Secure flag" in row(first.text, "attributes")
    assert "SameSite=Lax" in row(first.text, "attributes")

    second = await browser.request("/")
    assert "visited this page <b>2 times</b>." in second.text
    assert (
        row(second.text, "id")
        == f"…{browser.session_id[-4:]} (the rest is in your cookie, not shown)"
    )
    assert row(second.text, "rotations") == "0 times so far in this session"
    assert row(second.text, "rotates now?").startswith("no: it is 0.0 s old")
    assert not [line for line in second.set_cookies if line.startswith("session=")]


async def test_demo_shows_the_token_rotating(demo_server: Server, clock: Clock) -> None:
    browser = Browser(demo_server)
    await browser.request("/")
    await browser.request("/")
    issued = row((await browser.request("/")).text, "issued")
    before = browser.jar["session"]

    clock.advance(6)
    page = (await browser.request("/")).text
    assert row(page, "rotates now?").startswith("yes: it is 6.0 s old")
    after = browser.jar["session"]
    assert after != before  # this very response carried the new token
    assert session_id_of(after) == session_id_of(before)

    page = (await browser.request("/")).text
    assert row(page, "rotations") == "1 time so far in this session"
    assert row(page, "issued") != issued
    assert row(page, "issued").endswith("0.0 s ago (the token this request came with)")
    for _ in range(2):
        clock.advance(6)
        await browser.request("/")
    page = (await browser.request("/")).text
    assert row(page, "rotations") == "3 times so far in this session"


async def test_demo_login_regenerate_logout(demo_server: Server, sync_db: Any) -> None:
    browser = Browser(demo_server)
    await browser.request("/")
    await browser.request("/")
    anonymous = browser.session_id

    form = await browser.request("/login")
    assert form.code == 200
    assert '<form method="post" action="/login">' in form.text
    response = await browser.request("/login", {"name": "ada"})
    assert response.code == 302
    assert response.headers["Location"] == "/"
    user = browser.session_id
    assert user != anonymous  # regenerate() at login
    assert sync_db.sessions.find_one({"_id": anonymous}) is None
    assert doc_of(sync_db, browser.jar["session"])["data"]["user"] == "ada"  # type: ignore[index]

    page = (await browser.request("/")).text
    said = text_of(page)
    assert "You logged in as ada." in said
    assert f"(…{anonymous[-4:]} → …{user[-4:]})" in said
    assert "visited this page 3 times" in said  # the data came along
    assert "signed in as <b>ada</b>" in page
    assert "You logged in" not in (await browser.request("/")).text  # said once

    response = await browser.request("/regenerate", {})
    assert response.code == 302
    regenerated = browser.session_id
    assert regenerated != user
    assert sync_db.sessions.find_one({"_id": user}) is None
    said = text_of((await browser.request("/")).text)
    assert "You regenerated the session." in said
    assert f"(…{user[-4:]} → …{regenerated[-4:]})" in said

    response = await browser.request("/logout", {})
    assert response.code == 302
    assert_cleared(response)
    assert "session" not in browser.jar
    assert sync_db.sessions.find_one({"_id": regenerated}) is None
    page = (await browser.request(response.headers["Location"])).text
    said = text_of(page)
    assert f"You logged out. session.invalidate() deleted session …{regenerated[-4:]}" in said
    assert "visited this page 1 time." in said  # a new, anonymous session
    assert '<a href="/login">log in</a>' in page


async def test_demo_your_sessions(demo_server: Server, sync_db: Any) -> None:
    laptop, phone = Browser(demo_server), Browser(demo_server, "Mozilla/5.0 (iPhone) Safari")
    response = await laptop.request("/sessions")
    assert response.code == 302  # nobody signed in: @authenticated sends to the login page
    assert response.headers["Location"].startswith("/login?next=%2Fsessions")
    for browser in (laptop, phone):
        await browser.request("/login")
        assert (await browser.request("/login", {"name": "ada"})).code == 302
    grace = Browser(demo_server, "Grace's browser")
    await grace.request("/login")
    await grace.request("/login", {"name": "grace"})
    assert 'href="/sessions"' in (await laptop.request("/")).text

    page = (await laptop.request("/sessions")).text
    said = text_of(page)
    assert "Your sessions" in said
    assert "<td>Mozilla/5.0 (iPhone) Safari</td><td>127.0.0.1</td>" in page
    assert "<td>Mozilla/5.0 (X11; Linux) Firefox</td><td>127.0.0.1</td>" in page
    assert "Grace" not in said
    assert page.count("this device") == 1
    handles = re.findall(r'name="handle" value="([^"]+)"', page)
    assert len(handles) == 1  # a button for every device but this one
    for browser in (laptop, phone):  # no session id, no token on the page
        assert not set(browser.jar["session"].split(".")) & set(re.findall(r"[\w-]{20,}", page))
    assert "log out everywhere else" in said

    # Grace's handle, posted by Ada, revokes nothing.
    grace_handle = re.findall(
        r'name="handle" value="([^"]+)"', (await grace.request("/sessions")).text
    )
    assert grace_handle == []  # grace has one device: no button
    assert sync_db.sessions.count_documents({"user_id": "ada"}) == 2

    response = await laptop.request("/sessions/revoke", {"handle": handles[0]})
    assert response.code == 302
    assert response.headers["Location"] == "/sessions"
    assert sync_db.sessions.count_documents({"user_id": "ada"}) == 1
    page = (await phone.request("/")).text  # the phone's next request opens nothing
    assert '<a href="/login">log in</a>' in page
    assert "visited this page <b>1 time</b>." in page

    await phone.request("/login")
    await phone.request("/login", {"name": "ada"})
    assert (await laptop.request("/sessions/revoke-others", {})).code == 302
    assert '<a href="/login">log in</a>' in (await phone.request("/")).text
    page = (await laptop.request("/sessions")).text
    assert page.count("this device") == 1
    assert "log out everywhere else" not in page
    assert sync_db.sessions.count_documents({"user_id": "grace"}) == 1


async def test_demo_login_needs_the_xsrf_token(demo_server: Server) -> None:
    browser = Browser(demo_server)
    await browser.request("/login")
    response = await demo_server.fetch(
        "/login",
        method="POST",
        body="name=mallory",
        headers={"Cookie": f"_xsrf={browser.jar['_xsrf']}"},
    )
    assert response.code == 403  # a form posted from another site has no _xsrf field


# -- the JSON API ---------------------------------------------------------------------------


@pytest.fixture
async def api(json_api: ModuleType, collection: Any) -> AsyncIterator[Server]:
    settings = SessionSettings(cookie_secure=False)
    async with serve_app(json_api.make_app(settings, MongoSessionStore(collection))) as server:
        yield server


async def test_json_api_flow(api: Server, sync_db: Any) -> None:
    client = Browser(api)
    response = await client.request("/api/session")
    assert json.loads(response.body) == {"user": None, "cart": {}}
    assert response.set_cookies == []  # reading an empty session stores nothing

    response = await client.request("/api/cart", json_body={"item": "tea", "qty": 2})
    assert json.loads(response.body) == {"user": None, "cart": {"tea": 2}}
    anonymous = client.session_id

    response = await client.request("/api/login", json_body={"user": "ada"})
    assert json.loads(response.body) == {"user": "ada", "cart": {"tea": 2}}
    assert client.session_id != anonymous
    assert sync_db.sessions.find_one({"_id": anonymous}) is None

    await client.request("/api/cart", json_body={"item": "milk"})
    response = await client.request("/api/cart", json_body={"item": "tea", "qty": 0})
    assert json.loads(response.body)["cart"] == {"milk": 1}
    doc = doc_of(sync_db, client.jar["session"])
    assert doc is not None
    assert doc["data"] == {"cart": {"milk": 1}, "user": "ada"}  # the nested change was saved

    cookie = client.jar["session"]
    response = await client.request("/api/session", method="DELETE")
    assert response.code == 204
    assert_cleared(response)
    assert doc_of(sync_db, cookie) is None


@pytest.mark.parametrize(
    ("method", "path", "body", "content_type", "code", "error"),
    [
        ("POST", "/api/cart", '{"item": "tea"}', "text/plain", 415, "application/json"),
        ("POST", "/api/cart", "item=tea", "application/x-www-form-urlencoded", 415, "Content-Type"),
        ("POST", "/api/cart", "{item: tea}", "application/json", 400, "not JSON"),
        ("POST", "/api/cart", '["tea"]', "application/json", 400, "JSON object"),
        ("POST", "/api/cart", '{"item": "a.b"}', "application/json", 400, '"item" must match'),
        ("POST", "/api/cart", '{"item": "$set"}', "application/json", 400, '"item" must match'),
        ("POST", "/api/cart", '{"item": "tea", "qty": true}', "application/json", 400, '"qty"'),
        ("POST", "/api/login", '{"user": ""}', "application/json", 400, '"user"'),
        ("GET", "/api/nowhere", None, None, 404, "no such resource"),
        ("PUT", "/api/login", "{}", "application/json", 405, "Method Not Allowed"),
    ],
)
async def test_json_api_errors_are_json(
    api: Server,
    sync_db: Any,
    method: str,
    path: str,
    body: str | None,
    content_type: str | None,
    code: int,
    error: str,
) -> None:
    headers = {} if content_type is None else {"Content-Type": content_type}
    response = await api.fetch(path, method=method, body=body, headers=headers)
    assert response.code == code
    assert response.headers["Content-Type"].startswith("application/json")
    assert error in json.loads(response.body)["error"]
    assert response.set_cookies == []
    assert sync_db.sessions.count_documents({}) == 0


# -- users: current_user, @authenticated, devices, a WebSocket -----------------------------------


@pytest.fixture
async def users_server(users_example: ModuleType, collection: Any) -> AsyncIterator[Server]:
    settings = SessionSettings(cookie_secure=False)
    app = users_example.make_app(settings, MongoSessionStore(collection))
    async with serve_app(app) as server:
        yield server


async def test_users_example(users_server: Server, sync_db: Any) -> None:
    browser = Browser(users_server)
    response = await browser.request("/")
    assert response.code == 302
    assert response.headers["Location"] == "/login?next=%2F"
    await browser.request("/login")  # the form, and its _xsrf cookie
    assert (await browser.request("/login", {"name": "mallory"})).code == 403
    response = await browser.request("/login?next=%2F", {"name": "ada"})
    assert response.code == 302
    assert response.headers["Location"] == "/"
    assert (await browser.request("/")).text == "Hello, Ada Lovelace"

    phone = Browser(users_server, "Mozilla/5.0 (iPhone) Safari")
    await phone.request("/login")
    await phone.request("/login", {"name": "ada"})
    devices = json.loads((await phone.request("/devices")).body)["sessions"]
    assert [(d["user_agent"], d["this_device"]) for d in devices] == [
        ("Mozilla/5.0 (iPhone) Safari", True),
        ("Mozilla/5.0 (X11; Linux) Firefox", False),
    ]

    request = tornado.httpclient.HTTPRequest(
        f"ws://127.0.0.1:{users_server.port}/chat",
        headers={"Cookie": f"session={browser.jar['session']}"},
    )
    chat = await tornado.websocket.websocket_connect(request)
    try:
        assert await chat.read_message() == "welcome, Ada Lovelace"
        chat.write_message("hello")
        assert await chat.read_message() == "Ada Lovelace (1): hello"
        assert doc_of(sync_db, browser.jar["session"])["data"] == {"messages": 1}  # type: ignore[index]

        # The phone logs out everywhere else: the laptop's socket ends at its next check.
        response = await phone.request("/devices", {"others": "1"})
        assert json.loads(response.body) == {"revoked": 1}
        chat.write_message("/check")
        assert await chat.read_message() is None
        assert chat.close_code == 4001
    finally:
        chat.close()
    assert (await browser.request("/")).code == 302
    assert (await phone.request("/")).text == "Hello, Ada Lovelace"
    with pytest.raises(tornado.httpclient.HTTPClientError) as refused:
        await tornado.websocket.websocket_connect(f"ws://127.0.0.1:{users_server.port}/chat")
    assert refused.value.code == 302  # nobody signed in: the handshake is refused


# -- log out everywhere ---------------------------------------------------------------------------


@pytest.fixture
async def everywhere_server(
    everywhere_example: ModuleType, collection: Any
) -> AsyncIterator[Server]:
    settings = SessionSettings(cookie_secure=False)
    app = everywhere_example.make_app(settings, MongoSessionStore(collection))
    async with serve_app(app) as server:
        yield server


async def log_in(browser: Browser, name: str) -> None:
    await browser.request("/login")  # the form, and its _xsrf cookie
    response = await browser.request("/login", {"name": name})
    assert response.code == 302
    assert response.cookie("session") is not None


async def assert_logged_out(browser: Browser, cookie: str, sync_db: Any) -> None:
    """The device's cookie, sent as its browser sends it, opens nothing: the login page, no
    Set-Cookie (a cookie that opens nothing is left alone), no session stored for it."""
    documents = sync_db.sessions.count_documents({})
    response = await browser.server.fetch("/", headers={"Cookie": f"session={cookie}"})
    assert response.code == 302
    assert response.headers["Location"] == "/login?next=%2F"
    assert response.cookie("session") is None
    assert doc_of(sync_db, cookie) is None
    assert sync_db.sessions.count_documents({}) == documents


async def test_log_out_everywhere_else_then_everywhere(
    everywhere_server: Server, sync_db: Any
) -> None:
    laptop = Browser(everywhere_server)
    phone = Browser(everywhere_server, "Mozilla/5.0 (iPhone) Safari")
    tablet = Browser(everywhere_server, "Mozilla/5.0 (iPad) Safari")
    grace = Browser(everywhere_server, "Grace's browser")
    for browser in (laptop, phone, tablet):
        await log_in(browser, "ada")
    await log_in(grace, "grace")
    page = await laptop.request("/")
    assert "Signed in as <b>ada</b> on 3 devices." in page.text
    assert sync_db.sessions.count_documents({"user_id": "ada"}) == 3

    # Everywhere else, from the phone (after a password change): the phone stays signed in.
    laptop_cookie, tablet_cookie, phone_cookie = (b.jar["session"] for b in (laptop, tablet, phone))
    response = await phone.request("/logout/others", {})
    assert response.code == 302
    assert response.cookie("session") is None  # the phone's cookie is untouched
    assert [d["_id"] for d in sync_db.sessions.find({"user_id": "ada"})] == [phone.session_id]
    for browser, cookie in ((laptop, laptop_cookie), (tablet, tablet_cookie)):
        await assert_logged_out(browser, cookie, sync_db)
    assert "on 1 device." in (await phone.request("/")).text
    assert phone.jar["session"] == phone_cookie

    # Everywhere, this device included, from the laptop once it has logged in again.
    await log_in(laptop, "ada")
    laptop_cookie = laptop.jar["session"]
    assert "on 2 devices." in (await laptop.request("/")).text
    response = await laptop.request("/logout/everywhere", {})
    assert response.code == 302
    assert response.headers["Location"] == "/login"
    assert_cleared(response)  # this browser's cookie expired in the same response
    assert sync_db.sessions.count_documents({"user_id": "ada"}) == 0
    await assert_logged_out(phone, phone_cookie, sync_db)
    await assert_logged_out(laptop, laptop_cookie, sync_db)
    assert "Signed in as <b>grace</b> on 1 device." in (await grace.request("/")).text


async def test_log_out_everywhere_needs_a_signed_in_user_and_the_xsrf_token(
    everywhere_server: Server, sync_db: Any
) -> None:
    ada = Browser(everywhere_server)
    await log_in(ada, "ada")
    forged = await everywhere_server.fetch(  # a form posted from another site: no _xsrf field
        "/logout/everywhere",
        method="POST",
        body="",
        headers={"Cookie": f"session={ada.jar['session']}; _xsrf={ada.jar['_xsrf']}"},
    )
    assert forged.code == 403
    assert sync_db.sessions.count_documents({"user_id": "ada"}) == 1

    nobody = Browser(everywhere_server)
    await nobody.request("/login")
    response = await nobody.request("/logout/everywhere", {})
    assert response.code == 403  # @authenticated refuses a POST with nobody signed in
    assert sync_db.sessions.count_documents({"user_id": "ada"}) == 1


async def test_users_example_socket_refuses_another_sites_page(users_server: Server) -> None:
    """Browsers send cookies with a cross-site WebSocket handshake; Tornado's check_origin,
    which the example keeps, refuses it, so another site's page cannot talk as the user."""
    browser = Browser(users_server)
    await browser.request("/login")
    await browser.request("/login", {"name": "ada"})
    url = f"ws://127.0.0.1:{users_server.port}/chat"
    cookie = f"session={browser.jar['session']}"
    with pytest.raises(tornado.httpclient.HTTPClientError) as refused:
        await tornado.websocket.websocket_connect(
            tornado.httpclient.HTTPRequest(
                url, headers={"Cookie": cookie, "Origin": "https://evil.example"}
            )
        )
    assert refused.value.code == 403
    own = await tornado.websocket.websocket_connect(
        tornado.httpclient.HTTPRequest(
            url, headers={"Cookie": cookie, "Origin": f"http://127.0.0.1:{users_server.port}"}
        )
    )
    try:
        assert await own.read_message() == "welcome, Ada Lovelace"
    finally:
        own.close()
