#!/usr/bin/env python3
"""Provide a MongoDB-compatible server on loopback for tests, CI and the demo.

Command line (stdlib only)::

    python scripts/mongo_server.py up     # print the URL (last stdout line), start if needed
    python scripts/mongo_server.py down   # stop what `up` started
    python scripts/mongo_server.py url    # print the recorded URL, or exit 1

`up` tries, in order:

(a) ``$TORNADO_SESSION_TEST_MONGODB_URL`` if it is set and answers a ``ping``;
(b) a ``mongod`` found on PATH, on a free 127.0.0.1 port with a temporary dbpath;
(c) FerretDB v1.24.2 (SQLite backend), built from its Go module into ``<repo>/.cache/bin``
    when that binary is missing or reports another version.

What `up` started is recorded in ``<repo>/.cache/mongo/state.json``; a later `up` reuses it
while its pid is alive and it answers. Progress goes to stderr; stdout carries only the URL.

Tests that must stop and restart a server of their own use :class:`PrivateServer`, which
never touches the state file.

Everything here talks to loopback addresses only; a URL given for another host is passed
through unprobed.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import fcntl
import ipaddress
import json
import os
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = REPO_ROOT / ".cache"
BIN_DIR = CACHE_DIR / "bin"
STATE_DIR = CACHE_DIR / "mongo"
STATE_FILE = STATE_DIR / "state.json"

URL_ENV = "TORNADO_SESSION_TEST_MONGODB_URL"
FERRETDB_MODULE = "github.com/FerretDB/FerretDB"
FERRETDB_VERSION = "v1.24.2"
FERRETDB_BIN = BIN_DIR / "ferretdb"
HOST = "127.0.0.1"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
BUILD_TIMEOUT = 900.0

KIND_MONGOD = "mongod"
KIND_FERRETDB = "ferretdb"


class ServerError(RuntimeError):
    """No server could be provided, started or stopped."""


def log(message: str) -> None:
    print(f"mongo_server: {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Wire check: one OP_MSG {ping: 1} with a hand-rolled minimal BSON codec.
# --------------------------------------------------------------------------------------------

_OP_MSG = 2013


def _bson_cstring(text: str) -> bytes:
    return text.encode() + b"\x00"


def _bson_encode(doc: dict[str, int | str]) -> bytes:
    body = b""
    for key, value in doc.items():
        if isinstance(value, int):
            body += b"\x10" + _bson_cstring(key) + struct.pack("<i", value)
        else:
            raw = value.encode() + b"\x00"
            body += b"\x02" + _bson_cstring(key) + struct.pack("<i", len(raw)) + raw
    return struct.pack("<i", len(body) + 5) + body + b"\x00"


def _bson_value_size(etype: int, data: bytes, pos: int) -> int:
    fixed = {0x01: 8, 0x06: 0, 0x07: 12, 0x08: 1, 0x09: 8, 0x0A: 0, 0x10: 4, 0x11: 8, 0x12: 8}
    fixed.update({0x13: 16, 0x7F: 0, 0xFF: 0})
    if etype in fixed:
        return fixed[etype]
    length: int = struct.unpack_from("<i", data, pos)[0]
    if etype in (0x02, 0x0D, 0x0E):  # string, JavaScript, symbol
        return 4 + length
    if etype in (0x03, 0x04, 0x0F):  # document, array, code with scope
        return length
    if etype == 0x05:  # binary: length, subtype, bytes
        return 5 + length
    if etype == 0x0C:  # DBPointer
        return 4 + length + 12
    if etype == 0x0B:  # regex: two cstrings
        end = data.index(b"\x00", data.index(b"\x00", pos) + 1)
        return end + 1 - pos
    raise ValueError(f"unknown BSON type {etype:#x}")


def _bson_ok(data: bytes) -> bool:
    """True when the top-level field ``ok`` of a BSON document equals 1."""
    (length,) = struct.unpack_from("<i", data, 0)
    pos, end = 4, length - 1
    while pos < end:
        etype = data[pos]
        name_end = data.index(b"\x00", pos + 1)
        name, pos = data[pos + 1 : name_end], name_end + 1
        if name == b"ok":
            if etype == 0x01:
                return bool(struct.unpack_from("<d", data, pos)[0] == 1.0)
            if etype == 0x10:
                return bool(struct.unpack_from("<i", data, pos)[0] == 1)
            if etype == 0x12:
                return bool(struct.unpack_from("<q", data, pos)[0] == 1)
            if etype == 0x08:
                return data[pos] == 1
            return False
        pos += _bson_value_size(etype, data, pos)
    return False


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    chunks: list[bytes] = []
    while size:
        chunk = sock.recv(size)
        if not chunk:
            raise ConnectionError("connection closed")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def ping(host: str, port: int, timeout: float = 2.0) -> bool:
    """Send ``{ping: 1}`` as OP_MSG to a loopback host; True if it answers ``ok: 1``."""
    if not is_loopback(host):
        raise ServerError(f"refusing to probe non-loopback host {host!r}")
    body = struct.pack("<I", 0) + b"\x00" + _bson_encode({"ping": 1, "$db": "admin"})
    request = struct.pack("<iiii", 16 + len(body), 1, 0, _OP_MSG) + body
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(request)
            length, _, _, opcode = struct.unpack("<iiii", _recv_exactly(sock, 16))
            payload = _recv_exactly(sock, length - 16)
    except (OSError, struct.error):
        return False
    if opcode != _OP_MSG or len(payload) < 5 or payload[4] != 0:
        return False
    try:
        return _bson_ok(payload[5:])
    except (ValueError, IndexError, struct.error):
        return False


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_host_port(url: str) -> tuple[str, int]:
    """The first host and port of a ``mongodb://`` URL."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "mongodb":
        raise ValueError(f"not a mongodb:// URL: {url!r}")
    first = parts.netloc.rsplit("@", 1)[-1].split(",")[0]
    if first.startswith("["):
        host, _, rest = first[1:].partition("]")
        port_text = rest.lstrip(":")
    else:
        host, _, port_text = first.partition(":")
    if not host:
        raise ValueError(f"no host in {url!r}")
    return host, int(port_text or 27017)


