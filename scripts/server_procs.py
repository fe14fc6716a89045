"""Processes of the test servers: start detached, tell alive, stop by pid, lock, time phases.

Stdlib only. Every process here is started by us and stopped by its pid, never by name.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

STOP_TIMEOUT = 10.0


class ServerError(RuntimeError):
    """No server could be provided, started or stopped."""


class MissingPrerequisite(ServerError):
    """Something a server kind needs is not here and cannot be had (the message says what)."""


def log(message: str) -> None:
    print(f"mongo_server: {message}", file=sys.stderr, flush=True)


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


def stop_pid(
    pid: int,
    timeout: float = STOP_TIMEOUT,
    kill: bool = False,
    first_signal: signal.Signals = signal.SIGTERM,
) -> None:
    """``first_signal`` (SIGTERM), wait up to ``timeout``, then SIGKILL (at once if ``kill``)."""
    steps = [(first_signal, timeout)] if not kill else []
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


def as_user(user: str | None, argv: list[str]) -> list[str]:
    """``argv`` run as ``user`` (through setpriv, which execs: the pid stays the process's)."""
    if user is None:
        return argv
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise MissingPrerequisite("`setpriv` (util-linux) is not on PATH")
    return [setpriv, f"--reuid={user}", f"--regid={user}", "--init-groups", "--", *argv]


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


def run(argv: list[str], what: str, *, timeout: float, **kwargs: object) -> str:
    """Run ``argv`` to completion; its output, or ServerError naming ``what`` with the output."""
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            **kwargs,  # type: ignore[call-overload]
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ServerError(f"{what} failed: {exc}") from exc
    output = str(done.stdout) + str(done.stderr)
    if done.returncode != 0:
        raise ServerError(f"{what} failed (exit {done.returncode}):\n{tail(output)}")
    return output


def tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.splitlines()[-lines:]) or "(no output)"


def log_tail(path: Path, lines: int = 20) -> str:
    try:
        return tail(path.read_text(errors="replace"), lines)
    except OSError:
        return "(no log)"


def user_exists(user: str) -> bool:
    try:
        pwd.getpwnam(user)
    except KeyError:
        return False
    return True


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def phase(name: str, timings: Path | None = None) -> Iterator[None]:
    """Log how long the block took (and append it to ``timings``): CI's budget is per phase."""
    started = time.monotonic()
    try:
        yield
    finally:
        took = time.monotonic() - started
        log(f"phase {name}: {took:.1f}s")
        if timings is not None:
            timings.parent.mkdir(parents=True, exist_ok=True)
            with timings.open("a") as out:
                out.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {name} {took:.1f}s\n")
