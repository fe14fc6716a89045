"""PostgreSQL 15 with DocumentDB, as FerretDB v2.5.0 needs it: Debian's packages and three builds.

Debian 12 serves PostgreSQL 15 and most of what DocumentDB needs (installed with apt-get). Three
sources no registry here serves come from the vendored folder (``TORNADO_SESSION_TEST_VENDOR_DIR``,
default ``../shared/vendor`` relative to the repository; the Makefile's ``VENDOR_DIR``), checked
against both its ``SHA256SUMS`` and the hashes pinned below before use:

- pg_cron 1.6.3 (Debian's 1.4.2 rejects DocumentDB's "2 seconds" schedules; removed if present),
- pgvector 0.8.0 (Debian 12 has no PostgreSQL 15 package of it),
- DocumentDB 0.106.0-ferretdb-2.5.0 (the version FerretDB v2.5.0 requires).

Each is built with PGXS and installed into ``/usr/lib/postgresql/15`` (root) only when what is
installed there is missing or of another version (read from the control files). Build facts
that each cost time to find are kept next to where they apply. ``python scripts/pg_extensions.py
--destdir DIR --force`` builds all three into a scratch tree and leaves the system alone.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from server_procs import MissingPrerequisite, ServerError, file_lock, log, phase, run

PG_MAJOR = "15"
PG_BIN = Path(f"/usr/lib/postgresql/{PG_MAJOR}/bin")
PG_CONFIG = PG_BIN / "pg_config"
VENDOR_ENV = "TORNADO_SESSION_TEST_VENDOR_DIR"
DEFAULT_VENDOR_DIR = "../shared/vendor"
# apt-get and installs into /usr/lib/postgresql are machine-wide: one at a time, whichever
# checkout asks.
SYSTEM_LOCK = Path(tempfile.gettempdir()) / "tornado-mongo-session-pg-extensions.lock"
BUILD_TIMEOUT = 900.0

APT_PACKAGES = (
    f"postgresql-{PG_MAJOR}",
    f"postgresql-server-dev-{PG_MAJOR}",
    f"postgresql-{PG_MAJOR}-postgis-3",
    f"postgresql-{PG_MAJOR}-rum",
    "libbson-dev",
    "libintelrdfpmath-dev",
    "libpcre2-dev",
    "pkg-config",
    "build-essential",
    "libkrb5-dev",
    "libicu-dev",
    "ca-certificates",
)


@dataclass(frozen=True)
class Extension:
    """One vendored PostgreSQL extension: where its source is, how to tell it is installed."""

    name: str
    tarball: str
    sha256: str
    controls: tuple[tuple[str, str], ...]  # (control file, default_version it must declare)
    libraries: tuple[str, ...]  # shared objects in pg_config --pkglibdir
    subdirs: tuple[str, ...] = (".",)
    make_args: tuple[str, ...] = ()
    debian_package: str | None = None  # Debian's older build of it, removed before ours


PG_CRON = Extension(
    name="pg_cron 1.6.3",
    tarball="pg_cron-1.6.3.tar.gz",
    sha256="3580f4034021e62e459f9f7ab1f625774bfc534a9256844545da85d6f99c2f5b",
    controls=(("pg_cron", "1.6"),),
    libraries=("pg_cron.so",),
    debian_package=f"postgresql-{PG_MAJOR}-cron",
)
PGVECTOR = Extension(
    name="pgvector 0.8.0",
    tarball="pgvector-0.8.0.tar.gz",
    sha256="93df40ccdaaaa267d1275c1e6e773004a0e5ff8e14227934a4ec7e8205d0f608",
    controls=(("vector", "0.8.0"),),
    libraries=("vector.so",),
    # No -march=native: the .so must run on any x86-64 machine of this kind.
    make_args=("OPTFLAGS=",),
)
DOCUMENTDB = Extension(
    name="DocumentDB 0.106.0-ferretdb-2.5.0",
    tarball="documentdb-0.106.0-ferretdb-2.5.0.tar.gz",
    sha256="3ba0408eee7c3bc67933da50034092ee77e2aa79b61234c1216b0a1ffac21df1",
    controls=(("documentdb_core", "0.106-0"), ("documentdb", "0.106-0")),
    libraries=("pg_documentdb_core.so", "pg_documentdb.so"),
    subdirs=("pg_documentdb_core", "pg_documentdb"),
)
EXTENSIONS = (PG_CRON, PGVECTOR, DOCUMENTDB)

# DocumentDB finds the Intel decimal library by pkg-config name "intelmathlib", which Debian
# lacks. Debian's libbidgcc000.a is built CALL_BY_REF=0 GLOBAL_RND=0 GLOBAL_FLAGS=0, the
# configuration DocumentDB's own install script builds. Only the build reads this file, so it
# goes into the build directory (PKG_CONFIG_PATH), not into the system.
_INTELMATHLIB_PC = """prefix=/usr
libdir={libdir}
includedir=/usr/include

