"""Edge load and power sampling (ROS-free): CPU and memory, NVIDIA GPU, CPU package power from RAPL.

Whatever this machine cannot read is NaN, and the reason is reported once through ``warn`` (a
machine without an NVIDIA GPU, a kernel that exposes no RAPL counter or keeps it root-only).
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import psutil

from l2p_ros.monitoring.cgroup_cpu import CgroupCpuLoad
from l2p_ros.monitoring.jetson import JtopReader

__all__ = ["LoadSample", "LoadSampler", "NvmlReader", "RaplReader", "DEFAULT_RAPL_ZONE", "CPU_SCOPES"]

# Package 0 of the powercap "intel-rapl" driver, which AMD processors expose under the same name.
DEFAULT_RAPL_ZONE = Path("/sys/class/powercap/intel-rapl:0")

Warn = Callable[[str], None]
# What cpu_percent is a share of: all cores, or this process's cgroup CPU limit (cgroup_cpu), the
# network's own process not counted (NETWORK_PROCESSES: its time is what the load stretches).
CPU_SCOPES = ("host", "limit")
NETWORK_PROCESSES = ("l2p_ros.nodes.edge_node",)
_LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadSample:
    """Load of this machine at one instant; NaN marks a quantity it cannot read."""

    # 0..100, averaged since the previous sample: of all cores, or (cpu_scope "limit") of this
    # process's CPU limit when it runs under one (a container's or the testbed edge's quota), the
    # edge node's own time not counted
    cpu_percent: float
    memory_percent: float  # 0..100
    gpu_percent: float  # 0..100
    gpu_memory_percent: float  # 0..100
    gpu_power_w: float
    cpu_package_power_w: float  # averaged since the previous sample
    board_power_w: float = math.nan  # a Jetson's input rail (jetson-stats), instantaneous


class RaplReader:
    """CPU package power from a powercap zone's cumulative energy counter.

    ``energy_uj`` counts microjoules and wraps to 0 after ``max_energy_range_uj``; power is the
    counter's increase over the time between two reads.
    """

    def __init__(self, zone: Path = DEFAULT_RAPL_ZONE, warn: Warn = _LOG.warning):
        self._energy_file = Path(zone) / "energy_uj"
        self._warn = warn
        self._previous: tuple[float, int] | None = None  # (monotonic s, energy µJ)
        try:
            self._range_uj = int((Path(zone) / "max_energy_range_uj").read_text())
            self._read_uj()
        except (OSError, ValueError) as error:
            self._range_uj = None
            warn(f"CPU package power is NaN: RAPL counter in {zone} is not readable ({error})")

    def _read_uj(self) -> int:
        return int(self._energy_file.read_text())

    def power_w(self, now_s: float) -> float:
        """Average power in W since the previous call (``now_s`` monotonic); NaN on the first call."""
        if self._range_uj is None:
            return math.nan
        try:
            energy_uj = self._read_uj()
        except (OSError, ValueError) as error:
            self._range_uj = None  # sysfs counters do not come back; say it once and stop trying
            self._warn(f"CPU package power is NaN from now on: reading {self._energy_file} failed ({error})")
            return math.nan
        previous, self._previous = self._previous, (now_s, energy_uj)
        if previous is None or now_s <= previous[0]:
            return math.nan
        delta_uj = energy_uj - previous[1]
        if delta_uj < 0:  # the counter wrapped once (it wraps after minutes, we read every second or so)
            delta_uj += self._range_uj
        return delta_uj * 1e-6 / (now_s - previous[0])


class NvmlReader:
    """Utilization, memory and power of one NVIDIA GPU through NVML (pynvml); NaN without one."""

    def __init__(self, index: int = 0, warn: Warn = _LOG.warning):
        self._warn = warn
        self._nvml = None
        self._handle = None
        self._failed: set[str] = set()
        try:
            import pynvml  # optional: only NVIDIA machines have the library behind it
        except ImportError:
            warn("GPU fields are NaN: pynvml (nvidia-ml-py) is not installed")
            return
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as error:
            warn(f"GPU fields are NaN: NVML is not available ({error})")
            return
        try:
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        except pynvml.NVMLError as error:
            pynvml.nvmlShutdown()
            warn(f"GPU fields are NaN: no NVIDIA GPU with index {index} ({error})")
            return
        self._nvml = pynvml

    def read(self) -> tuple[float, float, float]:
        """(utilization %, memory used %, power W); a query the GPU does not support gives NaN."""
        if self._nvml is None:
            return math.nan, math.nan, math.nan
        nvml, handle = self._nvml, self._handle
        return (self._query("utilization", lambda: float(nvml.nvmlDeviceGetUtilizationRates(handle).gpu)),
                self._query("memory", lambda: _percent(nvml.nvmlDeviceGetMemoryInfo(handle))),
                self._query("power", lambda: nvml.nvmlDeviceGetPowerUsage(handle) / 1000.0))  # mW -> W

    def _query(self, name: str, read: Callable[[], float]) -> float:
        if name in self._failed:
            return math.nan
        try:
            return read()
        except self._nvml.NVMLError as error:
            self._failed.add(name)
            self._warn(f"GPU {name} is NaN: NVML cannot read it on this GPU ({error})")
            return math.nan

    def close(self) -> None:
        if self._nvml is not None:
            self._nvml.nvmlShutdown()
            self._nvml = None


def _percent(memory) -> float:
    return 100.0 * memory.used / memory.total


class LoadSampler:
    """Takes :class:`LoadSample` readings of this machine. Each source it cannot read is reported
    once through ``warn`` and listed in :attr:`unavailable`."""

    def __init__(self, gpu_index: int = 0, rapl_zone: Path = DEFAULT_RAPL_ZONE, warn: Warn = _LOG.warning,
                 cpu_scope: str = "host", jetson: bool = False):
        """``jetson``: also read jetson-stats (jtop), which gives a Jetson's GPU load and board power
        where NVML and RAPL give nothing."""
        if cpu_scope not in CPU_SCOPES:
            raise ValueError(f"cpu_scope {cpu_scope!r}: must be one of {', '.join(CPU_SCOPES)}")
        self.unavailable: list[str] = []
        self._warn = warn
        self._gpu = NvmlReader(gpu_index, self._note)
        self._jetson = JtopReader(warn=self._note) if jetson else None
        self._rapl = RaplReader(rapl_zone, self._note)
        # psutil's CPU percentage covers the time since the previous call in this thread; the first
        # call only sets that start, so make it here.
        psutil.cpu_percent(interval=None)
        self._rapl.power_w(time.monotonic())
        self._cgroup = (CgroupCpuLoad.of_this_process(excluded=NETWORK_PROCESSES) if cpu_scope == "limit"
                        else None)
        if self._cgroup is not None:
            self._cgroup.percent(time.monotonic())

    def _note(self, message: str) -> None:
        self.unavailable.append(message)
        self._warn(message)

    def sample(self) -> LoadSample:
        gpu_percent, gpu_memory_percent, gpu_power_w = self._gpu.read()
        cpu_percent = psutil.cpu_percent(interval=None)  # read every time: it measures since the last read
        if self._cgroup is not None:
            try:
                cpu_percent = min(self._cgroup.percent(time.monotonic()), 100.0)
            except (OSError, ValueError) as error:  # the group went away: say so once, then all cores
                self._cgroup = None
                self._note(f"CPU load is of all cores from now on: reading this process's CPU limit failed ({error})")
        board_power_w = math.nan
        reading = self._jetson.read() if self._jetson is not None else None
        if reading is not None:  # NVML reads nothing on a Jetson: its GPU comes from jtop
            gpu_percent = gpu_percent if math.isfinite(gpu_percent) else reading.gpu_percent
            gpu_power_w = gpu_power_w if math.isfinite(gpu_power_w) else reading.gpu_power_w
            board_power_w = reading.total_power_w
        return LoadSample(cpu_percent=cpu_percent,
                          memory_percent=psutil.virtual_memory().percent,
                          gpu_percent=gpu_percent, gpu_memory_percent=gpu_memory_percent, gpu_power_w=gpu_power_w,
                          cpu_package_power_w=self._rapl.power_w(time.monotonic()), board_power_w=board_power_w)

    def close(self) -> None:
        self._gpu.close()
        if self._jetson is not None:
            self._jetson.close()


class SensorWatch:
    """The load monitor's health: WARN when the CPU load cannot be read (the policies then assume an
    idle edge) or when a reading that worked earlier in this run turns NaN (a sensor that broke);
    sensors this machine never had (no GPU, no readable RAPL) are no fault, only listed."""

    def __init__(self):
        self._worked: set[str] = set()

    def status(self, sample: LoadSample) -> tuple[int, str]:
        """(0 OK or 1 WARN, message) for this sample."""
        values = {field: getattr(sample, field) for field in LoadSample.__dataclass_fields__}
        problems = []
        if not math.isfinite(values["cpu_percent"]):
            problems.append("CPU load unreadable: the policies assume an idle edge")
        broke = sorted(field for field in self._worked if not math.isfinite(values[field]))
        if broke:
            problems.append(f"stopped reading: {', '.join(broke)}")
        self._worked |= {field for field, value in values.items() if math.isfinite(value)}
        return (1, "; ".join(problems)) if problems else (0, "running")


def is_jetson() -> bool:
    """Whether this machine is an NVIDIA Jetson (L4T writes /etc/nv_tegra_release)."""
    return Path("/etc/nv_tegra_release").exists()
