"""The kinds of test server: which one runs here, what it needs built, how it starts.

``mongod`` (on PATH), ``ferretdb2`` (FerretDB v2.5.0 on a private PostgreSQL 15 cluster with
DocumentDB) and ``ferretdb1`` (FerretDB v1.24.2 on SQLite, the fallback: no atomic updates).
:class:`ServerProcess` runs one on a 127.0.0.1 port; ``mongo_server.py`` records it or hands it
to a test.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import pg_extensions
from ferretdb_build import FERRETDB_V1, FERRETDB_V2, build_ferretdb
from mongo_wire import HOST, free_port, make_url, wait_until_answers
from pg_cluster import PostgresCluster
from server_procs import (
    MissingPrerequisite,
    ServerError,
    log,
    phase,
    pid_alive,
    proc_start_time,
    spawn,
    stop_pid,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = REPO_ROOT / ".cache"
BIN_DIR = CACHE_DIR / "bin"
FERRETDB2_DIR = CACHE_DIR / "ferretdb2"
TIMINGS = FERRETDB2_DIR / "timings.log"
KIND_ENV = "TORNADO_SESSION_TEST_SERVER_KIND"
START_TIMEOUT = 30.0

KIND_MONGOD = "mongod"
KIND_FERRETDB2 = "ferretdb2"
KIND_FERRETDB1 = "ferretdb1"
KINDS = (KIND_MONGOD, KIND_FERRETDB2, KIND_FERRETDB1)
DESCRIPTION = {
    KIND_MONGOD: "mongod",
    KIND_FERRETDB2: f"FerretDB {FERRETDB_V2.version} on PostgreSQL {pg_extensions.PG_MAJOR}",
    KIND_FERRETDB1: f"FerretDB {FERRETDB_V1.version} (SQLite)",
}
NO_ATOMIC_UPDATES = (
    f"FerretDB {FERRETDB_V1.version} LACKS ATOMIC UPDATES: concurrent updates of one document "
    "can lose each other's fields, so only a single app process is exact on it and the "
    "multi-process tests skip"
)


def requested_kind(kind: str | None = None) -> str | None:
    """``kind``, else ``$TORNADO_SESSION_TEST_SERVER_KIND``; None (or "auto") for the default."""
    kind = kind or os.environ.get(KIND_ENV, "").strip() or None
    if kind in (None, "auto"):
        return None
    if kind not in KINDS:
        raise ServerError(f"unknown server kind {kind!r} (${KIND_ENV}): one of {', '.join(KINDS)}")
    return kind


def prepare(kind: str) -> str:
    """Make ``kind`` runnable here (install, build); its binary. MissingPrerequisite if not."""
    if kind == KIND_MONGOD:
        mongod = shutil.which("mongod")
        if mongod is None:
            raise MissingPrerequisite("no `mongod` on PATH")
        return mongod
    if kind == KIND_FERRETDB2:
        pg_extensions.ensure_installed(
            vendor=pg_extensions.vendor_dir(REPO_ROOT),
            build_root=FERRETDB2_DIR / "build",
            timings=TIMINGS,
        )
        with phase("ferretdb-build", TIMINGS):
            return str(build_ferretdb(FERRETDB_V2, BIN_DIR))
    if kind == KIND_FERRETDB1:
        return str(build_ferretdb(FERRETDB_V1, BIN_DIR))
    raise ServerError(f"unknown server kind {kind!r}")


_prepared: dict[str | None, tuple[str, str]] = {}


def resolve(kind: str | None = None) -> tuple[str, str]:
    """(kind, binary) of the server to run: ``kind`` if given, else the first of mongod,
    FerretDB 2 and (with a warning naming what FerretDB 2 lacks) FerretDB 1.24 that can run
    here. Remembered for the life of the process."""
    kind = requested_kind(kind)
    if kind in _prepared:
        return _prepared[kind]
    if kind is not None:
        chosen = (kind, prepare(kind))
    elif shutil.which("mongod"):
        chosen = (KIND_MONGOD, prepare(KIND_MONGOD))
    else:
        try:
            chosen = (KIND_FERRETDB2, prepare(KIND_FERRETDB2))
        except MissingPrerequisite as exc:
            log(f"WARNING: {DESCRIPTION[KIND_FERRETDB2]} is not available: {exc}")
            log(f"WARNING: falling back to {DESCRIPTION[KIND_FERRETDB1]}. {NO_ATOMIC_UPDATES}.")
            chosen = (KIND_FERRETDB1, prepare(KIND_FERRETDB1))
    _prepared[kind] = chosen
    return chosen


def server_argv(
    kind: str, binary: str, port: int, data_dir: Path, postgresql_url: str | None = None
) -> list[str]:
    """The command line for a server on ``127.0.0.1:port`` keeping its data in ``data_dir``
    (FerretDB 2: its state; the data is in the PostgreSQL at ``postgresql_url``)."""
    if kind == KIND_MONGOD:
        db_path = data_dir / "db"
        db_path.mkdir(parents=True, exist_ok=True)
        return [
            binary,
            "--dbpath",
            str(db_path),
            "--port",
            str(port),
            "--bind_ip",
            HOST,
            "--logpath",
            str(data_dir / "mongod.log"),
            "--logappend",
            "--setParameter",
            "diagnosticDataCollectionEnabled=false",
        ]
    state_dir = data_dir / "state"
    state_dir.mkdir(parents=True, exist_ok=True)
    common = [
        f"--state-dir={state_dir}",
        f"--listen-addr={HOST}:{port}",
        "--debug-addr=-",  # "-" is "" to both versions: no debug/metrics listener
        "--telemetry=disable",
        "--log-level=warn",
    ]
    if kind == KIND_FERRETDB2:
        if postgresql_url is None:
            raise ValueError("FerretDB 2 needs a postgresql_url")
        return [
            binary,
            f"--postgresql-url={postgresql_url}",
            "--no-auth",
            *common,
            "--dev-telemetry-url=http://127.0.0.1:9/",
        ]
    if kind == KIND_FERRETDB1:
        sqlite_dir = data_dir / "sqlite"
        sqlite_dir.mkdir(parents=True, exist_ok=True)
        return [
            binary,
            "--handler=sqlite",
            f"--sqlite-url=file:{sqlite_dir}/",
            *common,
            "--test-telemetry-url=http://127.0.0.1:9/",
        ]
    raise ValueError(f"unknown server kind {kind!r}")


def server_env(kind: str) -> dict[str, str]:
    env = dict(os.environ)
    if kind != KIND_MONGOD:
        env["DO_NOT_TRACK"] = "1"
    return env


class ServerProcess:
    """A server's processes: the one clients talk to and, for FerretDB 2, its PostgreSQL."""

    def __init__(
        self, kind: str, binary: str, data_dir: Path, port: int, timings: Path | None = None
    ) -> None:
        self.timings = timings  # where `up` records phase durations; None for private servers
        self.kind = kind
        self.binary = binary
        self.data_dir = data_dir
        self.port = port
        self.pid: int | None = None
        self.cluster = PostgresCluster(data_dir / "pg") if kind == KIND_FERRETDB2 else None

    def start(self, timeout: float = START_TIMEOUT) -> None:
        """Start (PostgreSQL first, made on first use), wait until it answers a ping."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        postgresql_url = None
        if self.cluster is not None:
            cluster = self.cluster
            if cluster.pid is None or not pid_alive(cluster.pid):
                if not (cluster.data_dir / "PG_VERSION").is_file():
                    with phase("postgres-init", self.timings):
                        cluster.create()
                with phase("postgres-start", self.timings):
                    cluster.start(free_port())
            postgresql_url = cluster.url
        argv = server_argv(self.kind, self.binary, self.port, self.data_dir, postgresql_url)
        log_path = self.data_dir / f"{self.kind}.out.log"
        self.pid = spawn(argv, log_path, server_env(self.kind))
        try:
            wait_until_answers(self.pid, self.port, log_path, timeout)
        except ServerError:
            self.stop()
            raise

    def stop(self, timeout: float = 10.0, kill: bool = False) -> None:
        """Stop the process clients talk to (its PostgreSQL keeps running)."""
        if self.pid is not None and pid_alive(self.pid):
            stop_pid(self.pid, timeout, kill=kill)
        self.pid = None

    def close(self) -> None:
        """Stop everything (PostgreSQL too, at once: its data goes)."""
        self.stop()
        if self.cluster is not None:
            self.cluster.stop(kill=True)

    def record(self) -> dict[str, Any]:
        """What `down` needs to stop it later, by pid."""
        assert self.pid is not None
        state: dict[str, Any] = {
            "kind": self.kind,
            "pid": self.pid,
            "start_time": proc_start_time(self.pid),
            "url": make_url(self.port),
            "port": self.port,
            "binary": self.binary,
            "data_dir": str(self.data_dir),
            "started_at": time.time(),
        }
        if self.cluster is not None:
            state["postgres"] = {
                "pid": self.cluster.pid,
                "start_time": self.cluster.start_time,
                "port": self.cluster.port,
                "data_dir": str(self.cluster.data_dir),
            }
        return state
