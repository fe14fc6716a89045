#!/usr/bin/env python3
"""Run the test suite on every supported Python found here, and once on the oldest dependency
versions ``pyproject.toml`` allows; print a table of the results (``make test-matrix``).

Command line (stdlib only)::

    python scripts/test_matrix.py [ROW ...]   # rows: 3.10 3.11 3.12 3.13 oldest (default: all)
    python scripts/test_matrix.py --list      # the rows and the interpreter each would use

A row is one Python with the newest dependencies, or ``oldest``: the oldest supported Python with
every dependency pinned to its lower bound in ``pyproject.toml`` (and pydantic to the oldest
release that pydantic-settings accepts). Each row has its own venv in ``.cache/matrix/<row>/``,
made by ``make install`` and reused while ``pyproject.toml`` (and, for ``oldest``, the pins) are
unchanged; then ``make test`` runs in it. Every row uses one server:
``$TORNADO_SESSION_TEST_MONGODB_URL`` if set, else the one ``make mongo-up`` gives (stop it with
``make mongo-down``).

Interpreters are looked for in pyenv's versions (newest patch release first), then as
``python3.X`` on ``PATH``. A supported Python that is not found is a row marked "not found",
which does not fail the run; a row whose install or tests fail does (exit status 1). Each row's
output goes to ``.cache/matrix/<row>.log``; ``PYTEST_ARGS`` is passed on to ``make test``.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
MATRIX_DIR = REPO_ROOT / ".cache" / "matrix"
PYPROJECT = REPO_ROOT / "pyproject.toml"
URL_ENV = "TORNADO_SESSION_TEST_MONGODB_URL"

SUPPORTED = ("3.10", "3.11", "3.12", "3.13")
OLDEST = "oldest"
PINNED = (
    "tornado",
    "pymongo",
    "pydantic-settings",
    "click",
    "motor",
    "cryptography",
    "prometheus_client",
)
"""Dependencies (and extras used by the tests) pinned to their ``>=`` bound in the oldest row."""
EXTRA_PINS = ("pydantic==2.3.0",)
"""The oldest pydantic that the oldest pydantic-settings takes (2.2.0 asks for pydantic>=2.3.0)."""


@dataclass
class Row:
    name: str  # "3.12" or "oldest"
    python: str  # "3.12"
    interpreter: Path | None
    pins: tuple[str, ...] = ()

    @property
    def venv(self) -> Path:
        return MATRIX_DIR / (f"py{self.name}" if self.name != OLDEST else OLDEST)

    @property
    def deps(self) -> str:
        return OLDEST if self.pins else "newest"


@dataclass
class Result:
    row: Row
    status: str  # "ok", "FAILED", "not found", "install failed"
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    install_seconds: float = 0.0
    test_seconds: float = 0.0
    python_version: str = ""  # "3.12.1"
    versions: str = ""  # "tornado 6.4, pymongo 4.13.0, ..." as installed


def log(message: str) -> None:
    print(f"test_matrix: {message}", file=sys.stderr, flush=True)


def run_python(interpreter: Path, code: str) -> str | None:
    """What ``code`` prints when run by ``interpreter``; None if it fails."""
    try:
        done = subprocess.run(
            [str(interpreter), "-c", code], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def version_of(interpreter: Path) -> str | None:
    """``"3.12"`` for a working interpreter, else None."""
    return run_python(interpreter, "import sys; print('%d.%d' % sys.version_info[:2])")


def installed(venv: Path) -> tuple[str, str]:
    """(full Python version, the versions of PINNED and pydantic installed in ``venv``)."""
    names = [*PINNED, "pydantic"]
    code = (
        "import platform\nfrom importlib.metadata import version\n"
        f"print(platform.python_version())\nfor n in {names!r}: print(n, version(n))"
    )
    lines = (run_python(venv / "bin" / "python", code) or "?").splitlines()
    return lines[0], ", ".join(lines[1:])


def _release(path: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path.name))


def find_interpreter(python: str) -> Path | None:
    """The newest pyenv build of ``python`` (e.g. ``"3.12"``), else ``python3.12`` on PATH."""
    roots = [Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"]
    candidates: list[Path] = []
    for root in roots:
        builds = sorted(root.glob(f"{python}.*"), key=_release, reverse=True)
        candidates += [build / "bin" / "python3" for build in builds if build.name[-1].isdigit()]
    on_path = shutil.which(f"python{python}")
    if on_path:
        candidates.append(Path(on_path))
    for candidate in candidates:
        if candidate.exists() and version_of(candidate) == python:
            return candidate
    return None


def oldest_pins() -> tuple[str, ...]:
    """``name==bound`` for each of PINNED, from its ``name>=bound`` in pyproject.toml."""
    text = PYPROJECT.read_text()
    pins = []
    for name in PINNED:
        found = re.findall(rf'"{re.escape(name)}>=([0-9][0-9.]*)"', text)
        if len(found) != 1:
            raise SystemExit(f'test_matrix: pyproject.toml: expected one "{name}>=..."')
        pins.append(f"{name}=={found[0]}")
    return (*pins, *EXTRA_PINS)


def rows(selected: list[str]) -> list[Row]:
    wanted = selected or [*SUPPORTED, OLDEST]
    unknown = sorted(set(wanted) - {*SUPPORTED, OLDEST})
    if unknown:
        raise SystemExit(f"test_matrix: unknown rows {unknown}; known: {[*SUPPORTED, OLDEST]}")
    found = {python: find_interpreter(python) for python in SUPPORTED}
    result = [Row(python, python, found[python]) for python in SUPPORTED if python in wanted]
    if OLDEST in wanted:
        result.append(Row(OLDEST, SUPPORTED[0], found[SUPPORTED[0]], oldest_pins()))
    return result


def server_url() -> str:
    """``$TORNADO_SESSION_TEST_MONGODB_URL``, else the last line ``make mongo-up`` prints."""
    url = os.environ.get(URL_ENV, "").strip()
    if url:
        return url
    done = subprocess.run(
        ["make", "--no-print-directory", "mongo-up"],
        cwd=REPO_ROOT,
        env=child_env(),
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise SystemExit("test_matrix: no server: make mongo-up failed")
    return lines[-1]


def child_env() -> dict[str, str]:
    """This environment without the make variables of a make that runs this script."""
    return {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}


def make(args: list[str], env: dict[str, str], log_file: Path) -> tuple[int, float]:
    """Run make with ``args``, appending its output to ``log_file``; (exit status, seconds)."""
    started = time.monotonic()
    with log_file.open("a") as out:
        out.write(f"$ make {shlex.join(args)}\n")
        out.flush()
        status = subprocess.run(
            ["make", "--no-print-directory", *args],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        ).returncode
    return status, time.monotonic() - started


def prepare_venv(row: Row) -> None:
    """Drop a venv made by another interpreter, and the install stamp when the pins changed."""
    assert row.interpreter is not None
    python = row.venv / "bin" / "python"
    if python.exists() and version_of(python) != row.python:
        shutil.rmtree(row.venv)
    row.venv.mkdir(parents=True, exist_ok=True)
    constraints = row.venv / "constraints.txt"
    wanted = "".join(f"{pin}\n" for pin in row.pins)
    if not constraints.exists() or constraints.read_text() != wanted:
        (row.venv / ".installed").unlink(missing_ok=True)
        constraints.write_text(wanted)


def run_row(row: Row, url: str, pytest_args: str) -> Result:
    if row.interpreter is None:
        return Result(row, "not found")
    prepare_venv(row)
    log_file = MATRIX_DIR / f"{row.venv.name}.log"
    log_file.write_text("")
    report = MATRIX_DIR / f"{row.venv.name}.xml"
    report.unlink(missing_ok=True)
    env = child_env()
    env[URL_ENV] = url
    env["PIP_CONSTRAINT"] = str(row.venv / "constraints.txt")
    env["COVERAGE_FILE"] = str(MATRIX_DIR / f"{row.venv.name}.coverage")
    venv = os.path.relpath(row.venv, REPO_ROOT)
    common = [f"VENV={venv}", f"PYTHON={row.interpreter}"]
    log(f"{row.name}: make install ({row.interpreter}, {row.deps})")
    status, install_seconds = make(["install", *common], env, log_file)
    if status != 0:
        log(f"{row.name}: install failed, see {log_file}")
        return Result(row, "install failed", install_seconds=install_seconds)
    log(f"{row.name}: make test")
    args = f"--junitxml={shlex.quote(str(report))} {pytest_args}".strip()
    status, test_seconds = make(["test", *common, f"PYTEST_ARGS={args}"], env, log_file)
    result = Result(row, "ok", install_seconds=install_seconds, test_seconds=test_seconds)
    result.python_version, result.versions = installed(row.venv)
    if report.exists():
        suite = ET.parse(report).getroot()  # noqa: S314 (pytest's own report, just written)
        inner = suite.find("testsuite")  # pytest wraps its one <testsuite> in <testsuites>
        suite = suite if inner is None else inner
        total = int(suite.get("tests", 0))
        result.failed = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        result.skipped = int(suite.get("skipped", 0))
        result.passed = total - result.failed - result.skipped
    if status != 0 or result.failed or not result.passed:
        result.status = "FAILED"
        log(f"{row.name}: tests failed (exit {status}), see {log_file}")
    return result


def table(results: list[Result], url: str) -> str:
    header = ("Python", "deps", "result", "passed", "failed", "skipped", "install", "tests")
    lines: list[tuple[str, ...]] = [header]
    for r in results:
        ran = r.status != "not found"
        tested = ran and r.status != "install failed"
        lines.append(
            (
                r.python_version or r.row.python,
                r.row.deps,
                r.status,
                *(str(n) if tested else "-" for n in (r.passed, r.failed, r.skipped)),
                f"{r.install_seconds:.0f} s" if ran else "-",
                f"{r.test_seconds:.0f} s" if tested else "-",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = [f"Test matrix against {url}:", ""]
    for number, line in enumerate(lines):
        cells = (cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        text.append(" | ".join(cells).rstrip())
        if number == 0:
            text.append("-+-".join("-" * width for width in widths))
    text.append("")
    for r in results:
        where = r.row.interpreter or "no interpreter found"
        text.append(f"{r.row.name} ({where}): {r.versions or r.row.deps}")
    return "\n".join(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("rows", nargs="*", help=f"rows to run: {' '.join([*SUPPORTED, OLDEST])}")
    parser.add_argument("--list", action="store_true", help="list the rows and exit")
    options = parser.parse_args(argv)
    selected = rows(options.rows)
    if options.list:
        for row in selected:
            print(f"{row.name}: {row.interpreter or 'not found'} ({row.deps})")
        return 0
    MATRIX_DIR.mkdir(parents=True, exist_ok=True)
    url = server_url()
    log(f"server: {url}")
    started = time.monotonic()
    results = [run_row(row, url, os.environ.get("PYTEST_ARGS", "")) for row in selected]
    print(table(results, url))
    print(f"time: {time.monotonic() - started:.0f} s")
    counts = (sum(r.passed for r in results), sum(r.failed for r in results))
    print(
        f"matrix: {counts[0]} passed, {counts[1]} failed, {sum(r.skipped for r in results)} skipped"
    )
    return 1 if any(r.status in ("FAILED", "install failed") for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
