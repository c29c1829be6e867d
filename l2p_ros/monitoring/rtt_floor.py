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
from collections import deque
from typing import Callable


class RttFloor:
    """The lowest RTT reported within the last ``window_s`` seconds (None before any)."""

    def __init__(self, window_s: float = 10.0, clock: Callable[[], float] = time.monotonic):
        if not window_s > 0:
            raise ValueError(f"window_s must be > 0, got {window_s}")
        self.window_s = window_s
        self._clock = clock
        self._reports: deque[tuple[float, float]] = deque()  # (arrival s, RTT ms), RTTs increasing

    def add(self, rtt_ms: float) -> None:
        if not (math.isfinite(rtt_ms) and rtt_ms >= 0):
            return
        # A monotonic deque: a report no lower than a newer one can never be the minimum again.
        while self._reports and self._reports[-1][1] >= rtt_ms:
            self._reports.pop()
        self._reports.append((self._clock(), rtt_ms))

    @property
    def floor_ms(self) -> float | None:
        oldest_s = self._clock() - self.window_s
        while self._reports and self._reports[0][0] < oldest_s:
            self._reports.popleft()
        return self._reports[0][1] if self._reports else None
