"""Build FerretDB from its Go module into ``<repo>/.cache/bin`` (v2.5.0, and v1.24.2 the fallback).

``go install <module>/cmd/ferretdb@<version>`` alone gives a binary that panics at start: the
module lacks ``build/version/version.txt``, which FerretDB's release tooling generates. So:
fetch the module with ``go mod download`` (into the module cache, from the Go module proxy),
copy it, write that file, and ``go build ./cmd/ferretdb``. v2.5.0's ``cmd/ferretdb`` also calls
``setGOMAXPROCS``, defined only for Go < 1.25: Go >= 1.25 gets a no-op (its runtime is
container-aware by itself).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from server_procs import MissingPrerequisite, ServerError, file_lock, log, run

BUILD_TIMEOUT = 900.0


@dataclass(frozen=True)
class FerretDBRelease:
    module: str
    version: str
    backend: str  # what it keeps data in, for messages

    def binary(self, bin_dir: Path) -> Path:
        return bin_dir / f"ferretdb-{self.version}"


FERRETDB_V2 = FerretDBRelease("github.com/FerretDB/FerretDB/v2", "v2.5.0", "PostgreSQL+DocumentDB")
FERRETDB_V1 = FerretDBRelease("github.com/FerretDB/FerretDB", "v1.24.2", "SQLite")

_GO125_GOMAXPROCS = """//go:build go1.25

package main

import "log/slog"

// setGOMAXPROCS: a no-op for Go >= 1.25 (written by tornado_mongo_session's build).
func setGOMAXPROCS(logger *slog.Logger) {}
"""


def find_go() -> str | None:
    found = shutil.which("go")
    if found:
        return found
    default = Path("/usr/local/go/bin/go")
    return str(default) if default.is_file() and os.access(default, os.X_OK) else None


def ferretdb_version(binary: Path) -> str | None:
    """The version that ``binary`` reports (``--version``), or None."""
    if not binary.is_file():
        return None
    try:
        out = run([str(binary), "--version"], "ferretdb --version", timeout=20)
    except ServerError:
        return None
    for line in out.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "version":
            return value.strip()
    return None


def _make_writable(tree: Path) -> None:
    """The module cache is read-only; the copy must take the files we add."""
    for root, dirs, files in os.walk(tree):
        for name in dirs + files:
            path = Path(root, name)
            path.chmod(path.stat().st_mode | stat.S_IWUSR)
    tree.chmod(tree.stat().st_mode | stat.S_IWUSR)


def build_ferretdb(release: FerretDBRelease, bin_dir: Path) -> Path:
    """The binary of ``release`` in ``bin_dir``, built first if missing or of another version.

    Raises MissingPrerequisite without Go, ServerError when the download or build fails.
    """
    binary = release.binary(bin_dir)
    with file_lock(bin_dir / ".ferretdb-build.lock"):
        if ferretdb_version(binary) == release.version:
            return binary
        go = find_go()
        if go is None:
            raise MissingPrerequisite("no Go toolchain (`go` on PATH or /usr/local/go/bin/go)")
        env = dict(os.environ)
        env.setdefault("GOTOOLCHAIN", "local")  # never fetch a toolchain behind our back
        started = time.monotonic()
        log(f"building FerretDB {release.version} into {binary} (first time only)...")
        with tempfile.TemporaryDirectory(prefix="tms-ferretdb-build-") as tmp:
            out = run(
                [go, "mod", "download", "-json", f"{release.module}@{release.version}"],
                f"go mod download {release.module}@{release.version}",
                timeout=BUILD_TIMEOUT,
                cwd=tmp,
                env=env,
            )
            try:
                module_dir = Path(json.loads(out[: out.rindex("}") + 1])["Dir"])
            except (ValueError, KeyError) as exc:
                raise ServerError(f"go mod download said no module directory:\n{out}") from exc
            src = Path(tmp) / "src"
            shutil.copytree(module_dir, src)
            _make_writable(src)
            (src / "build" / "version" / "version.txt").write_text(release.version + "\n")
            gomaxprocs = src / "cmd" / "ferretdb" / "gomaxprocs.go"
            if gomaxprocs.is_file() and "//go:build !go1.25" in gomaxprocs.read_text():
                gomaxprocs.with_name("gomaxprocs_go125.go").write_text(_GO125_GOMAXPROCS)
            bin_dir.mkdir(parents=True, exist_ok=True)
            partial = bin_dir / f"{binary.name}.partial"
            run(
                [go, "build", "-trimpath", "-buildvcs=false", "-o", str(partial), "./cmd/ferretdb"],
                f"go build of FerretDB {release.version}",
                timeout=BUILD_TIMEOUT,
                cwd=src,
                env=env,
            )
            os.replace(partial, binary)
        version = ferretdb_version(binary)
        if version != release.version:
            raise ServerError(f"built FerretDB reports version {version!r}, not {release.version}")
        log(f"FerretDB {release.version} built in {time.monotonic() - started:.0f}s")
        return binary
