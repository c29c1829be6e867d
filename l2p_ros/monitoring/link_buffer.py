"""How long the uplink's queue holds frames when it is full (ROS-free).

What an option that fills the link costs once chosen is mostly this wait
(:func:`~l2p_ros.policies.cost_model.own_link_queue_ms`): a link's buffer is its own (a shaper's
queue limit, a modem's buffers), and nothing but a full link shows it. The network monitor's
probes wait behind the frames, so the RTT it reports over the link's floor (its lowest of the last
seconds: :class:`~l2p_ros.monitoring.rtt_floor.RttFloor`) is the queue in front of them. The deepest
of those over the last ``window_s`` is the buffer this link has been seen to hold; until it shows
one deeper than ``assumed_ms`` (the partitioner's ``link_buffer_ms``), that is taken instead, so an
option that would fill a link never seen full is not charged nothing.
"""
from __future__ import annotations

import math
import time
from typing import Callable

from l2p_ros.monitoring.windowed_extreme import WindowedExtreme


class LinkBuffer:
    """The deepest queue (monitor RTT over the floor) seen within the last ``window_s`` seconds,
    and at least ``assumed_ms``."""

    def __init__(self, assumed_ms: float, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic):
        if not (math.isfinite(assumed_ms) and assumed_ms > 0):
            raise ValueError(f"assumed_ms must be > 0, got {assumed_ms}")
        self._deepest = WindowedExtreme(window_s, highest=True, clock=clock)
        self.assumed_ms = assumed_ms
        self.window_s = window_s

    def add(self, rtt_ms: float, floor_ms: float) -> None:
        """One report of the monitor's RTT and the floor under it, milliseconds."""
        queue_ms = rtt_ms - floor_ms
        if math.isfinite(queue_ms) and queue_ms >= 0:
            self._deepest.add(queue_ms)

    @property
    def seen_ms(self) -> float | None:
        """The deepest queue of the window (None: no report in it)."""
        return self._deepest.value

    @property
    def buffer_ms(self) -> float:
        """What a full link makes a frame wait: the deepest queue seen, or the assumed buffer."""
        return max(self.seen_ms or 0.0, self.assumed_ms)
