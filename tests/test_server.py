"""The test server and fixtures themselves: real round trips with both drivers, a server that is
stopped and restarted on the same data, what the server processes expose, how a kind is chosen."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import mongo_server
import pg_extensions
import pymongo
import pytest
import server_kinds
from mongo_helpers import (
    CommandLog,
    close_async_client,
    lacks_atomic_updates,
    make_async_client,
)
from pymongo.database import Database
from pymongo.errors import AutoReconnect, ServerSelectionTimeoutError


async def test_insert_find_round_trip(
    collection: Any, command_log: CommandLog, sync_db: Database[Mapping[str, Any]]
) -> None:
    await collection.insert_one({"_id": "s1", "data": {"n": 1}})
    found = await collection.find_one({"_id": "s1"})

    assert found == {"_id": "s1", "data": {"n": 1}}
    assert command_log.names() == ["insert", "find"]
    assert command_log.commands("find")[0]["filter"] == {"_id": "s1"}
    assert sync_db["sessions"].find_one({"_id": "s1"}) == {"_id": "s1", "data": {"n": 1}}


async def test_command_log_counts_and_clears(collection: Any, command_log: CommandLog) -> None:
    await collection.insert_one({"_id": "a"})
    await collection.update_one({"_id": "a"}, {"$set": {"x": 1}})
    assert command_log.count() == 2
    assert command_log.count("update") == 1

    command_log.clear()
    assert command_log.names() == []
    await collection.find_one({"_id": "missing"})
    assert command_log.names() == ["find"]


async def test_command_log_leaves_out_handshake(mongo_client: Any, command_log: CommandLog) -> None:
    await mongo_client.admin.command("ping")
    await mongo_client.admin.command("hello")
    assert command_log.names() == []


def test_db_name_is_unique_and_fresh(
    db_name: str, sync_db: Database[Mapping[str, Any]], sync_client: pymongo.MongoClient[Any]
) -> None:
    assert re.fullmatch(r"tms_test_[0-9a-f]{12}", db_name)
    assert sync_db.name == db_name
    assert db_name not in sync_client.list_database_names()


async def test_client_fails_while_server_is_stopped_and_recovers(driver: str) -> None:
    """Stop a private server: operations fail fast; restart it: data still there, and the
    same client recovers."""
    docs_ns = ("tms_fault", "docs")
    server = mongo_server.PrivateServer()
    try:
        await asyncio.to_thread(server.start)
        port_before = server.port
        client = make_async_client(driver, server.url, serverSelectionTimeoutMS=1000)
        try:
            docs = client[docs_ns[0]][docs_ns[1]]
            await docs.insert_one({"_id": 1, "v": "kept"})

            await asyncio.to_thread(server.stop)
            with pytest.raises((ServerSelectionTimeoutError, AutoReconnect)):
                await docs.find_one({"_id": 1})

            await asyncio.to_thread(server.start)
            assert server.port == port_before
            assert await docs.find_one({"_id": 1}) == {"_id": 1, "v": "kept"}
        finally:
            await close_async_client(client)
    finally:
        await asyncio.to_thread(server.close)


def test_private_server_is_not_recorded(private_server: mongo_server.PrivateServer) -> None:
    state_before = mongo_server.read_state()
    with pymongo.MongoClient(private_server.url, serverSelectionTimeoutMS=5000) as client:
        client["tms_private"]["c"].insert_one({"_id": 1})
        assert client["tms_private"]["c"].count_documents({}) == 1
    assert mongo_server.read_state() == state_before
    assert private_server.running


# -- what the server processes expose ----------------------------------------------------------


def _listening(pid: int) -> list[str]:
    """The addresses ``pid`` listens on: "127.0.0.1:port" (TCP) or "unix:path"."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    found = []
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] == "0A" and cols[9] in inodes:  # 0A: LISTEN
                address, port = cols[1].split(":")
                if table == "tcp":
                    host = ".".join(str(b) for b in reversed(bytes.fromhex(address)))
                else:
                    host = f"[{address}]"
                found.append(f"{host}:{int(port, 16)}")
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        cols = line.split()
        if cols[6] in inodes and int(cols[3], 16) & 0x10000:  # __SO_ACCEPTCON: listening
            found.append(f"unix:{cols[7] if len(cols) > 7 else '(unnamed)'}")
    return found


def test_private_server_listens_on_its_loopback_port_only(
    private_server: mongo_server.PrivateServer,
) -> None:
    """No debug or metrics listener; FerretDB 2's PostgreSQL on 127.0.0.1 only, no socket file."""
    assert private_server.pid is not None
    assert _listening(private_server.pid) == [f"127.0.0.1:{private_server.port}"]
    storage = private_server.storage_pid
    if private_server.kind == "ferretdb2":
        assert storage is not None
        postgres = _listening(storage)
        assert len(postgres) == 1
        assert postgres[0].startswith("127.0.0.1:")
        assert postgres[0] != f"127.0.0.1:{private_server.port}"


