#!/usr/bin/env python3
"""Provide a MongoDB-compatible server on loopback for tests, CI and the demo.

Command line (stdlib only)::

    python scripts/mongo_server.py up     # print the URL (last stdout line), start if needed
    python scripts/mongo_server.py down   # stop what `up` started
    python scripts/mongo_server.py url    # print the recorded URL, or exit 1

`up` tries, in order:

(a) ``$TORNADO_SESSION_TEST_MONGODB_URL`` if it is set and answers a ``ping``;
(b) a ``mongod`` found on PATH, on a free 127.0.0.1 port with a temporary dbpath;
(c) FerretDB v2.5.0 on PostgreSQL 15 with DocumentDB (atomic single-document updates, TTL
    indexes): Debian's packages (apt-get), the vendored extension sources checked and built
    (``pg_extensions.py``), FerretDB built from its Go module (``ferretdb_build.py``), a private
    PostgreSQL cluster in ``<repo>/.cache/ferretdb2/server`` (``pg_cluster.py``);
(d) only when a prerequisite of (c) is missing (the warning says which): FerretDB v1.24.2 on
    SQLite, which LACKS ATOMIC UPDATES (the multi-process tests skip on it).

``$TORNADO_SESSION_TEST_SERVER_KIND`` (``mongod``, ``ferretdb2``, ``ferretdb1``; the Makefile's
``MONGO_KIND``) asks for one kind only, with no fallback. Each phase's duration goes to stderr
and to ``.cache/ferretdb2/timings.log``.

What `up` started is recorded in ``<repo>/.cache/mongo/state.json``; a later `up` reuses it
while its pids are alive and it answers; `down` stops them by pid. Progress goes to stderr;
stdout carries only the URL. Tests that must stop and restart a server of their own use
:class:`PrivateServer`, which never touches the state file. Everything here listens on and
probes 127.0.0.1 only; a URL given for another host is passed through unprobed.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:  # the sibling modules, however this one was loaded
    sys.path.insert(0, _HERE)
# ruff: noqa: E402  (the imports below need the line above)
from mongo_wire import free_port, is_loopback, make_url, url_answers, url_host_port
from pg_cluster import PostgresCluster, reachable
from server_kinds import (
    DESCRIPTION,
    FERRETDB2_DIR,
    KIND_ENV,
    KIND_FERRETDB2,
    KINDS,
    START_TIMEOUT,
    TIMINGS,
    ServerProcess,
    requested_kind,
    resolve,
)
from server_procs import (
    MissingPrerequisite,
    ServerError,
    file_lock,
    log,
    phase,
    pid_alive,
    proc_start_time,
    stop_pid,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
STATE_DIR = REPO_ROOT / ".cache" / "mongo"
STATE_FILE = STATE_DIR / "state.json"
URL_ENV = "TORNADO_SESSION_TEST_MONGODB_URL"

__all__ = [
    "KINDS",
    "URL_ENV",
    "MissingPrerequisite",
    "PrivateServer",
    "ServerError",
    "down",
    "read_state",
    "up",
]


# --------------------------------------------------------------------------------------------
# The shared server recorded in state.json
# --------------------------------------------------------------------------------------------


def read_state() -> dict[str, Any] | None:
    try:
        state = json.loads(STATE_FILE.read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def write_state(state: dict[str, Any]) -> None:
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    partial = STATE_FILE.with_suffix(".partial")
    partial.write_text(json.dumps(state, indent=2) + "\n")
    os.replace(partial, STATE_FILE)


def _same_process(record: dict[str, Any]) -> bool:
    """The recorded pid runs and is the same process (same start time) as recorded."""
    pid = int(record.get("pid") or 0)
    if pid <= 0 or not pid_alive(pid):
        return False
    recorded = record.get("start_time")
    return recorded is None or proc_start_time(pid) in (None, recorded)


def _recorded_alive(state: dict[str, Any]) -> bool:
    postgres = state.get("postgres")
    return (
        _same_process(state)
        and (postgres is None or _same_process(postgres))
        and url_answers(str(state["url"]))
    )


def _discard(state: dict[str, Any]) -> None:
    """Stop the recorded processes (those still the ones recorded), remove data and record."""
    try:
        if _same_process(state):
            log(f"stopping {state.get('kind')} pid {state['pid']}")
            stop_pid(int(state["pid"]))
        postgres = state.get("postgres")
        if isinstance(postgres, dict) and _same_process(postgres):
            log(f"stopping PostgreSQL pid {postgres['pid']}")
            stop_pid(int(postgres["pid"]), timeout=30.0, first_signal=signal.SIGQUIT)
        data_dir = state.get("data_dir")
        if isinstance(data_dir, str) and Path(data_dir).name.startswith("tms-"):
            shutil.rmtree(data_dir, ignore_errors=True)
        elif data_dir == str(_ferretdb2_home()):  # its logs stay, for a look after the fact
            shutil.rmtree(_ferretdb2_home() / "pg" / "pgdata", ignore_errors=True)
    except (KeyError, ValueError, TypeError):
        log(f"malformed record in {STATE_FILE}; removing it")
    STATE_FILE.unlink(missing_ok=True)


def _ferretdb2_home() -> Path:
    return FERRETDB2_DIR / "server"


def _data_dir_for(kind: str) -> Path:
    """Where `up` keeps a server's data: FerretDB 2's PostgreSQL under ``.cache/`` when its
    user can reach it there, else (and for the other kinds) a fresh temporary directory."""
    if kind == KIND_FERRETDB2:
        home = _ferretdb2_home()
        home.mkdir(parents=True, exist_ok=True)
        if reachable(home):
            cluster = PostgresCluster(home / "pg")
            cluster.stop_leftover()
            shutil.rmtree(cluster.data_dir, ignore_errors=True)  # a fresh cluster every time
            return home
        log(f"PostgreSQL's user cannot reach {home}: using a temporary directory")
    return _temp_dir(f"tms-{kind}-")


def _temp_dir(prefix: str) -> Path:
    """A new temporary directory that PostgreSQL's user may pass through (not list)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o711)
    return path


