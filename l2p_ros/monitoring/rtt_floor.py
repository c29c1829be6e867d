"""The link's round-trip time without the queue the pipeline's own stream builds (ROS-free).

The network monitor's RTT is that of its probes, which wait in the link's queue behind the frames:
on the testbed, sending the image over a 1-2 Mbit/s link it fills took the RTT from 25-40 ms to
90-380 ms (docs/testbed.md, experiment 8). Charged to every offloaded option, that queue makes a
smaller payload look as slow as the image that built it, though it would let the queue drain. The
lowest RTT reported over the last ``window_s`` is the link's own (or the one the least loaded recent
choice saw): what a choice that keeps up with the frames would pay.
"""
from __future__ import annotations

import math
import time
from typing import Callable

from l2p_ros.monitoring.windowed_extreme import WindowedExtreme


class RttFloor:
    """The lowest RTT reported within the last ``window_s`` seconds (None before any)."""

    def __init__(self, window_s: float = 10.0, clock: Callable[[], float] = time.monotonic):
        self._lowest = WindowedExtreme(window_s, highest=False, clock=clock)
        self.window_s = window_s

    def add(self, rtt_ms: float) -> None:
        if math.isfinite(rtt_ms) and rtt_ms >= 0:
            self._lowest.add(rtt_ms)

    @property
    def floor_ms(self) -> float | None:
        return self._lowest.value