def test_ferretdb_runs_with_telemetry_off(private_server: mongo_server.PrivateServer) -> None:
    if private_server.kind == "mongod":
        pytest.skip("mongod sends no telemetry")
    assert private_server.pid is not None
    argv = Path(f"/proc/{private_server.pid}/cmdline").read_bytes().split(b"\0")
    environ = Path(f"/proc/{private_server.pid}/environ").read_bytes().split(b"\0")
    assert b"--telemetry=disable" in argv
    assert b"DO_NOT_TRACK=1" in environ


def test_fallback_to_ferretdb1_says_what_is_missing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def prepare(kind: str) -> str:
        if kind == server_kinds.KIND_FERRETDB2:
            raise mongo_server.MissingPrerequisite("no Go toolchain (test)")
        return f"/bin/{kind}"

    monkeypatch.setattr(server_kinds, "prepare", prepare)
    monkeypatch.setattr(server_kinds, "_prepared", {})
    monkeypatch.setattr(server_kinds.shutil, "which", lambda name: None)
    monkeypatch.delenv(server_kinds.KIND_ENV, raising=False)

    assert server_kinds.resolve() == ("ferretdb1", "/bin/ferretdb1")
    err = capsys.readouterr().err
    assert "not available: no Go toolchain (test)" in err
    assert "LACKS ATOMIC UPDATES" in err


def test_a_requested_kind_has_no_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    def prepare(kind: str) -> str:
        raise mongo_server.MissingPrerequisite(f"{kind} is missing (test)")

    monkeypatch.setattr(server_kinds, "prepare", prepare)
    monkeypatch.setattr(server_kinds, "_prepared", {})
    monkeypatch.setenv(server_kinds.KIND_ENV, "ferretdb2")
    with pytest.raises(mongo_server.MissingPrerequisite, match="ferretdb2 is missing"):
        server_kinds.resolve()
    monkeypatch.setenv(server_kinds.KIND_ENV, "sqlite")
    with pytest.raises(mongo_server.ServerError, match="unknown server kind 'sqlite'"):
        server_kinds.resolve()


# -- the vendored sources and the installed extensions -----------------------------------------


def test_vendored_sources_are_checked_before_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ext = pg_extensions.PG_CRON
    with pytest.raises(mongo_server.MissingPrerequisite, match="no vendored sources"):
        pg_extensions.verified_tarball(ext, tmp_path / "absent")

    (tmp_path / ext.tarball).write_bytes(b"not the release")
    digest = hashlib.sha256(b"not the release").hexdigest()
    (tmp_path / "SHA256SUMS").write_text(f"{digest}  {ext.tarball}\n")
    with pytest.raises(mongo_server.MissingPrerequisite, match="checksum mismatch"):
        pg_extensions.verified_tarball(ext, tmp_path)

    monkeypatch.setenv(pg_extensions.VENDOR_ENV, "vendor-here")
    assert pg_extensions.vendor_dir(tmp_path) == tmp_path / "vendor-here"
    monkeypatch.setenv(pg_extensions.VENDOR_ENV, str(tmp_path))
    assert pg_extensions.vendor_dir(Path("/elsewhere")) == tmp_path
    monkeypatch.delenv(pg_extensions.VENDOR_ENV)
    assert pg_extensions.vendor_dir(tmp_path / "repo") == tmp_path / "shared" / "vendor"


def test_installed_extensions_are_told_by_their_control_files(tmp_path: Path) -> None:
    if not pg_extensions.PG_CONFIG.is_file():
        pytest.skip("no PostgreSQL 15 development files here")
    ext = pg_extensions.DOCUMENTDB
    libdir = tmp_path / str(pg_extensions._pg_dir("pkglibdir")).lstrip("/")
    extdir = tmp_path / str(pg_extensions._pg_dir("sharedir")).lstrip("/") / "extension"
    assert not pg_extensions.installed(ext, tmp_path)

    libdir.mkdir(parents=True)
    extdir.mkdir(parents=True)
    for library in ext.libraries:
        (libdir / library).write_bytes(b"")
    for name, version in ext.controls:
        (extdir / f"{name}.control").write_text(f"comment = 'x'\ndefault_version = '{version}'\n")
    assert pg_extensions.installed(ext, tmp_path)

    (extdir / "documentdb.control").write_text("default_version = '0.105-0'\n")
    assert not pg_extensions.installed(ext, tmp_path)


# -- FerretDB 1.24, the fallback ---------------------------------------------------------------


def test_ferretdb1_fallback_runs_and_is_known_to_lack_atomic_updates() -> None:
    """Builds FerretDB 1.24 from its Go module the first time (cached in .cache/bin)."""
    with mongo_server.PrivateServer(kind="ferretdb1") as server:
        client: pymongo.MongoClient[dict[str, Any]]
        with pymongo.MongoClient(server.url, serverSelectionTimeoutMS=5000) as client:
            client["tms_v1"]["c"].insert_one({"_id": 1})
            reason = lacks_atomic_updates(client)
    assert reason == "FerretDB v1.24.2 has no atomic single-document updates"