Name: intelmathlib
Description: Intel Decimal Floating point math library (Debian libintelrdfpmath-dev)
Version: 2.0 Update 2
Cflags: -I${{includedir}}
Libs: -L${{libdir}} -lbidgcc000
"""


def vendor_dir(repo_root: Path) -> Path:
    """The vendored sources' folder: ``$TORNADO_SESSION_TEST_VENDOR_DIR`` (relative paths are
    relative to the repository), default ``../shared/vendor``."""
    raw = Path(os.environ.get(VENDOR_ENV, "").strip() or DEFAULT_VENDOR_DIR)
    return raw if raw.is_absolute() else (repo_root / raw).resolve()


# -- apt ---------------------------------------------------------------------------------------


def missing_packages(packages: tuple[str, ...] = APT_PACKAGES) -> list[str]:
    """The Debian packages among ``packages`` that are not installed."""
    if shutil.which("dpkg-query") is None:
        raise MissingPrerequisite("not a Debian system (no dpkg-query): PostgreSQL 15 from apt")
    # Exit 1 when some package is unknown to dpkg: the others' lines are still on stdout.
    out = subprocess.run(
        ["dpkg-query", "-W", "-f=${Package} ${Status}\\n", *packages],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    ).stdout
    installed = {
        line.split()[0] for line in out.splitlines() if line.endswith("install ok installed")
    }
    return [p for p in packages if p not in installed]


def _apt_env() -> dict[str, str]:
    return {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}


def ensure_apt_packages() -> None:
    """Install the missing Debian packages (apt-get, as root); MissingPrerequisite if it can't."""
    missing = missing_packages()
    if not missing:
        log("apt: all packages present")
        return
    if os.geteuid() != 0:
        raise MissingPrerequisite(f"not root: cannot apt-get install {' '.join(missing)}")
    if shutil.which("apt-get") is None:
        raise MissingPrerequisite(f"no apt-get to install {' '.join(missing)}")
    log(f"apt: installing {' '.join(missing)}")
    try:
        run(["apt-get", "update", "-qq"], "apt-get update", timeout=600, env=_apt_env())
        run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing],
            "apt-get install",
            timeout=1200,
            env=_apt_env(),
        )
    except ServerError as exc:
        raise MissingPrerequisite(str(exc)) from exc
    still = missing_packages()
    if still:
        raise MissingPrerequisite(f"apt-get did not install {' '.join(still)}")


# -- detecting and building the extensions ------------------------------------------------------


def _pg_dir(which: str) -> Path:
    return Path(run([str(PG_CONFIG), f"--{which}"], "pg_config", timeout=30).strip())


def _declared_version(control: Path) -> str | None:
    try:
        text = control.read_text()
    except OSError:
        return None
    found = re.search(r"^\s*default_version\s*=\s*'([^']*)'", text, re.MULTILINE)
    return found.group(1) if found else None


def installed(ext: Extension, destdir: Path | None = None) -> bool:
    """Whether ``ext`` is installed (under ``destdir`` if given): its shared objects exist and
    its control files declare the version we build."""
    root = Path("/") if destdir is None else destdir
    libdir = root / _pg_dir("pkglibdir").relative_to("/")
    extdir = root / _pg_dir("sharedir").relative_to("/") / "extension"
    return all((libdir / lib).is_file() for lib in ext.libraries) and all(
        _declared_version(extdir / f"{name}.control") == version for name, version in ext.controls
    )


def verified_tarball(ext: Extension, vendor: Path) -> Path:
    """The vendored tarball of ``ext``, once its SHA-256 matches SHA256SUMS and the pinned hash."""
    tarball = vendor / ext.tarball
    sums = vendor / "SHA256SUMS"
    if not tarball.is_file() or not sums.is_file():
        raise MissingPrerequisite(
            f"no vendored sources: {tarball} or {sums} is missing (VENDOR_DIR / ${VENDOR_ENV})"
        )
    listed = {
        parts[-1].lstrip("*"): parts[0]
        for parts in (line.split() for line in sums.read_text().splitlines())
        if len(parts) >= 2
    }
    digest = hashlib.sha256(tarball.read_bytes()).hexdigest()
    if not (digest == ext.sha256 == listed.get(ext.tarball)):
        raise MissingPrerequisite(
            f"checksum mismatch for {tarball}: sha256 {digest}, SHA256SUMS says "
            f"{listed.get(ext.tarball)}, expected {ext.sha256}"
        )
    return tarball


def _libbson_lacks_subtype_sensitive() -> bool:
    header = Path("/usr/include/libbson-1.0/bson/bson-types.h")
    try:
        return "BSON_SUBTYPE_SENSITIVE" not in header.read_text()
    except OSError:
        return False


def _make(src: Path, args: list[str], env: dict[str, str], what: str) -> None:
    try:
        run(["make", "-s", "-C", str(src), *args], what, timeout=BUILD_TIMEOUT, env=env)
    except ServerError as exc:
        raise MissingPrerequisite(f"build failure: {exc}") from exc


