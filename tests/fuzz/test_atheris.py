"""Run the atheris harness (fuzz_cookies.py) for a fixed number of runs per target.

Part of ``make test-stress``. Each target runs in its own process (libFuzzer owns the process),
bounded by ``-runs`` and ``-max_total_time``; a crash or a broken invariant exits non-zero and
the test fails with the input atheris printed.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
import zlib
from datetime import datetime, timezone
from pathlib import Path

import bson
import pytest
from reliability_report import FAIL, PASS, record

pytest.importorskip(
    "atheris",
    reason=(
        "atheris is not installed: the dev extra installs it on Linux x86_64 only, the one "
        "platform with binary wheels"
    ),
)

pytestmark = [pytest.mark.stress, pytest.mark.timeout(300)]

HARNESS = Path(__file__).with_name("fuzz_cookies.py")
RUNS = {"parse_cookie": 300_000, "cookie_store": 100_000, "cookie_store_signed": 100_000}
MAX_SECONDS = 75


def seeds(target: str) -> list[bytes]:
    """Starting inputs that reach past the first checks."""
    if target == "parse_cookie":
        return [b"\x01" + b"A" * 24 + b"." + b"B" * 43, b"\x00abc"]
    if target == "cookie_store":
        return [b"\x01c2.0.AAAA." + b"A" * 43]
    moment = datetime(2031, 1, 1, tzinfo=timezone.utc)
    payload = bson.encode({"i": "x" * 24, "d": {"a": 1}, "c": moment, "a": moment})
    full = bson.encode(
        {
            "i": "x" * 24,
            "d": {"a": [1, {"b": "c"}]},
            "c": moment,
            "a": moment,
            "r": moment,
            "e": moment,
        }
    )
    return [b"\x00" + payload, b"\x00" + full, b"\x01" + zlib.compress(full), b"\x02" + b"n" * 40]


@pytest.mark.parametrize("target", list(RUNS))
def test_atheris_target(target: str, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for number, seed in enumerate(seeds(target)):
        (corpus / f"seed{number}").write_bytes(seed)
    started = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            str(HARNESS),
            target,
            f"-runs={RUNS[target]}",
            f"-max_total_time={MAX_SECONDS}",
            "-seed=1",
            "-rss_limit_mb=2048",
            "-print_final_stats=1",
            str(corpus),
        ],
        capture_output=True,
        text=True,
        timeout=MAX_SECONDS + 60,
        check=False,
        cwd=tmp_path,
    )
    elapsed = time.monotonic() - started
    output = done.stdout + done.stderr
    runs = re.search(r"stat::number_of_executed_units:\s*(\d+)", output)
    coverage = re.findall(r"cov: (\d+)", output)
    executed = int(runs.group(1)) if runs else 0
    record(
        f"atheris: {target}",
        group="3",
        done=f"coverage-guided fuzzing, at most {RUNS[target]} runs or {MAX_SECONDS} s",
        measured={
            "runs": executed,
            "edges covered": int(coverage[-1]) if coverage else 0,
            "seconds": elapsed,
            "exit code": done.returncode,
        },
        verdict=PASS if done.returncode == 0 else FAIL,
    )
    assert done.returncode == 0, output[-4000:]
    assert executed > 0, output[-2000:]
