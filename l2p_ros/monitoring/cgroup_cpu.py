"""CPU load of this process's cgroup against its CPU limit (ROS-free).

On a board that shares a few cores between the camera, the monitors and the network, and in a
container (or the testbed's edge) held to a CFS quota, the host-wide CPU percentage says little:
with a quota of 0.3 cores on a 2-core host, a saturated edge reads 15%. This reads the group's own
usage over the time since the previous read, as a share of its quota. Without a quota (or without
a readable cgroup) it is unavailable and callers use the host-wide figure.

cgroup v1: the quota is in the ``cpu`` hierarchy (``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``),
the usage in ``cpuacct`` (``cpuacct.usage``, ns), which may be mounted apart. cgroup v2: ``cpu.max``
and ``cpu.stat`` ``usage_usec`` in one group.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class CgroupCpuFiles:
    quota_cores: float
    usage_file: Path
    usage_unit_s: float  # seconds per unit of the usage counter
    usage_key: str | None = None  # v2: the line of cpu.stat holding the usage

    @property
    def procs_file(self) -> Path:
        """The group's processes (the group the usage is counted in)."""
        return self.usage_file.with_name("cgroup.procs")


def _groups(proc_cgroup: str) -> dict[str, str]:
    """controller -> path from /proc/<pid>/cgroup text ("" for the v2 unified hierarchy)."""
    groups = {}
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for controller in parts[1].split(",") if parts[1] else [""]:
                groups[controller] = parts[2]
    return groups


def find_limit(proc_cgroup: str, root: Path = CGROUP_ROOT) -> CgroupCpuFiles | None:
    """The files of the CPU limit ``proc_cgroup`` (a /proc/<pid>/cgroup text) puts a process under,
    or None when it has no quota or its files cannot be read."""
    groups = _groups(proc_cgroup)
    try:
        if "cpu" in groups:  # v1
            cpu_dir = root / "cpu" / groups["cpu"].lstrip("/")
            quota_us = int((cpu_dir / "cpu.cfs_quota_us").read_text())
            period_us = int((cpu_dir / "cpu.cfs_period_us").read_text())
            acct = groups.get("cpuacct", groups["cpu"])
            usage = next((d / acct.lstrip("/") / "cpuacct.usage" for d in (root / "cpuacct", root / "cpu,cpuacct",
                                                                             root / "cpu") if
                          (d / acct.lstrip("/") / "cpuacct.usage").is_file()), None)
            if quota_us <= 0 or usage is None:
                return None
            return CgroupCpuFiles(quota_us / period_us, usage, 1e-9)
        if "" in groups:  # v2
            group_dir = root / groups[""].lstrip("/")
            quota, period = (group_dir / "cpu.max").read_text().split()
            if quota == "max":
                return None
            return CgroupCpuFiles(int(quota) / int(period), group_dir / "cpu.stat", 1e-6, "usage_usec")
    except (OSError, ValueError):
        return None
    return None


def stat_value(path: Path, key: str) -> int:
    """The value of line ``key`` in a cgroup ``key value`` file (``cpu.stat``); ValueError without it."""
    for line in path.read_text().splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return int(value)
    raise ValueError(f"{key} not in {path}")


def _process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (/proc/<pid>/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class CgroupCpuLoad:
    """Usage of a cgroup's CPU quota since the previous read, 0..100 (can pass 100 briefly: the
    quota is enforced per period, the reads are not aligned with periods).

    ``excluded``: a process whose own CPU time does not count (the node running the network: the
    load a partitioning policy needs is the share *other* work takes, by which the network's own
    time stretches; counting the network's own work would read a busy edge as a loaded one). Any
    process of the group whose command line holds one of these strings is excluded."""

    def __init__(self, files: CgroupCpuFiles, excluded: tuple[str, ...] = ()):
        self.files = files
        self.excluded = excluded
        self._previous: tuple[float, float] | None = None

    @classmethod
    def of_this_process(cls, excluded: tuple[str, ...] = ()) -> "CgroupCpuLoad | None":
        try:
            files = find_limit(Path("/proc/self/cgroup").read_text())
        except OSError:
            return None
        return cls(files, excluded) if files is not None else None

    def _excluded_s(self) -> float:
        total = 0.0
        for pid in self.files.procs_file.read_text().split():
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                if any(name in command for name in self.excluded):
                    total += _process_cpu_s(int(pid))
            except (OSError, ValueError, IndexError):  # exited meanwhile
                continue
        return total

    def _usage_s(self) -> float:
        excluded_s = self._excluded_s() if self.excluded else 0.0
        return self._group_usage_s() - excluded_s

    def _group_usage_s(self) -> float:
        if self.files.usage_key is None:
            return int(self.files.usage_file.read_text()) * self.files.usage_unit_s
        return stat_value(self.files.usage_file, self.files.usage_key) * self.files.usage_unit_s

    def percent(self, now_s: float) -> float:
        """Share of the quota used since the previous call (``now_s`` monotonic); NaN on the first."""
        usage_s = self._usage_s()
        previous, self._previous = self._previous, (now_s, usage_s)
        if previous is None or now_s <= previous[0]:
            return float("nan")
        return 100.0 * (usage_s - previous[1]) / ((now_s - previous[0]) * self.files.quota_cores)
