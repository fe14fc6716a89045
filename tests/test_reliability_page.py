"""docs/reliability.md's generator: a recording test that fails shows on the page even when it
crashed before it recorded its scenario (tests/conftest.py's report hook)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import reliability_report

TESTS = Path(__file__).resolve().parent

CRASHING = '''
from reliability_report import PASS, record


def test_crashes_before_recording():
    """Stop the server mid-request (a scenario that crashes first)."""
    raise RuntimeError("boom before record")


def test_records_then_passes():
    record("fine", group="4", done="nothing", measured={"n": 1}, verdict=PASS)
'''

UNRELATED = """
def test_fails_without_recording_anything():
    raise AssertionError("not a reliability test")
"""


def test_a_recording_test_that_crashes_is_a_failed_row(tmp_path: Path) -> None:
    (tmp_path / "test_recording.py").write_text(CRASHING, encoding="utf-8")
    (tmp_path / "test_plain.py").write_text(UNRELATED, encoding="utf-8")
    results = tmp_path / "results.jsonl"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(TESTS), str(reliability_report.REPO_ROOT / "scripts")]),
        "TORNADO_SESSION_RELIABILITY_RESULTS": str(results),
    }
    done = subprocess.run(  # our conftest as a plugin, on tests outside tests/
        [sys.executable, "-m", "pytest", "-q", "-p", "conftest", "-p", "no:cacheprovider", "."],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "2 failed, 1 passed" in done.stdout
    rows = [json.loads(line) for line in results.read_text(encoding="utf-8").splitlines()]
    assert [(r["scenario"], r["group"], r["verdict"]) for r in rows] == [
        ("test_recording.py::test_crashes_before_recording (call)", "6", "fail"),
        ("fine", "4", "pass"),
    ]
    assert rows[0]["done"] == "Stop the server mid-request (a scenario that crashes first)."
    assert rows[0]["measured"] == {"error": "RuntimeError: boom before record"}

    page = reliability_report.render(
        reliability_report.read_results(results), environment={"generated": "now"}
    )
    assert "2 scenarios: 1 pass, 1 fail." in page
    assert "## 6. Tests that failed" in page
    assert "| error: RuntimeError: boom before record | **FAIL** |" in page
