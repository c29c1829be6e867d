"""NVIDIA Jetson load through jetson-stats (the ``jtop`` package), ROS-free and optional.

Jetsons have no NVML GPU utilisation and no RAPL, so ``load.LoadSampler`` sees little of them;
jetson-stats runs a root service (``jtop.service``) that reads sysfs and the INA3221 power monitors
and serves the readings to unprivileged clients over ``/run/jtop.sock``.

What ``jtop().stats`` holds, checked against jetson-stats 7.2.0 (``jtop/__init__.py:34``),
github.com/rbonghi/jetson_stats commit f41d5cadfeafc3516ff8cb7ddd5712cfa9a78611 (2026-07-30). The
dict is built in ``jtop/jtop.py:547-590``; line numbers below are of that commit.

* ``"CPU1"`` .. ``"CPUn"`` (1-based): ``100 - int(idle)`` per core, an int 0..100, where idle is the
  percentage of the core's /proc/stat time spent idle since the previous sample (``jtop.py:550``,
  ``core/cpu.py:66-74``; iowait and irq time therefore count as busy). A core that is off (hotplugged
  out, e.g. by an nvpmodel mode) is the string ``"OFF"`` (``jtop.py:550``, ``core/cpu.py:111-114``).
* ``"RAM"``: a *fraction* 0..1, used / total with used = MemTotal - MemFree - Buffers - Cached from
  /proc/meminfo (``jtop.py:553``, ``core/memory.py:446-447``); 0 when the total reads 0. ``"SWAP"``
  likewise; ``"EMC"`` (int, % of memory bandwidth) and ``"IRAM"`` (fraction) where the board has them.
* ``"GPU"`` (further GPUs ``"GPU1"`` ...): load in *percent* 0..100, a float: the sysfs ``load``
  node is per mille and jtop divides it by 10 (``core/gpu.py:157``); on Thor it is NVML's
  utilisation in % (``core/gpu.py:355``). Absent on a board where jtop finds no GPU.
* No GPU memory: the GPU shares the board's RAM. (``jetson.memory["RAM"]["shared"]``, NvMapMemUsed in
  kB, ``core/memory.py:428``, is the GPU-mapped part, but it is not in ``stats``.)
* ``"Power <rail>"``: each rail's instantaneous power in *mW*, an int (volt mV x curr mA / 1000 or
  the INA3221 ``in_power`` node, ``core/power.py:184, 272-274``). ``"Power TOT"`` in mW is the board's
  input rail (``VDD_IN`` or ``POM_5V_IN``, taken out of the rails) where the board has one, otherwise
  the sum of all rails (``core/power.py:26-57``, e.g. Xavier). Rail names are the board's: Nano
  ``POM_5V_CPU``/``POM_5V_GPU``; TX2 ``VDD_GPU``; Xavier ``GPU``; AGX Orin ``VDD_GPU_SOC``; Orin
  Nano/NX ``VDD_CPU_GPU_CV`` (GPU shares the rail). A board without a power monitor has no
  ``"Power ..."`` key at all: the service returns ``{}`` (``core/power.py:261-263``) and ``stats``
  skips the block (``jtop.py:579``). jetson-stats before 4.2.10 named every rail key after the last
  temperature sensor (fixed in commit 3af7aac, e.g. a lone ``"Power tj"``); ``"Power TOT"`` was right.
* Also ``"time"`` (datetime), ``"uptime"`` (timedelta), engine clocks in kHz or ``"OFF"``,
  ``"Fan <name><i>"`` (%), ``"Temp <name>"`` (deg C, -256 for an offline sensor), ``"jetson_clocks"``
  and ``"nvp model"``: not used here. The property's docstring table (``jtop.py:521-541``) calls the
  temperature keys power (jetson_stats issue #800) and writes ``nvpmodel`` for ``"nvp model"``; the
  code above is what counts.

Client lifecycle (``jtop.py``): ``jtop(interval)`` builds the client; ``start()`` (1097-1174)
connects to the service and raises ``JtopException`` when it is not running or not accessible;
``ok(spin=True)`` (1223-1260) returns at once and re-raises an error of the client's reader thread
(a lost service); ``stats`` is read from the latest sample; ``close()`` (1262-1276) stops the client.
"""
from __future__ import annotations

import logging
import math
import numbers
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["JetsonLoad", "JtopReader", "load_from_jtop_stats"]

Warn = Callable[[str], None]
_LOG = logging.getLogger(__name__)

_CPU_KEY = re.compile(r"CPU\d+")
_OFFLINE = "OFF"  # what jtop writes for a core (or engine) that is off
_POWER_PREFIX = "Power "
_TOTAL_POWER_KEY = "Power TOT"
# Rail-name parts that say where a rail is measured, not what it feeds ("POM_5V_GPU", "VDD_GPU").
_RAIL_QUALIFIERS = {"POM", "5V", "VDD"}


@dataclass(frozen=True)
class JetsonLoad:
    """One jtop reading; NaN marks a quantity jtop did not give or gave unreadably."""

    cpu_percent: float  # 0..100, mean over the cores that are online
    memory_percent: float  # 0..100 of RAM (shared with the GPU)
    gpu_percent: float  # 0..100, first GPU
    gpu_memory_percent: float  # NaN from jtop stats: the GPU has no memory of its own on a Jetson
    gpu_power_w: float  # a rail that feeds the GPU alone; NaN where the GPU shares its rail
    total_power_w: float  # board input power (jtop's "Power TOT")


