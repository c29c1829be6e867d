"""The lowest or highest value reported within the last seconds (ROS-free).

Written here: the standard library and numpy have no time-windowed minimum. A monotonic deque keeps
it O(1) amortised per report: a value that a newer one beats can never be the extreme again.
"""
from __future__ import annotations

import operator
import time
from collections import deque
from typing import Callable


class WindowedExtreme:
    """The minimum (``highest=False``) or maximum of the values added within the last
    ``window_s`` seconds (None when none was)."""

    def __init__(self, window_s: float, highest: bool = False, clock: Callable[[], float] = time.monotonic):
        if not window_s > 0:
            raise ValueError(f"window_s must be > 0, got {window_s}")
        self.window_s = window_s
        self._clock = clock
        self._beaten_by = operator.le if highest else operator.ge  # (older, newer): older can go
        self._values: deque[tuple[float, float]] = deque()  # (arrival s, value), the extreme first

    def add(self, value: float) -> None:
        while self._values and self._beaten_by(self._values[-1][1], value):
            self._values.pop()
        self._values.append((self._clock(), value))

    @property
    def value(self) -> float | None:
        oldest_s = self._clock() - self.window_s
        while self._values and self._values[0][0] < oldest_s:
            self._values.popleft()
        return self._values[0][1] if self._values else None