def build_and_install(
    ext: Extension, tarball: Path, build_root: Path, destdir: Path | None
) -> None:
    """Build ``ext`` from ``tarball`` in ``build_root`` and install it (into ``destdir``)."""
    src = build_root / ext.tarball.removesuffix(".tar.gz")
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir(parents=True)
    run(["tar", "-xzf", str(tarball), "-C", str(src), "--strip-components=1"], "tar", timeout=300)
    env = dict(os.environ)
    args = [f"PG_CONFIG={PG_CONFIG}", "with_llvm=no", *ext.make_args]
    if ext is DOCUMENTDB:
        if not _pkg_config_knows("intelmathlib", env):
            libs = sorted(Path("/usr/lib").glob("*/libbidgcc000.a"))
            if not libs:
                raise MissingPrerequisite("libbidgcc000.a (libintelrdfpmath-dev) not found")
            pc_dir = build_root / "pkgconfig"
            pc_dir.mkdir(exist_ok=True)
            (pc_dir / "intelmathlib.pc").write_text(_INTELMATHLIB_PC.format(libdir=libs[0].parent))
            env["PKG_CONFIG_PATH"] = os.pathsep.join(
                p for p in (str(pc_dir), env.get("PKG_CONFIG_PATH", "")) if p
            )
        # Debian 12's libbson 1.23 lacks BSON_SUBTYPE_SENSITIVE (0x08, libbson >= 1.24);
        # DocumentDB (which pins libbson 1.28) only names it in a switch and a range check.
        if _libbson_lacks_subtype_sensitive():
            args.append("COPT=-DBSON_SUBTYPE_SENSITIVE=0x08 -Wno-error=switch")
    install_args = [*args, f"DESTDIR={destdir}"] if destdir is not None else args
    jobs = f"-j{os.cpu_count() or 1}"
    for sub in ext.subdirs:
        _make(src / sub, [jobs, *args], env, f"build of {ext.name} ({sub})")
        _make(src / sub, ["install", *install_args], env, f"install of {ext.name} ({sub})")


def _pkg_config_knows(name: str, env: dict[str, str]) -> bool:
    try:
        run(["pkg-config", "--exists", name], "pkg-config", timeout=30, env=env)
    except ServerError:
        return False
    return True


def ensure_extension(
    ext: Extension, vendor: Path, build_root: Path, destdir: Path | None = None, force: bool = False
) -> None:
    """Build and install ``ext`` unless it is installed already (``force``: build anyway, only
    with ``destdir``: the system's copy may be loaded by a running PostgreSQL)."""
    if not force and installed(ext, destdir):
        log(f"{ext.name}: already installed")
        return
    if destdir is None and os.geteuid() != 0:
        raise MissingPrerequisite(f"not root: cannot install {ext.name} into {PG_BIN.parent}")
    tarball = verified_tarball(ext, vendor)
    if destdir is None and ext.debian_package and not missing_packages((ext.debian_package,)):
        log(f"removing Debian's {ext.debian_package} (too old; its files clash with ours)")
        try:
            run(
                ["apt-get", "remove", "-y", "-qq", ext.debian_package],
                "apt-get remove",
                timeout=600,
                env=_apt_env(),
            )
        except ServerError as exc:
            raise MissingPrerequisite(str(exc)) from exc
    log(f"building {ext.name} from {tarball}")
    build_and_install(ext, tarball, build_root, destdir)
    if not installed(ext, destdir):
        raise MissingPrerequisite(f"build failure: {ext.name} is not installed after its build")


def ensure_installed(
    *,
    vendor: Path,
    build_root: Path,
    timings: Path | None,
    destdir: Path | None = None,
    force: bool = False,
) -> None:
    """Everything FerretDB v2.5.0 needs of PostgreSQL, installed; MissingPrerequisite naming
    what is missing and why it can't be had."""
    with file_lock(SYSTEM_LOCK):
        with phase("apt", timings):
            ensure_apt_packages()
        for ext in EXTENSIONS:
            with phase(f"{ext.name.split()[0]}-build", timings):
                ensure_extension(ext, vendor, build_root, destdir, force)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--destdir", type=Path, help="install into this scratch tree instead")
    parser.add_argument("--force", action="store_true", help="build even if installed (--destdir)")
    parser.add_argument("--build-root", type=Path, help="where to unpack and build")
    args = parser.parse_args(argv)
    if args.force and args.destdir is None:
        parser.error("--force needs --destdir: never rebuild into a PostgreSQL that may be running")
    repo = Path(__file__).resolve().parent.parent
    build_root = args.build_root or repo / ".cache" / "ferretdb2" / "build"
    try:
        ensure_installed(
            vendor=vendor_dir(repo),
            build_root=build_root,
            timings=None,
            destdir=args.destdir.resolve() if args.destdir else None,
            force=args.force,
        )
    except ServerError as exc:
        log(f"error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
