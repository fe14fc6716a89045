"""Process and machine figures for bench/scale.py, read from /proc (Linux only).

CPU time is ``utime + stime`` of ``/proc/<pid>/stat``; a process tree (PostgreSQL: the
postmaster and its backends) adds every live descendant and the root's ``cutime + cstime``
(children it has reaped). Bytes a process sent to and received from the database come from
``ss`` (the kernel's per-connection counters): /proc/<pid>/io does not count socket traffic.
"""

from __future__ import annotations

import os
import resource
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: split after the last ")".
    return raw[raw.rindex(")") + 2 :].split()


def cpu_seconds(pid: int, *, reaped_children: bool = False) -> float:
    """CPU seconds used by ``pid`` so far (0 if it is gone)."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0.0
    # fields[0] is field 3 (state): utime is field 14, stime 15, cutime 16, cstime 17.
    ticks = int(fields[11]) + int(fields[12])
    if reaped_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / CLOCK_TICKS


def descendants(pid: int) -> list[int]:
    """Every live descendant of ``pid``, from a scan of /proc."""
    parent_of: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None:
                parent_of[int(entry.name)] = int(fields[1])
    found: list[int] = []
    frontier = [pid]
    while frontier:
        current = frontier.pop()
        children = [child for child, parent in parent_of.items() if parent == current]
        found += children
        frontier += children
    return found


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of ``pid``, its live descendants and the children it has reaped."""
    return cpu_seconds(pid, reaped_children=True) + sum(cpu_seconds(c) for c in descendants(pid))


def db_bytes(db_port: int, pids: list[int]) -> tuple[int, int]:
    """``(sent, received)`` bytes on the TCP connections ``pids`` hold to ``db_port``.

    From ``ss -tinp`` (the kernel's tcp_info: ``bytes_acked``, ``bytes_received``): what the
    processes sent to and received from the database, whatever their language or driver.
    Connections a pool opened later count from zero; ones it closed are lost (a pool keeps its
    connections open during a run).
    """
    try:
        done = subprocess.run(
            ["ss", "-tinpH", "state", "established", f"( dport = :{db_port} )"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return 0, 0
    wanted = {f"pid={pid}," for pid in pids}
    sent = received = 0
    owner = False
    for line in done.stdout.splitlines():
        if not line.startswith(("\t", " ")):  # a connection line; its tcp_info line follows
            owner = any(tag in line for tag in wanted)
            continue
        if owner:
            fields = dict(item.split(":", 1) for item in line.split() if item.startswith("bytes_"))
            sent += int(fields.get("bytes_acked", "1")) - 1  # the SYN counts as one
            received += int(fields.get("bytes_received", "0"))
    return sent, received


def machine_ticks() -> tuple[int, int]:
    """``(busy, total)`` CPU ticks of the whole machine, all cores (/proc/stat)."""
    busy, _iowait, total = _cpu_line()
    return busy, total


def _cpu_line() -> tuple[int, int, int]:
    """``(busy, iowait, total)`` ticks of the first line of /proc/stat."""
    parts = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in parts[:8]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, values[4], sum(values)


def _reaped_children_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def background_cpu(seconds: float = 2.0) -> float:
    """The machine's CPU use over ``seconds`` while the caller runs nothing (% of one core):
    what the other jobs of a shared machine take."""
    busy, total = machine_ticks()
    time.sleep(seconds)
    busy2, total2 = machine_ticks()
    return round((busy2 - busy) / max(total2 - total, 1) * 100 * (os.cpu_count() or 1), 1)


def load_average() -> tuple[float, float, float]:
    one, five, fifteen = Path("/proc/loadavg").read_text().split()[:3]
    return float(one), float(five), float(fifteen)


@dataclass
class CpuWindow:
    """CPU used by named process groups between :meth:`start` and :meth:`stop`.

    ``groups`` maps a name to ``(pids, tree)``: tree=True also counts descendants. The result
    is in percent of one core (200 = both cores of this machine), plus ``machine`` (everything
    running, other users' jobs included, in percent of one core), ``wrk`` (the children of this
    process that ended during the window: the wrk run), ``iowait`` (idle time with disk I/O
    outstanding, machine-wide) and ``cores``.
    """

    groups: dict[str, tuple[list[int], bool]]
    _start: dict[str, float] = field(default_factory=dict)
    _machine: tuple[int, int, int] = (0, 0, 0)
    _wall: float = 0.0
    _children: float = 0.0

    def _sample(self) -> dict[str, float]:
        out = {}
        for name, (pids, tree) in self.groups.items():
            read = tree_cpu_seconds if tree else cpu_seconds
            out[name] = sum(read(pid) for pid in pids)
        return out

    def start(self) -> None:
        self._children = _reaped_children_s()
        self._start = self._sample()
        self._machine = _cpu_line()
        self._wall = time.monotonic()

    def stop(self) -> dict[str, float]:
        end = self._sample()
        busy, iowait, total = _cpu_line()
        wall = max(time.monotonic() - self._wall, 1e-9)
        cores = os.cpu_count() or 1
        out = {name: round((end[name] - self._start[name]) / wall * 100, 1) for name in end}
        ticks = max(total - self._machine[2], 1)
        out["machine"] = round((busy - self._machine[0]) / ticks * 100 * cores, 1)
        # Time a core sat idle with a disk write or read outstanding (PostgreSQL's WAL flushes).
        out["iowait"] = round((iowait - self._machine[1]) / ticks * 100 * cores, 1)
        # The children this process waited for meanwhile: the load generator (wrk).
        out["wrk"] = round((_reaped_children_s() - self._children) / wall * 100, 1)
        out["cores"] = cores
        return out
