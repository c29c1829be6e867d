"""How much slower the edge runs live than the cost model predicts, from the edge's own timings.

ROS-free. A profile is measured with nothing else running; live, the camera, the partitioner, the
monitors and the middleware share the edge with the network's layers (in the testbed they share
the same CPU quota), a board may throttle, a profile may come from another board. The load monitor
cannot see this: its CPU figure counts the edge's own inference as "other work" and, host-wide,
whatever else the host runs. Measured (docs/testbed.md, experiment 8): the 0.3-core edge's
yolov3-tiny head to layer 7 and the bottleneck's encoder, profiled at 46 ms and predicted at 71 ms
with the load monitor's 35%, took 2.35x that live, so the policies chose a cut the edge could not
feed at 10 frames/s.

The edge reports what each frame's layers and encoding took (StageTimings ``edge_ms`` and
``encode_ms``). Against the cost model's prediction for the same partition at the load of its
decision, their ratio is what the prediction missed; :class:`EdgeSpeed` keeps the median ratio of
the recent frames (a median: one frame delayed by the scheduler must not move it) and
:func:`calibrated_edge_load` folds it into the load the policies see. The ratio is taken against
the load-stretched prediction, so a load the monitor does see (a CPU hog) is not counted twice and
goes away from the prediction when the monitor sees it go: what stays is what the monitor misses.
"""
from __future__ import annotations

import math
import time
from collections import deque
from statistics import median
from typing import Callable


# The partitioner's default: calibrate (docs/testbed.md, experiment 9).
DEFAULT_CALIBRATE_EDGE = True


class EdgeSpeed:
    """The median of ``measured_ms / predicted_ms`` over the last ``window`` frames the edge
    computed at least ``min_predicted_ms`` for (image offload's few milliseconds of resizing and
    JPEG say little about the layers) within the last ``max_age_s``, clamped to ``bounds``; 1 with
    fewer than ``min_frames`` of them.

    Old frames are forgotten because what the factor learns can be passing: right after the link
    fell to 1 Mbit/s the testbed's edge ran 3-4x slower than predicted for a few seconds (its
    middleware resending images stuck on the link, in the same CPU quota), and a factor that kept
    that would have kept the policy off the edge's cuts for good, since only frames computed there
    could correct it. Forgotten, the policy tries them again and measures anew."""

    def __init__(self, window: int = 15, min_frames: int = 3, min_predicted_ms: float = 5.0,
                 bounds: tuple[float, float] = (0.25, 8.0), max_age_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic):
        if window < 1 or not 1 <= min_frames <= window:
            raise ValueError(f"need window >= 1 and 1 <= min_frames <= window, got {window}, {min_frames}")
        if not min_predicted_ms > 0 or not 0 < bounds[0] <= 1 <= bounds[1] or not max_age_s > 0:
            raise ValueError(f"need min_predicted_ms > 0, bounds around 1 and max_age_s > 0, got "
                             f"{min_predicted_ms}, {bounds}, {max_age_s}")
        self.min_frames = min_frames
        self.min_predicted_ms = min_predicted_ms
        self.bounds = bounds
        self.max_age_s = max_age_s
        self._clock = clock
        self._ratios: deque[tuple[float, float]] = deque(maxlen=window)  # (arrival s, ratio)
        self.frames = 0  # frames taken, in all

    def add(self, measured_ms: float, predicted_ms: float) -> bool:
        """One frame's edge time against its prediction; False when it is not taken (too small a
        prediction to compare, or a time that is not a positive number)."""
        if not (math.isfinite(measured_ms) and measured_ms > 0 and math.isfinite(predicted_ms)
                and predicted_ms >= self.min_predicted_ms):
            return False
        self._ratios.append((self._clock(), measured_ms / predicted_ms))
        self.frames += 1
        return True

    @property
    def factor(self) -> float:
        """How many times longer the edge takes than predicted (1 without enough recent frames)."""
        oldest_s = self._clock() - self.max_age_s
        while self._ratios and self._ratios[0][0] < oldest_s:
            self._ratios.popleft()
        if len(self._ratios) < self.min_frames:
            return 1.0
        low, high = self.bounds
        return min(max(median(ratio for _, ratio in self._ratios), low), high)


def calibrated_edge_load(monitor_load: float, factor: float) -> float:
    """The load 0..1 that makes the cost model's processor-sharing stretch ``1 / (1 - load)`` equal
    the monitor's stretch times ``factor``. An edge faster than predicted (factor < 1) keeps the
    stretch of no load at least: the model has no way to predict the edge faster than its profile."""
    if not 0.0 <= monitor_load <= 1.0 or not factor > 0:
        raise ValueError(f"need a load in 0..1 and a factor > 0, got {monitor_load}, {factor}")
    return min(max(1.0 - (1.0 - monitor_load) / factor, 0.0), 1.0)
