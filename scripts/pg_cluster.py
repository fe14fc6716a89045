"""A private PostgreSQL 15 cluster with DocumentDB, the storage under FerretDB v2.

Loopback only (``listen_addresses = '127.0.0.1'``, no Unix socket), trust authentication on
127.0.0.1 only, a port of its own chosen at start. As root it runs as the ``postgres`` user
(PostgreSQL refuses root), started through ``setpriv`` so that the pid we hold is the
postmaster's own: stopping it is a signal to that pid.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from pg_extensions import PG_BIN
from server_procs import (
    MissingPrerequisite,
    ServerError,
    as_user,
    log,
    log_tail,
    pid_alive,
    proc_start_time,
    run,
    spawn,
    stop_pid,
    user_exists,
)

HOST = "127.0.0.1"
START_TIMEOUT = 60.0

# As FerretDB's DocumentDB image (packaging/10-preload.sh) sets them, plus loopback-only.
_CONFIG = """
# --- tornado_mongo_session (scripts/pg_cluster.py) ---
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
shared_preload_libraries = 'pg_cron,pg_documentdb_core,pg_documentdb'
cron.database_name = 'postgres'
cron.host = '127.0.0.1'
# DocumentDB schedules jobs every few seconds: keep them out of the log
cron.log_statement = off
cron.log_run = off
max_connections = 300
documentdb.enableCompact = true
documentdb.enableLetAndCollationForQueryMatch = true
documentdb.enableNowSystemVariable = true
documentdb.enableSortbyIdPushDownToPrimaryKey = true
documentdb.enableSchemaValidation = true
documentdb.enableBypassDocumentValidation = true
documentdb.enableUserCrud = true
documentdb.maxUserLimit = 100
"""
_HBA = "# trust on loopback TCP only; nothing else may connect\nhost all all 127.0.0.1/32 trust\n"


def server_user() -> str | None:
    """The user PostgreSQL runs as: ``postgres`` when we are root, else ourselves (None)."""
    return "postgres" if os.geteuid() == 0 else None


def reachable(directory: Path) -> bool:
    """Whether PostgreSQL's user can create its data directory inside ``directory``."""
    user = server_user()
    if user is None:
        return os.access(directory, os.W_OK | os.X_OK)
    probe = directory / ".tms-reachable"
    probe.mkdir(exist_ok=True)
    shutil.chown(probe, user, user)
    try:
        return (
            subprocess.run(as_user(user, ["test", "-w", str(probe)]), check=False).returncode == 0
        )
    finally:
        probe.rmdir()


class PostgresCluster:
    """A cluster in ``base_dir/pgdata`` (log: ``base_dir/postgresql.log``).

    :meth:`create` makes it anew (initdb, configuration); :meth:`start` runs it on a port and
    creates the documentdb extension; :meth:`stop` signals its postmaster by pid.
    """

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self.data_dir = base_dir / "pgdata"
        self.log_path = base_dir / "postgresql.log"
        self.pid: int | None = None
        self.port: int | None = None

    @property
    def url(self) -> str:
        """The ``postgres://`` URL FerretDB connects with."""
        return f"postgres://postgres@{HOST}:{self.port}/postgres?sslmode=disable"

    def create(self) -> None:
        """initdb into an empty data directory, then loopback-only configuration."""
        user = server_user()
        if user is not None and not user_exists(user):
            raise MissingPrerequisite(f"no `{user}` user (Debian's postgresql-common makes it)")
        self.stop_leftover()
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.base_dir.mkdir(parents=True, exist_ok=True)
        if not reachable(self.base_dir):
            raise MissingPrerequisite(
                f"user {user} cannot reach {self.base_dir} (a parent directory is not searchable)"
            )
        self.data_dir.mkdir(mode=0o700)
        if user is not None:
            shutil.chown(self.data_dir, user, user)
        run(
            as_user(
                user,
                [
                    str(PG_BIN / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                    "--no-sync",  # a test server's data: durability of the files is not needed
                ],
            ),
            "initdb",
            timeout=120,
        )
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write(_CONFIG)
        (self.data_dir / "pg_hba.conf").write_text(_HBA)

    def start(self, port: int, timeout: float = START_TIMEOUT) -> int:
        """Start on ``127.0.0.1:port``, wait until it accepts, create the documentdb extension."""
        argv = as_user(server_user(), [str(PG_BIN / "postgres"), "-D", str(self.data_dir)])
        self.pid = spawn([*argv, "-p", str(port)], self.log_path)
        self.port = port
        deadline = time.monotonic() + timeout
        while not self._accepts():
            if not pid_alive(self.pid):
                self.pid = None
                raise ServerError(f"PostgreSQL exited; log {self.log_path}:\n{self._log()}")
            if time.monotonic() > deadline:
                self.stop(kill=True)
                raise ServerError(f"PostgreSQL did not start in {timeout:.0f}s:\n{self._log()}")
            time.sleep(0.05)
        self.psql("CREATE EXTENSION IF NOT EXISTS documentdb CASCADE;")
        return self.pid

    def _accepts(self) -> bool:
        ready = PG_BIN / "pg_isready"
        argv = [str(ready), "-q", "-h", HOST, "-p", str(self.port), "-U", "postgres"]
        return subprocess.run(argv, check=False, timeout=10).returncode == 0

    def _log(self) -> str:
        return log_tail(self.log_path)

    def psql(self, sql: str) -> str:
        """Run ``sql`` as the superuser over loopback TCP; its output (``-At``)."""
        argv = [str(PG_BIN / "psql"), "-h", HOST, "-p", str(self.port), "-U", "postgres"]
        return run(
            [*argv, "-d", "postgres", "-qAt", "-v", "ON_ERROR_STOP=1", "-c", sql],
            f"psql {sql!r}",
            timeout=120,
        )

    @property
    def start_time(self) -> str | None:
        return None if self.pid is None else proc_start_time(self.pid)

    def stop(self, kill: bool = False) -> None:
        """Fast shutdown (SIGINT: clients cut, a checkpoint written); ``kill``: SIGQUIT, the
        immediate shutdown for data about to be thrown away (then SIGKILL if it lingers)."""
        if self.pid is not None and pid_alive(self.pid):
            sig = signal.SIGQUIT if kill else signal.SIGINT
            stop_pid(self.pid, timeout=30.0, first_signal=sig)
        self.pid = None

    def stop_leftover(self) -> None:
        """Stop a postmaster still running on this data directory (a record we lost)."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split()[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            return
        if str(self.data_dir).encode() in cmdline and pid_alive(pid):
            log(f"stopping a PostgreSQL left running on {self.data_dir} (pid {pid})")
            stop_pid(pid, timeout=30.0, first_signal=signal.SIGQUIT)
