"""Which of the uplink's RTT the policies are charged, per ``link_rtt`` mode (ROS-free).

The partitioner node and the simulator both feed it the network monitor's RTT reports and read what
:func:`~l2p_ros.monitoring.state.system_state` takes, so the two charge the link alike:

- ``smoothed``: the monitor's RTT as it is, with the queue the current choice built in it;
- ``floor``: the lowest RTT of the last seconds (:class:`~l2p_ros.monitoring.rtt_floor.RttFloor`);
- ``own-queue``: that floor, and each offloaded option the queue its own frames would leave on the
  link once chosen, up to the deepest the link was seen to hold
  (:class:`~l2p_ros.monitoring.link_buffer.LinkBuffer`, at least ``link_buffer_ms``).
"""
from __future__ import annotations

import time
from typing import Callable

from l2p_ros.monitoring.link_buffer import LinkBuffer
from l2p_ros.monitoring.rtt_floor import RttFloor

LINK_RTT_MODES = ("smoothed", "floor", "own-queue")
# The partitioner's defaults (docs/testbed.md, experiment 9), which a run that leaves them out ran with.
DEFAULT_LINK_RTT = "own-queue"
DEFAULT_LINK_BUFFER_MS = 200.0


class UplinkRtt:
    """``mode`` one of :data:`LINK_RTT_MODES`; ``link_buffer_ms``: the buffer assumed until a deeper
    one is seen (own-queue only, > 0); ``clock``: seconds, the simulator's own in simulation."""

    def __init__(self, mode: str, link_buffer_ms: float = DEFAULT_LINK_BUFFER_MS, clock: Callable[[], float] = time.monotonic):
        if mode not in LINK_RTT_MODES:
            raise ValueError(f"link_rtt must be one of {', '.join(LINK_RTT_MODES)}, got {mode!r}")
        self.mode = mode
        self._floor = RttFloor(clock=clock) if mode != "smoothed" else None
        self._buffer = LinkBuffer(link_buffer_ms, clock=clock) if mode == "own-queue" else None

    def add(self, rtt_ms: float) -> None:
        """One RTT the monitor reported for a link that is up, milliseconds."""
        if self._floor is None:
            return
        self._floor.add(rtt_ms)
        if self._buffer is not None and self._floor.floor_ms is not None:
            self._buffer.add(rtt_ms, self._floor.floor_ms)

    @property
    def floor_ms(self) -> float | None:
        """The cap on the reported RTT (None: charge it as reported)."""
        return None if self._floor is None else self._floor.floor_ms

    @property
    def buffer_ms(self) -> float:
        """How long a full uplink holds a frame, for the own queue (0: no own queue charged)."""
        return 0.0 if self._buffer is None else self._buffer.buffer_ms
