"""The tornado-session command line: the installed console script run in a subprocess against
the shared server (its own database per test), its output, raw documents and exit codes."""

from __future__ import annotations

import ast
import json
import os
import pty
import select
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from handlers import ExtendedGet
from helpers import Browser, serve, session_settings
from pymongo.database import Database

import tornado_mongo_session
from tornado_mongo_session import MongoSessionStore, Session, SessionMixin
from tornado_mongo_session.cli import EXIT_CODES

TESTS = Path(__file__).resolve().parent
SCRIPT = Path(sys.executable).parent / "tornado-session"
UTC = timezone.utc

Run = Callable[..., subprocess.CompletedProcess[str]]


def _env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TORNADO_SESSION_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), env.get("PYTHONPATH")]))
    env.update({f"TORNADO_SESSION_{k.upper()}": v for k, v in settings.items()})
    return env


@pytest.fixture
def cli(mongo_url: str, db_name: str, tmp_path: Path) -> Run:
    """Run the console script on this test's database (in an empty directory: no .env)."""

    def run(*args: str, argv0: list[str] | None = None, **settings: str) -> Any:
        env = _env(**{"mongodb_url": mongo_url, "database": db_name, **settings})
        return subprocess.run(
            [*(argv0 or [str(SCRIPT)]), *args],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    return run


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The failure's stderr: exactly one line, the program's name first, no traceback."""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("tornado-session: "), lines
    assert "Traceback" not in result.stderr
    return lines[0]


def insert_sessions(db: Database[Mapping[str, Any]], specs: list[dict[str, Any]]) -> None:
    """Session documents as the store writes them; each spec: ``live`` (bool), ``age`` (hours
    since creation), ``data``, ``user_id`` (optional)."""
    now = datetime.now(UTC)
    docs = []
    for i, spec in enumerate(specs):
        doc = {
            "_id": f"session{i:04d}",
            "tokens": ["0" * 64],
            "created_at": now - timedelta(hours=spec.get("age", 0)),
            "accessed_at": now,
            "rotated_at": now,
            "expires_at": now + timedelta(hours=1 if spec.get("live", True) else -1),
            "data": spec.get("data", {}),
        }
        if "user_id" in spec:
            doc["user_id"] = spec["user_id"]
        docs.append(doc)
    db.sessions.insert_many(docs)


# -- usage and failures ------------------------------------------------------------------------


def test_help_names_every_command_and_exit_code(cli: Run) -> None:
    result = cli("--help")
    assert result.returncode == 0, result.stderr
    for command in ("ensure-indexes", "purge-expired", "stats", "list", "revoke"):
        assert command in result.stdout
    text = " ".join(result.stdout.split())
    for code in EXIT_CODES:
        assert f"{code} " in text
    assert "Exit codes: 0 done; 1 usage" in text


@pytest.mark.parametrize(
    "args",
    [
        ["frobnicate"],
        ["revoke"],
        ["revoke", "--session", "h", "--user", "u"],
        ["revoke", "--session", "h", "--keep", "k"],
        ["list"],
        ["stats", "--limit", "0"],
        ["purge-expired", "--batch-size", "many"],
    ],
)
def test_usage_errors_exit_1_in_one_line(cli: Run, args: list[str]) -> None:
    result = cli(*args)
    assert result.returncode == 1
    one_error_line(result)
    assert result.stdout == ""


def test_a_bad_setting_exits_1_naming_its_variable(cli: Run) -> None:
    result = cli("stats", token_ttl="-1")
    assert result.returncode == 1
    assert "TORNADO_SESSION_TOKEN_TTL" in one_error_line(result)
    rule = cli("stats", cookie_samesite="None", cookie_secure="false")  # a rule across fields
    assert rule.returncode == 1
    assert "cookie_samesite='None' requires cookie_secure=True" in one_error_line(rule)


def test_a_bad_store_option_exits_1(cli: Run) -> None:
    result = cli("--store", "no_such_module:make", "stats")
    assert result.returncode == 1
    assert "--store 'no_such_module:make'" in one_error_line(result)


def _dead_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize(
    "args", [["stats"], ["stats", "--json"], ["ensure-indexes"], ["purge-expired", "--json"]]
)
def test_an_unreachable_server_exits_2_in_one_line(cli: Run, args: list[str]) -> None:
    url = f"mongodb://admin:hunter2secret@127.0.0.1:{_dead_port()}/"
    result = cli(*args, mongodb_url=url, server_selection_timeout_ms="300")
    assert result.returncode == 2
    line = one_error_line(result)
    assert "session store unreachable" in line
    assert "hunter2secret" not in result.stderr  # the URL's password is never shown
    assert result.stdout == ""


# -- ensure-indexes, purge-expired, stats ------------------------------------------------------


def test_ensure_indexes_creates_the_ttl_index(cli: Run, sync_db: Database[Any]) -> None:
    result = cli("ensure-indexes")
    assert result.returncode == 0, result.stderr
    assert "expires_at_ttl" in result.stdout
    indexes = sync_db.sessions.index_information()
    assert indexes["expires_at_ttl"]["key"] == [("expires_at", 1)]
    assert indexes["expires_at_ttl"]["expireAfterSeconds"] == 0
    again = cli("ensure-indexes", "--json")  # idempotent
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert report["collection"] == f"{sync_db.name}.sessions"
    assert "expires_at_ttl" in report["indexes"]


def test_purge_expired_deletes_the_dead_in_batches(cli: Run, sync_db: Database[Any]) -> None:
    insert_sessions(sync_db, [{"live": i % 3 == 0} for i in range(20)])  # 7 live, 13 dead
    result = cli("purge-expired", "--batch-size", "5", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["deleted"], report["batches"]) == (13, 3)
    assert datetime.fromisoformat(report["expired_before"]) <= datetime.now(UTC)
    left = sorted(doc["_id"] for doc in sync_db.sessions.find())
    assert left == [f"session{i:04d}" for i in range(0, 20, 3)]
    again = cli("purge-expired")
    assert again.returncode == 0
    assert again.stdout == "deleted 0 expired sessions in 0 batches\n"
    assert again.stderr == ""  # not a terminal: no progress bar


def test_purge_expired_shows_a_progress_bar_on_a_terminal(
    cli: Run, sync_db: Database[Any], mongo_url: str, tmp_path: Path
) -> None:
    insert_sessions(sync_db, [{"live": False} for _ in range(6)])
    leader, follower = pty.openpty()
    try:
        process = subprocess.Popen(
            [str(SCRIPT), "purge-expired", "--batch-size", "2"],
            env=_env(mongodb_url=mongo_url, database=sync_db.name),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=follower,
            text=True,
        )
        os.close(follower)
        shown = b""
        while True:
            ready, _, _ = select.select([leader], [], [], 30)
            if not ready:
                break
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal closed: the program is done
                break
            if not chunk:
                break
            shown += chunk
        stdout, _ = process.communicate(timeout=30)
    finally:
        os.close(leader)
    assert process.returncode == 0
    assert stdout == "deleted 6 expired sessions in 3 batches\n"
    bar = shown.decode()
    assert "deleting expired sessions" in bar
    assert "6/6" in bar
    assert sync_db.sessions.count_documents({}) == 0


def test_stats_counts_users_ages_and_sizes(cli: Run, sync_db: Database[Any]) -> None:
    insert_sessions(
        sync_db,
        [
            {"age": 0.5, "user_id": "ada"},
            {"age": 2, "user_id": "ada"},
            {"age": 30, "user_id": "bob", "data": {"blob": "x" * 2000}},
            {"age": 24 * 10, "data": {"blob": "x" * 20000}},
            {"age": 24 * 40},
            {"age": 1, "live": False, "user_id": "eve"},  # dead: not counted
        ],
    )
    result = cli("stats", "--json")
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert (found["live"], found["scanned"], found["bound_users"]) == (5, 5, 2)
    assert found["ages"] == {"< 1 h": 1, "< 1 d": 1, "< 7 d": 1, "< 30 d": 1, ">= 30 d": 1}
    assert found["sizes"] == {
        "< 1 KiB": 3,
        "< 4 KiB": 1,
        "< 16 KiB": 0,
        "< 64 KiB": 1,
        "< 256 KiB": 0,
        ">= 256 KiB": 0,
    }
    assert 1700 < found["age_seconds"]["min"] < 1900
    assert 24 * 40 * 3600 - 60 < found["age_seconds"]["max"] < 24 * 40 * 3600 + 60
    assert 20000 < found["size_bytes"]["max"] < 20400
    text = cli("stats")
    assert text.returncode == 0
    assert "live sessions: 5" in text.stdout
    assert "bound users:   2" in text.stdout
    bounded = json.loads(cli("stats", "--limit", "2", "--json").stdout)
    assert (bounded["live"], bounded["scanned"]) == (5, 2)
    assert sum(bounded["ages"].values()) == 2


def test_python_dash_m_runs_the_same_command_line(cli: Run, sync_db: Database[Any]) -> None:
    insert_sessions(sync_db, [{"user_id": "ada"}])
    result = cli("stats", "--json", argv0=[sys.executable, "-m", "tornado_mongo_session"])
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["live"] == 1


# -- list and revoke ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "command"),
    [
        (["list", "--user", "ada"], "list --user"),
        (["revoke", "--session", "h1"], "revoke --session"),
        (["revoke", "--user", "ada", "--keep", "h1", "--json"], "revoke --user"),
        (["stats"], "stats"),
        (["ensure-indexes"], "ensure-indexes"),
    ],
)
def test_a_store_without_the_method_exits_3(cli: Run, args: list[str], command: str) -> None:
    result = cli("--store", "cli_stores:basic", *args)
    assert result.returncode == 3
    assert f"this store does not support {command}: BasicStore has no" in one_error_line(result)
    assert result.stdout == ""


def test_list_and_revoke_show_what_the_store_answers(cli: Run) -> None:
    store = ("--store", "cli_stores:directory")
    listed = cli(*store, "list", "--user", "ada", "--json")
    assert listed.returncode == 0, listed.stderr
    sessions = json.loads(listed.stdout)["sessions"]
    assert [s["handle"] for s in sessions] == ["h1", "h2"]
    assert sessions[0]["created_at"] == "2026-01-02T03:04:05+00:00"
    assert sessions[0]["ip"] == "192.0.2.1"
    table = cli(*store, "list", "--user", "ada").stdout.splitlines()
    assert table[0].split() == ["handle", "created", "last", "used", "ip", "user", "agent"]
    assert table[1].split()[:6] == ["h1", *["2026-01-02", "03:04:05"] * 2, "192.0.2.1"]
    assert table[1].endswith("…")  # a long user agent is cut
    assert cli(*store, "list", "--user", "bob").stdout == "no live sessions for user bob\n"
    assert json.loads(cli(*store, "revoke", "--session", "h1", "--json").stdout) == {"revoked": 1}
    kept = cli(*store, "revoke", "--user", "ada", "--keep", "h2")
    assert (kept.returncode, kept.stdout) == (0, "revoked 1 session\n")
    unknown = cli(*store, "revoke", "--session", "nope", "--json")
    assert unknown.returncode == 4
    assert json.loads(unknown.stdout) == {"revoked": 0}
    assert "no live session has the handle 'nope'" in one_error_line(unknown)


_HAS_USERS = hasattr(MongoSessionStore, "list_user_sessions") and hasattr(Session, "bind_user")


class BindUser(SessionMixin):
    async def post(self) -> None:
        self.session.bind_user(self.get_argument("user"))  # type: ignore[attr-defined]
        self.session["name"] = self.get_argument("user")
        self.write("ok")


@pytest.mark.skipif(
    not _HAS_USERS,
    reason="MongoSessionStore has no list_user_sessions/revoke_* yet (issue 12 parts 1-2)",
)
async def test_list_and_revoke_a_users_real_sessions(
    cli: Run, mongo_url: str, db_name: str
) -> None:
    import tornado.web

    class Handler(BindUser, tornado.web.RequestHandler):
        pass

    store = MongoSessionStore.from_settings(
        session_settings(mongodb_url=mongo_url, database=db_name)
    )
    try:
        async with serve(
            [("/login", Handler), ("/get", ExtendedGet)],
            session_store=store,
            session_settings=session_settings(),
        ) as server:
            devices = [Browser(server) for _ in range(3)]
            for device in devices:
                await device.fetch("/login?user=ada", method="POST", body="")
            bob = Browser(server)
            await bob.fetch("/login?user=bob", method="POST", body="")

            listed = cli("list", "--user", "ada", "--json")
            assert listed.returncode == 0, listed.stderr
            handles = [s["handle"] for s in json.loads(listed.stdout)["sessions"]]
            assert len(handles) == 3
            revoked = cli("revoke", "--session", handles[0], "--json")
            assert json.loads(revoked.stdout) == {"revoked": 1}
            again = cli("revoke", "--session", handles[0])
            assert again.returncode == 4
            kept = cli("revoke", "--user", "ada", "--keep", handles[1], "--json")
            assert json.loads(kept.stdout) == {"revoked": 1}
            left = json.loads(cli("list", "--user", "ada", "--json").stdout)["sessions"]
            assert [s["handle"] for s in left] == [handles[1]]
            opened = [bool((await d.get())["data"]) for d in devices]
            assert opened.count(True) == 1  # only the kept device is still logged in
            assert (await bob.get())["data"]  # another user's session is untouched
    finally:
        await store.close()


def test_the_cli_modules_import_no_tornado() -> None:
    package = Path(tornado_mongo_session.cli.__file__).parent
    modules = sorted(package.glob("*.py"))
    assert len(modules) > 1  # the package's modules, not only its __init__
    imported = []
    for module in modules:
        tree = ast.parse(module.read_text(encoding="utf-8"))
        imported += [
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        ] + [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert "click" in imported  # the walk found the imports
    assert not [name for name in imported if name.split(".")[0] == "tornado"]