def load_from_jtop_stats(stats: Mapping[str, Any]) -> JetsonLoad:
    """The load in ``jtop().stats`` (format in the module docstring); never raises on odd values."""
    if not isinstance(stats, Mapping):
        stats = {}
    return JetsonLoad(
        cpu_percent=_cpu_percent(stats),
        memory_percent=_percent(_number(stats.get("RAM")) * 100.0),  # jtop gives a fraction
        gpu_percent=_percent(_number(stats.get("GPU"))),  # jtop gives percent already
        gpu_memory_percent=math.nan,
        gpu_power_w=_watts(stats.get(_gpu_rail_key(stats))),
        total_power_w=_watts(stats.get(_TOTAL_POWER_KEY)),
    )


def _number(value: object) -> float:
    """A finite float from a real number or numeric string; NaN for anything else (bool, None, "OFF")."""
    if isinstance(value, bool):  # a bool is an int to Python, never a reading
        return math.nan
    if not isinstance(value, (numbers.Real, str)):
        return math.nan
    try:
        result = float(value)
    except (ValueError, OverflowError):
        return math.nan
    return result if math.isfinite(result) else math.nan


def _percent(value: float) -> float:
    """``value`` if it is a percentage 0..100, else NaN."""
    return value if 0.0 <= value <= 100.0 else math.nan


def _watts(milliwatts: object) -> float:
    """jtop's power in mW as W; NaN when missing, unreadable or negative."""
    power_mw = _number(milliwatts)
    return power_mw / 1000.0 if power_mw >= 0.0 else math.nan


def _is_offline(value: object) -> bool:
    return isinstance(value, str) and value.strip().upper() == _OFFLINE


def _cpu_percent(stats: Mapping[str, Any]) -> float:
    """Mean load of the online cores; NaN if none is online or one that is online is unreadable."""
    loads = []
    for key, value in stats.items():
        if not (isinstance(key, str) and _CPU_KEY.fullmatch(key)) or _is_offline(value):
            continue  # not a core, or a core that is off: it carries no load
        load = _percent(_number(value))
        if math.isnan(load):  # an online core of unknown load leaves the mean unknown
            return math.nan
        loads.append(load)
    return sum(loads) / len(loads) if loads else math.nan


def _feeds_gpu_alone(rail: str) -> bool:
    """Whether a rail name ("POM_5V_GPU", "VDD_GPU", "GPU") measures the GPU and nothing else."""
    parts = [part for part in rail.upper().split("_") if part not in _RAIL_QUALIFIERS]
    return parts == ["GPU"]


def _gpu_rail_key(stats: Mapping[str, Any]) -> str | None:
    """The stats key of the one rail that feeds only the GPU, or None.

    Shared rails (VDD_GPU_SOC on AGX Orin, VDD_CPU_GPU_CV on Orin Nano/NX) would count other
    consumers as GPU power, so they give NaN rather than a number that is too high.
    """
    keys = [key for key in stats
            if isinstance(key, str) and key.startswith(_POWER_PREFIX) and key != _TOTAL_POWER_KEY
            and _feeds_gpu_alone(key[len(_POWER_PREFIX):])]
    return keys[0] if len(keys) == 1 else None


class JtopReader:
    """Reads :class:`JetsonLoad` from the jetson-stats service, if this machine has one.

    ``jtop`` is imported and its client started on the first :meth:`read`, and kept open after.
    Without jetson-stats, or without its service, ``warn`` is called once and every :meth:`read`
    returns None; likewise after the connection is lost (the client does not come back by itself).
    Not thread-safe: call it from one thread.
    """

    def __init__(self, warn: Warn = _LOG.warning, interval_s: float = 1.0):
        self._warn = warn
        self._interval_s = interval_s  # jtop's sampling interval; the service may run at another
        self._jetson: Any = None
        self._given_up = False

    def read(self) -> JetsonLoad | None:
        """The latest jtop sample converted, or None when jtop is not available."""
        if self._given_up:
            return None
        if self._jetson is None:
            self._jetson = self._start()
            if self._jetson is None:
                return None
        try:
            # spin=True: do not wait for a fresh sample; it raises what the client's thread hit
            if not self._jetson.ok(spin=True):
                raise ConnectionError("the jtop client has stopped")
            stats = self._jetson.stats
        except Exception as error:  # jtop raises JtopException, EOFError, KeyError...: all mean no data
            self._give_up(f"Jetson load is no longer reported: lost the jetson-stats service ({error!r})")
            return None
        return load_from_jtop_stats(stats)

    def close(self) -> None:
        """Stops the jtop client; :meth:`read` returns None after."""
        self._given_up = True
        self._close_client()

    def _start(self) -> Any:
        try:
            from jtop import jtop  # optional: only a Jetson with jetson-stats installed has it
        except Exception as error:  # ImportError, or a jtop that fails on import
            self._give_up("Jetson load is not reported: jetson-stats (the jtop package) is not installed "
                          f"or cannot be imported ({error!r}); install it with `sudo pip3 install jetson-stats`")
            return None
        try:
            jetson = jtop(interval=self._interval_s)
        except Exception as error:
            self._give_up(f"Jetson load is not reported: the jtop client cannot be created ({error!r})")
            return None
        try:
            jetson.start()  # connects to jtop.service; raises JtopException when it is not running
        except Exception as error:
            self._jetson = jetson
            self._give_up("Jetson load is not reported: the jetson-stats service (jtop.service) is not "
                          f"running or not reachable ({error!r})")
            return None
        return jetson

    def _give_up(self, message: str) -> None:
        if not self._given_up:
            self._warn(message)
        self._given_up = True
        self._close_client()

    def _close_client(self) -> None:
        jetson, self._jetson = self._jetson, None
        if jetson is None:
            return
        try:
            jetson.close()
        except Exception as error:  # closing a client whose service is gone may fail; nothing to do
            _LOG.debug("closing the jtop client failed: %r", error)