def url_answers(url: str, timeout: float = 2.0) -> bool:
    host, port = url_host_port(url)
    return ping(host, port, timeout)


def make_url(port: int) -> str:
    return f"mongodb://{HOST}:{port}/"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs (reaps it first if it is our own exited child)."""
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped by its parent) still answers kill(pid, 0)
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def proc_start_time(pid: int) -> str | None:
    """The process start time from /proc (field 22 of stat), to tell a reused pid apart."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat_line.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else None


def stop_pid(pid: int, timeout: float = STOP_TIMEOUT, kill: bool = False) -> None:
    """SIGTERM, wait up to ``timeout``, then SIGKILL (only SIGKILL if ``kill``)."""
    steps = [(signal.SIGTERM, timeout)] if not kill else []
    for sig, wait in [*steps, (signal.SIGKILL, 5.0)]:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                return
            time.sleep(0.05)
    raise ServerError(f"process {pid} did not exit after SIGKILL")


def spawn(argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> int:
    """Start ``argv`` detached (own session, stdin /dev/null, output to ``log_path``)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(log_path), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    return os.posix_spawn(
        argv[0], argv, dict(os.environ if env is None else env), file_actions=actions, setsid=True
    )


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def wait_until_answers(pid: int, port: int, log_path: Path, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ping(HOST, port, timeout=1.0):
            return
        if not pid_alive(pid):
            raise ServerError(
                f"server exited during startup; log {log_path}:\n{log_tail(log_path)}"
            )
        time.sleep(0.1)
    stop_pid(pid)
    raise ServerError(
        f"server did not answer on {HOST}:{port} within {timeout:.0f}s; "
        f"log {log_path}:\n{log_tail(log_path)}"
    )


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --------------------------------------------------------------------------------------------
# mongod and FerretDB
# --------------------------------------------------------------------------------------------


def find_mongod() -> str | None:
    return shutil.which("mongod")


def find_go() -> str | None:
    found = shutil.which("go")
    if found:
        return found
    default = Path("/usr/local/go/bin/go")
    return str(default) if default.is_file() and os.access(default, os.X_OK) else None


def ferretdb_version(binary: Path | None = None) -> str | None:
    """The version that ``binary`` (default: the cached build) reports, or None."""
    binary = FERRETDB_BIN if binary is None else binary
    if not binary.is_file():
        return None
    try:
        out = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=20, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in out.stdout.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "version" and out.returncode == 0:
            return value.strip()
    return None


def _go_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("GOTOOLCHAIN", "local")  # never fetch a toolchain behind our back
    return env


def build_ferretdb() -> Path:
    """Build FerretDB from its Go module into ``.cache/bin/ferretdb`` (reused when current).

    ``go install github.com/FerretDB/FerretDB/cmd/ferretdb@v1.24.2`` alone gives a binary that
    panics at start: the module lacks ``build/version/version.txt``, which FerretDB's release
    tooling generates. So: fetch the module with ``go mod download`` (the same module proxy
    ``go install`` uses), copy it, write that file, and ``go build`` ``./cmd/ferretdb``.
    """
    with file_lock(CACHE_DIR / "ferretdb-build.lock"):
        if ferretdb_version() == FERRETDB_VERSION:
            return FERRETDB_BIN
        go = find_go()
        if go is None:
            raise ServerError("`go` is not on PATH (nor /usr/local/go/bin/go)")
        env = _go_env()
        env["GOBIN"] = str(BIN_DIR)
        started = time.monotonic()
        log(f"building FerretDB {FERRETDB_VERSION} into {FERRETDB_BIN} (first time only)...")
        with tempfile.TemporaryDirectory(prefix="tms-ferretdb-build-") as tmp:
            out = subprocess.run(
                [go, "mod", "download", "-json", f"{FERRETDB_MODULE}@{FERRETDB_VERSION}"],
                cwd=tmp,
                env=env,
                capture_output=True,
                text=True,
                timeout=BUILD_TIMEOUT,
                check=False,
            )
            if out.returncode != 0:
                raise ServerError(f"go mod download failed:\n{out.stdout}{out.stderr}")
            module_dir = Path(json.loads(out.stdout)["Dir"])
            src = Path(tmp) / "src"
            shutil.copytree(module_dir, src)
            for root, dirs, files in os.walk(src):
                for name in dirs + files:
                    path = Path(root, name)
                    path.chmod(path.stat().st_mode | stat.S_IWUSR)
            src.chmod(src.stat().st_mode | stat.S_IWUSR)
            (src / "build" / "version" / "version.txt").write_text(FERRETDB_VERSION + "\n")
            BIN_DIR.mkdir(parents=True, exist_ok=True)
            partial = BIN_DIR / "ferretdb.partial"
            built = subprocess.run(
                [go, "build", "-trimpath", "-buildvcs=false", "-o", str(partial), "./cmd/ferretdb"],
                cwd=src,
                env=env,
                capture_output=True,
                text=True,
                timeout=BUILD_TIMEOUT,
                check=False,
            )
            if built.returncode != 0:
                raise ServerError(f"go build of FerretDB failed:\n{built.stdout}{built.stderr}")
            os.replace(partial, FERRETDB_BIN)
        version = ferretdb_version()
        if version != FERRETDB_VERSION:
            raise ServerError(f"built FerretDB reports version {version!r}, not {FERRETDB_VERSION}")
        log(f"FerretDB built in {time.monotonic() - started:.0f}s")
        return FERRETDB_BIN


def server_argv(kind: str, binary: str, port: int, data_dir: Path) -> list[str]:
    """The command line for a server on ``127.0.0.1:port`` keeping its data in ``data_dir``."""
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
    if kind == KIND_FERRETDB:
        sqlite_dir = data_dir / "sqlite"
        state_dir = data_dir / "state"
        sqlite_dir.mkdir(parents=True, exist_ok=True)
        state_dir.mkdir(parents=True, exist_ok=True)
        return [
            binary,
            "--handler=sqlite",
            f"--sqlite-url=file:{sqlite_dir}/",
            f"--state-dir={state_dir}",
            f"--listen-addr={HOST}:{port}",
            "--debug-addr=-",
            "--telemetry=disable",
            "--test-telemetry-url=http://127.0.0.1:9/",
            "--log-level=warn",
        ]
    raise ValueError(f"unknown server kind {kind!r}")


def server_env(kind: str) -> dict[str, str]:
    env = dict(os.environ)
    if kind == KIND_FERRETDB:
        env["DO_NOT_TRACK"] = "1"
    return env


def start_server(kind: str, binary: str, port: int, data_dir: Path) -> int:
    """Start a server, wait until it answers, return its pid."""
    argv = server_argv(kind, binary, port, data_dir)
    log_path = data_dir / f"{kind}.out.log"
    log(f"starting {kind} on {HOST}:{port} (data {data_dir})")
    pid = spawn(argv, log_path, server_env(kind))
    wait_until_answers(pid, port, log_path)
    return pid


def resolve_binary(kind: str | None = None) -> tuple[str, str]:
    """(kind, binary): mongod if on PATH, else FerretDB (built if needed)."""
    if kind in (None, KIND_MONGOD):
        mongod = find_mongod()
        if mongod:
            return KIND_MONGOD, mongod
        if kind == KIND_MONGOD:
            raise ServerError("mongod is not on PATH")
    return KIND_FERRETDB, str(build_ferretdb())


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


def _recorded_pid_alive(state: dict[str, Any]) -> bool:
    """The recorded pid runs and is the same process (same start time) as recorded."""
    pid = int(state.get("pid", 0))
    if pid <= 0 or not pid_alive(pid):
        return False
    recorded = state.get("start_time")
    return recorded is None or proc_start_time(pid) in (None, recorded)


def _recorded_alive(state: dict[str, Any]) -> bool:
    return _recorded_pid_alive(state) and url_answers(str(state["url"]))


def _discard(state: dict[str, Any]) -> None:
    """Stop the recorded process (if it is still the one recorded), remove its data and record."""
    try:
        if _recorded_pid_alive(state):
            pid = int(state["pid"])
            log(f"stopping {state.get('kind')} pid {pid}")
            stop_pid(pid)
        data_dir = state.get("data_dir")
        if isinstance(data_dir, str) and Path(data_dir).name.startswith("tms-"):
            shutil.rmtree(data_dir, ignore_errors=True)
    except (KeyError, ValueError, TypeError):
        log(f"malformed record in {STATE_FILE}; removing it")
    STATE_FILE.unlink(missing_ok=True)


def up() -> str:
    """Return the URL of a server that answers, starting one if needed."""
    failures: list[str] = []
    env_url = os.environ.get(URL_ENV, "").strip()
    if env_url:
        try:
            host, _ = url_host_port(env_url)
            if not is_loopback(host):
                log(f"${URL_ENV} names non-loopback host {host!r}: used as given, not probed")
                return env_url
            if url_answers(env_url):
                return env_url
            failures.append(f"(a) ${URL_ENV}={env_url} did not answer a ping")
        except ValueError as exc:
            failures.append(f"(a) ${URL_ENV}: {exc}")
        log(failures[-1])
    else:
        failures.append(f"(a) ${URL_ENV} is not set")

    with file_lock(STATE_DIR / "lock"):
        state = read_state()
        if state is not None:
            try:
                if _recorded_alive(state):
                    log(f"reusing {state['kind']} pid {state['pid']} at {state['url']}")
                    return str(state["url"])
            except (KeyError, ValueError, TypeError):
                pass
            log("recorded server is gone or not answering; discarding its record")
            _discard(state)

        candidates: list[str] = []
        if find_mongod():
            candidates.append(KIND_MONGOD)
        else:
            failures.append("(b) no `mongod` on PATH")
        candidates.append(KIND_FERRETDB)

        for kind in candidates:
            data_dir = Path(tempfile.mkdtemp(prefix=f"tms-{kind}-"))
            try:
                kind, binary = resolve_binary(kind)
                port = free_port()
                pid = start_server(kind, binary, port, data_dir)
            except (ServerError, OSError, subprocess.SubprocessError) as exc:
                shutil.rmtree(data_dir, ignore_errors=True)
                label = "(b) mongod" if kind == KIND_MONGOD else "(c) FerretDB"
                failures.append(f"{label}: {exc}")
                log(failures[-1])
                continue
            url = make_url(port)
            write_state(
                {
                    "kind": kind,
                    "pid": pid,
                    "start_time": proc_start_time(pid),
                    "url": url,
                    "port": port,
                    "binary": binary,
                    "data_dir": str(data_dir),
                    "started_at": time.time(),
                }
            )
            log(f"{kind} pid {pid} answers at {url} (stop it with `make mongo-down`)")
            return url

    raise ServerError(
        "no MongoDB-compatible server available. Options, in the order tried:\n"
        f"  (a) set ${URL_ENV} to a running server, e.g. mongodb://127.0.0.1:27017/\n"
        "  (b) put `mongod` on PATH\n"
        f"  (c) install Go (>= 1.24) so FerretDB {FERRETDB_VERSION} can be built into "
        f"{FERRETDB_BIN}\n"
        "What failed:\n  " + "\n  ".join(failures)
    )


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

    ``kind`` is ``"mongod"``, ``"ferretdb"`` or None (mongod if on PATH, else FerretDB).
    The data directory is temporary (removed by :meth:`close`) unless ``data_dir`` is given.
    Never recorded in state.json; closed at interpreter exit if still open.
    """

    def __init__(
        self, kind: str | None = None, data_dir: Path | None = None, port: int | None = None
    ) -> None:
        self._requested_kind = kind
        self._own_dir = data_dir is None
        self.data_dir = (
            Path(tempfile.mkdtemp(prefix="tms-private-")) if data_dir is None else Path(data_dir)
        )
        self.port = port if port is not None else free_port()
        self.kind: str | None = None
        self._binary: str | None = None
        self.pid: int | None = None
        _OPEN_PRIVATE.add(self)

    @property
    def url(self) -> str:
        return make_url(self.port)

    @property
    def running(self) -> bool:
        if self.pid is not None and not pid_alive(self.pid):
            self.pid = None  # exited (and reaped): never signal that pid again
        return self.pid is not None

    def start(self, timeout: float = START_TIMEOUT) -> str:
        """Start (or restart on the same port and data); return the URL once it answers."""
        if self.running:
            return self.url
        if self._binary is None:
            self.kind, self._binary = resolve_binary(self._requested_kind)
        assert self.kind is not None
        self.data_dir.mkdir(parents=True, exist_ok=True)
        argv = server_argv(self.kind, self._binary, self.port, self.data_dir)
        log_path = self.data_dir / f"{self.kind}.out.log"
        self.pid = spawn(argv, log_path, server_env(self.kind))
        try:
            wait_until_answers(self.pid, self.port, log_path, timeout)
        except ServerError:
            self.stop()
            raise
        return self.url

    def stop(self, timeout: float = STOP_TIMEOUT, kill: bool = False) -> None:
        """Stop the process; the data stays.

        SIGTERM, then SIGKILL after ``timeout``; ``kill=True`` sends SIGKILL at once (a crash;
        also faster: FerretDB takes ~3 s to stop gracefully while clients are connected).
        """
        if self.running:
            assert self.pid is not None
            stop_pid(self.pid, timeout, kill=kill)
        self.pid = None

    def restart(self) -> str:
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop, and remove the data directory if this object created it."""
        self.stop()
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
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            print(up(), flush=True)
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
