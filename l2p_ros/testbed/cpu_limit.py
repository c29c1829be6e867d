"""A tier's CPU limit: a cgroup with a CFS quota, a fraction of one core for every process in it.

cgroup v1 (``/sys/fs/cgroup/cpu``, ``cpu.cfs_quota_us``) where its cpu controller is mounted, else
cgroup v2 (``cpu.max``). With v1 the group is made in the ``cpuacct`` hierarchy too when that is
mounted apart, so the group's usage can be read (the load monitor's share of the quota). A process
joins by writing its PID to each group's ``cgroup.procs``; children stay in the groups.
"""
from __future__ import annotations

import math
from pathlib import Path

from l2p_ros.monitoring.cgroup_cpu import stat_value
from l2p_ros.testbed.layout import TIERS
from l2p_ros.testbed.system import TestbedError

CGROUP_ROOT = Path("/sys/fs/cgroup")
MIN_QUOTA_US = 1000  # the kernel refuses a quota (or period) under 1 ms


def period_us(cores: float) -> int:
    """The shortest period the kernel allows for ``cores``: a throttled process then waits at most a
    few ms at a time, more like a slower CPU than the 100 ms default's long stalls. Measured at 0.3
    of a core: per-layer medians sum to 7% under the full pass (3.3 ms period), 14% (10 ms)."""
    return MIN_QUOTA_US if cores >= 1 else math.ceil(MIN_QUOTA_US / cores)


def _v1() -> bool:
    return (CGROUP_ROOT / "cpu" / "cpu.cfs_quota_us").is_file()


def group_dir(prefix: str, tier: str) -> Path:
    return (CGROUP_ROOT / "cpu" if _v1() else CGROUP_ROOT) / f"{prefix}-{tier}"


def _accounting_dir(prefix: str, tier: str) -> Path | None:
    """v1 with cpuacct mounted apart from cpu: the tier's group there (its usage counter)."""
    accounting = CGROUP_ROOT / "cpuacct"
    if _v1() and (accounting / "cpuacct.usage").is_file() and not (CGROUP_ROOT / "cpu" / "cpuacct.usage").is_file():
        return accounting / f"{prefix}-{tier}"
    return None


def create(prefix: str, tier: str, cores: float) -> Path:
    """The group of ``tier`` limited to ``cores`` (0.05..64) of CPU time; its ``cgroup.procs`` path."""
    if not 0.05 <= cores <= 64:
        raise ValueError(f"{tier}_cpu_quota {cores}: must be a fraction of a core between 0.05 and 64 cores")
    directory = group_dir(prefix, tier)
    try:
        directory.mkdir(exist_ok=True)
        period = period_us(cores)
        quota_us = int(round(cores * period))
        if _v1():  # quota first: it is -1 (none) or was set for another period
            (directory / "cpu.cfs_quota_us").write_text("-1")
            (directory / "cpu.cfs_period_us").write_text(str(period))
            (directory / "cpu.cfs_quota_us").write_text(str(quota_us))
        else:
            (directory / "cpu.max").write_text(f"{quota_us} {period}")
        accounting = _accounting_dir(prefix, tier)
        if accounting is not None:
            accounting.mkdir(exist_ok=True)
    except OSError as error:
        raise TestbedError(f"cannot make the CPU limit {directory}: {error} (cgroup cpu controller needed)") from error
    return directory / "cgroup.procs"


def quota(prefix: str, tier: str) -> float | None:
    """The tier's limit in cores, or None when it has none."""
    directory = group_dir(prefix, tier)
    if not directory.is_dir():
        return None
    if _v1():
        quota_us, period_us = int((directory / "cpu.cfs_quota_us").read_text()), int(
            (directory / "cpu.cfs_period_us").read_text())
    else:
        text = (directory / "cpu.max").read_text().split()
        if text[0] == "max":
            return None
        quota_us, period_us = int(text[0]), int(text[1])
    return None if quota_us < 0 else round(quota_us / period_us, 3)


def throttled_periods(prefix: str, tier: str) -> int:
    """How many CFS periods the kernel has held the tier's group back at its quota (``cpu.stat``
    ``nr_throttled``, in v1 and v2 alike): the count rises only where the limit bites."""
    try:
        return stat_value(group_dir(prefix, tier) / "cpu.stat", "nr_throttled")
    except ValueError as error:
        raise TestbedError(str(error)) from None


def procs_files(prefix: str, tier: str) -> list[Path]:
    """The ``cgroup.procs`` files a process of ``tier`` joins; none when the tier has no limit."""
    path = group_dir(prefix, tier) / "cgroup.procs"
    if not path.is_file():
        return []
    accounting = _accounting_dir(prefix, tier)
    return [path] + ([accounting / "cgroup.procs"] if accounting is not None and accounting.is_dir() else [])


def remove_all(prefix: str) -> list[str]:
    """Remove the groups of ``prefix``; a group still holding processes moves them to the root first."""
    removed = []
    for tier in TIERS:
        for directory in (group_dir(prefix, tier), _accounting_dir(prefix, tier)):
            if directory is not None and directory.is_dir():
                removed.append(_remove(directory))
    return removed


def _remove(directory: Path) -> str:
    root_procs = directory.parent / "cgroup.procs"
    for pid in (directory / "cgroup.procs").read_text().split():
        try:
            root_procs.write_text(pid)
        except OSError:  # exited meanwhile
            pass
    directory.rmdir()
    return str(directory)
