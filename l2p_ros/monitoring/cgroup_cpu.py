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

from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class CgroupCpuFiles:
    quota_cores: float
    usage_file: Path
    usage_unit_s: float  # seconds per unit of the usage counter
    usage_key: str | None = None  # v2: the line of cpu.stat holding the usage


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


class CgroupCpuLoad:
    """Usage of a cgroup's CPU quota since the previous read, 0..100 (can pass 100 briefly: the
    quota is enforced per period, the reads are not aligned with periods)."""

    def __init__(self, files: CgroupCpuFiles):
        self.files = files
        self._previous: tuple[float, float] | None = None

    @classmethod
    def of_this_process(cls) -> "CgroupCpuLoad | None":
        try:
            files = find_limit(Path("/proc/self/cgroup").read_text())
        except OSError:
            return None
        return cls(files) if files is not None else None

    def _usage_s(self) -> float:
        text = self.files.usage_file.read_text()
        if self.files.usage_key is None:
            return int(text) * self.files.usage_unit_s
        for line in text.splitlines():
            key, _, value = line.partition(" ")
            if key == self.files.usage_key:
                return int(value) * self.files.usage_unit_s
        raise ValueError(f"{self.files.usage_key} not in {self.files.usage_file}")

    def percent(self, now_s: float) -> float:
        """Share of the quota used since the previous call (``now_s`` monotonic); NaN on the first."""
        usage_s = self._usage_s()
        previous, self._previous = self._previous, (now_s, usage_s)
        if previous is None or now_s <= previous[0]:
            return float("nan")
        return 100.0 * (usage_s - previous[1]) / ((now_s - previous[0]) * self.files.quota_cores)