def _start_recorded(kind: str, binary: str) -> str:
    data_dir = _data_dir_for(kind)
    server = ServerProcess(kind, binary, data_dir, free_port(), TIMINGS)
    try:
        with phase(f"{kind}-start", TIMINGS):
            server.start()
    except BaseException:
        server.close()
        shutil.rmtree(data_dir, ignore_errors=True)
        raise
    write_state(server.record())
    url = make_url(server.port)
    log(f"{DESCRIPTION[kind]} pid {server.pid} answers at {url} (stop it: `make mongo-down`)")
    return url


def up(kind: str | None = None) -> str:
    """Return the URL of a server that answers, starting one if needed (module docstring)."""
    env_url = os.environ.get(URL_ENV, "").strip()
    if env_url:
        try:
            host, _ = url_host_port(env_url)
            if not is_loopback(host):
                log(f"${URL_ENV} names non-loopback host {host!r}: used as given, not probed")
                return env_url
            if url_answers(env_url):
                return env_url
            log(f"${URL_ENV}={env_url} does not answer a ping: starting a server instead")
        except ValueError as exc:
            log(f"${URL_ENV}: {exc}: starting a server instead")

    wanted = requested_kind(kind)
    with file_lock(STATE_DIR / "lock"):
        state = read_state()
        if state is not None:
            try:
                if _recorded_alive(state):
                    if wanted not in (None, state["kind"]):
                        raise ServerError(
                            f"a {state['kind']} server is recorded; `make mongo-down` first"
                        )
                    log(f"reusing {state['kind']} pid {state['pid']} at {state['url']}")
                    return str(state["url"])
            except (KeyError, ValueError, TypeError):
                pass
            log("recorded server is gone or not answering; discarding its record")
            _discard(state)
        return _start_recorded(*resolve(wanted))


def down() -> bool:
    """Stop the recorded server; False if nothing was recorded."""
    with file_lock(STATE_DIR / "lock"):
        state = read_state()
        if state is None:
            STATE_FILE.unlink(missing_ok=True)
            return False
        _discard(state)
        log(f"stopped {state.get('kind', 'server')} (was {state.get('url', '?')})")
        return True


def recorded_url() -> str | None:
    state = read_state()
    try:
        return str(state["url"]) if state is not None and _recorded_alive(state) else None
    except (KeyError, ValueError, TypeError):
        return None


