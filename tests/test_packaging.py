"""The release files, as a user gets them: ``python -m build`` makes an sdist and a wheel from
this checkout, ``twine check`` passes them, the sdist holds only the library and its metadata,
and the wheel installs into a fresh venv and imports from there with its version.

The build installs setuptools into an isolated environment (from PyPI or pip's cache). The
fresh venv gets the wheel with ``--no-deps``; its dependencies are this venv's, put on its path
by a ``.pth`` file, so the test downloads no dependency.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

import tornado_mongo_session

ROOT = Path(__file__).resolve().parent.parent
NAME = "tornado_mongo_session"


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sdist and the wheel, built from this checkout as it is (its caches included)."""
    out = tmp_path_factory.mktemp("dist")
    egg_info = ROOT / f"{NAME}.egg-info"
    had_egg_info = egg_info.exists()
    try:
        built = subprocess.run(
            [sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    finally:
        if not had_egg_info:  # the sdist step leaves it in the checkout
            shutil.rmtree(egg_info, ignore_errors=True)
    assert built.returncode == 0, built.stdout + built.stderr
    return out


def only(folder: Path, pattern: str) -> Path:
    [found] = folder.glob(pattern)
    return found


def test_twine_check_passes(dist: Path) -> None:
    checked = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", *map(str, dist.iterdir())],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count("PASSED") == 2


def test_sdist_holds_the_library_and_its_metadata_only(dist: Path) -> None:
    sdist = only(dist, f"{NAME}-{tornado_mongo_session.__version__}.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    modules = {
        str(path.relative_to(ROOT))
        for path in (ROOT / NAME).rglob("*")
        if path.suffix in (".py", ".typed")
    }
    assert modules <= names  # every module of the library, and py.typed
    metadata = {
        "PKG-INFO",
        "README.md",
        "LICENSE",
        "CHANGELOG.md",
        "MANIFEST.in",
        "pyproject.toml",
        "setup.cfg",
    }
    assert metadata <= names
    packages = {  # their folders are entries of the archive too
        str(path.relative_to(ROOT))
        for path in (ROOT / NAME, *(ROOT / NAME).rglob("*"))
        if (path / "__init__.py").is_file()
    }
    extra = {
        name
        for name in names - modules - metadata - packages
        if not name.startswith(f"{NAME}.egg-info")
    }
    assert extra == set()  # no tests, caches, venvs, benchmarks or binaries


def test_wheel_installs_into_a_fresh_venv_and_imports(dist: Path, tmp_path: Path) -> None:
    wheel = only(dist, f"{NAME}-{tornado_mongo_session.__version__}-py3-none-any.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert f"{NAME}/py.typed" in names
    assert f"{NAME}-{tornado_mongo_session.__version__}.dist-info/licenses/LICENSE" in names
    assert all(name.startswith(f"{NAME}") for name in names), sorted(names)

    target = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(target)
    python = target / "bin" / "python"
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    # The dependencies (tornado, pymongo, pydantic-settings) from this venv; the package itself
    # only from the fresh one: this venv's editable install is a .pth that a path added this
    # way does not run.
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(site) / "dev-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    probe = (
        "import importlib.metadata as m, pathlib, tornado_mongo_session as t;"
        "from tornado_mongo_session.compat import asyncmongosession;"
        "print(t.__version__, m.version('tornado-mongo-session'),"
        " m.metadata('tornado-mongo-session')['License-Expression'],"
        " pathlib.Path(t.__file__).parent.parent)"
    )
    imported = subprocess.run(
        [str(python), "-c", probe],
        cwd=tmp_path,  # not the checkout, whose package would shadow the installed one
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert imported.returncode == 0, imported.stderr
    version, dist_version, license_expression, location = imported.stdout.split()
    assert version == dist_version == tornado_mongo_session.__version__
    assert license_expression == "Apache-2.0"
    assert Path(location) == Path(site)
    # The wheel's console script (its [project.scripts] entry point) runs the command line.
    script = subprocess.run(
        [str(target / "bin" / "tornado-session"), "--version"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert script.returncode == 0, script.stderr
    assert script.stdout.split()[-1] == tornado_mongo_session.__version__
