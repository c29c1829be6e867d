"""Helpers for tests of ROS-free schedulers: a clock the test moves, and a thread that blocks in take()."""
from __future__ import annotations

import threading

JOIN_S = 5.0  # real seconds a test waits for a worker thread before it fails


class FakeClock:
    """Monotonic seconds that move only when a test says so (thread-safe)."""

    def __init__(self, start_s: float = 100.0):
        self._now_s = start_s
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now_s

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now_s += seconds


class Taker:
    """Runs ``scheduler.take()`` in a thread, so a test can act while it blocks."""

    def __init__(self, scheduler):
        self.result = "not returned"
        self._thread = threading.Thread(target=self._run, args=(scheduler,), daemon=True)
        self._thread.start()

    def _run(self, scheduler):
        self.result = scheduler.take()

    def returned(self, timeout_s: float = JOIN_S) -> bool:
        self._thread.join(timeout_s)
        return not self._thread.is_alive()