# --------------------------------------------------------------------------------------------
# Private servers for fault tests
# --------------------------------------------------------------------------------------------

_OPEN_PRIVATE: set[PrivateServer] = set()  # closed at interpreter exit if still open


class PrivateServer:
    """A server of the caller's own, to stop and restart on the same data and port.

    ``kind`` is one of :data:`KINDS` or None (as `up` chooses: mongod if on PATH, else FerretDB
    2, else FerretDB 1.24). The data directory is temporary (removed by :meth:`close`) unless
    ``data_dir`` is given. Never recorded in state.json; closed at interpreter exit if still open.

    What "the server dies" means: :meth:`stop` (SIGTERM, or SIGKILL with ``kill=True``) ends
    the process clients connect to, and :attr:`pid` is that process (SIGSTOP it to freeze the
    server). For mongod and FerretDB 1.24 that is the whole server. For FerretDB 2 it is the
    FerretDB process: clients see connections refused or cut, as when a mongod dies, and
    acknowledged writes are safe as mongod's journal keeps them, because they are committed in
    this server's own PostgreSQL cluster, which keeps running until :meth:`close`. A crash of
    PostgreSQL itself (its recovery) is not exercised.
    """

    def __init__(
        self, kind: str | None = None, data_dir: Path | None = None, port: int | None = None
    ) -> None:
        self._requested_kind = kind
        self._own_dir = data_dir is None
        self.data_dir = _temp_dir("tms-private-") if data_dir is None else Path(data_dir)
        self.port = port if port is not None else free_port()
        self._server: ServerProcess | None = None
        _OPEN_PRIVATE.add(self)

    @property
    def kind(self) -> str | None:
        return None if self._server is None else self._server.kind

    @property
    def url(self) -> str:
        return make_url(self.port)

    @property
    def pid(self) -> int | None:
        """The pid of the process clients connect to, while it runs."""
        return self._server.pid if self.running and self._server is not None else None

    @property
    def storage_pid(self) -> int | None:
        """FerretDB 2's PostgreSQL postmaster (None for the other kinds, or when stopped)."""
        cluster = None if self._server is None else self._server.cluster
        return None if cluster is None or cluster.pid is None else cluster.pid

    @property
    def running(self) -> bool:
        server = self._server
        if server is not None and server.pid is not None and not pid_alive(server.pid):
            server.pid = None  # exited (and reaped): never signal that pid again
        return server is not None and server.pid is not None

    def start(self, timeout: float = START_TIMEOUT) -> str:
        """Start (or restart on the same port and data); return the URL once it answers."""
        if self.running:
            return self.url
        if self._server is None:
            kind, binary = resolve(self._requested_kind)
            self._server = ServerProcess(kind, binary, self.data_dir, self.port)
        self._server.start(timeout)
        return self.url

    def stop(self, timeout: float = 10.0, kill: bool = False) -> None:
        """Stop the process; the data stays.

        SIGTERM, then SIGKILL after ``timeout``; ``kill=True`` sends SIGKILL at once (a crash;
        also faster: FerretDB takes ~3 s to stop gracefully while clients are connected).
        """
        if self._server is not None:
            self._server.stop(timeout, kill=kill)

    def restart(self) -> str:
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop everything, and remove the data directory if this object created it."""
        if self._server is not None:
            self._server.close()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        _OPEN_PRIVATE.discard(self)

    def __enter__(self) -> PrivateServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PrivateServer(kind={self.kind!r}, url={self.url!r}, pid={self.pid})"


@atexit.register
def _close_private_servers() -> None:
    for server in list(_OPEN_PRIVATE):
        with contextlib.suppress(Exception):
            server.close()


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("command", choices=["up", "down", "url"])
    parser.add_argument(
        "--kind", choices=["auto", *KINDS], help=f"server kind (default: ${KIND_ENV} or auto)"
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            print(up(args.kind), flush=True)
        elif args.command == "down":
            if not down():
                log("nothing recorded; nothing to stop")
        else:
            url = recorded_url()
            if url is None:
                log("no recorded server is running (run `make mongo-up`)")
                return 1
            print(url, flush=True)
    except ServerError as exc:
        log(f"error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
