"""How regularly frames enter the uplink, for the wait their queue charges (ROS-free).

The own queue (:func:`~l2p_ros.policies.cost_model.own_link_queue_ms`) is Kingman's G/D/1 wait,
``rho / (1 - rho) * scv / 2 * sending``, where ``scv`` is the squared coefficient of variation
(variance over squared mean) of the time between frames reaching the link. Frames that came at
random (Poisson, ``scv = 1``) give M/D/1's wait, which was all the partitioner charged before; a
camera's frames come far more regularly. On the testbed (docs/testbed.md) the bottleneck's frames
at 64% of a 1 Mbit/s link left no queue the monitor's probes could see, where M/D/1 charges 57 ms
(experiment 9), and their scv was 0.04-0.09, the image's 0.004-0.03 (experiment 10).

The edge stamps when it sent each frame (StageTimings ``edge_sent``, back in the detections);
:class:`LinkArrivals` keeps the recent stamps of offloaded frames and their intervals' ``scv``.
What it measures is the current choice's stream: frames of an option not chosen would come at
another rhythm (an edge stage slower than the camera's period spaces them by its own jitter),
which the one figure stands in for. Where it has too few recent frames (the edge runs everything,
the partitioner just started) it says nothing and the policies are charged M/D/1's wait.
"""
from __future__ import annotations

import math
import time
from collections import deque
from typing import Callable

import numpy as np

# ``link_arrivals``: ``poisson`` charges M/D/1's wait (scv 1), ``measured`` the scv measured here.
LINK_ARRIVAL_MODES = ("poisson", "measured")
# The partitioner's default (docs/testbed.md, experiment 10); the simulator's stays ``poisson``, as
# every figure before stop 35 was made (a run recorded before then ran with it).
DEFAULT_LINK_ARRIVALS = "measured"
POISSON_SCV = 1.0


class LinkArrivals:
    """The squared coefficient of variation of the intervals between the last ``window`` frames'
    send stamps (at least ``min_intervals`` intervals, stamps received within ``max_age_s``).

    ``clock`` (seconds) ages the reports; the stamps themselves may be on another clock (the
    edge's), since only their differences are used. A stamp received twice (a late second answer
    of the same frame) counts once; stamps are sorted, since detections may come back out of order."""

    def __init__(self, window: int = 30, min_intervals: int = 10, max_age_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic):
        if not 2 <= min_intervals + 1 <= window or not max_age_s > 0:
            raise ValueError(f"need 1 <= min_intervals < window and max_age_s > 0, got {min_intervals}, "
                             f"{window}, {max_age_s}")
        self.min_intervals = min_intervals
        self.max_age_s = max_age_s
        self._clock = clock
        self._sent: deque[tuple[float, float]] = deque(maxlen=window)  # (received s, sent s)

    def add(self, sent_s: float) -> bool:
        """One offloaded frame's send stamp, seconds; False when it is not taken (not a finite
        number, or a stamp already held)."""
        if not math.isfinite(sent_s) or any(sent == sent_s for _, sent in self._sent):
            return False
        self._sent.append((self._clock(), sent_s))
        return True

    @property
    def scv(self) -> float | None:
        """The intervals' variance over their squared mean (None: too few recent frames)."""
        oldest_s = self._clock() - self.max_age_s
        while self._sent and self._sent[0][0] < oldest_s:
            self._sent.popleft()
        if len(self._sent) < self.min_intervals + 1:
            return None
        intervals_s = np.diff(np.sort([sent for _, sent in self._sent]))
        mean_s = float(intervals_s.mean())
        return float(intervals_s.var() / mean_s**2) if mean_s > 0 else None


def charged_scv(measured: float | None, mode: str) -> float:
    """What the policies are charged under ``link_arrivals`` ``mode``: the ``measured`` scv
    (:attr:`LinkArrivals.scv`), or Poisson's where the mode is ``poisson`` or nothing is measured."""
    if mode not in LINK_ARRIVAL_MODES:
        raise ValueError(f"link_arrivals must be one of {', '.join(LINK_ARRIVAL_MODES)}, got {mode!r}")
    return measured if mode == "measured" and measured is not None else POISSON_SCV
