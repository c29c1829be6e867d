"""What happens to the testbed at set times of a run: a CPU hog inside the edge's limit (experiment
3), the cloud node killed as a crash would and started again (experiment 6).

Times are seconds since the trace started (the run's first camera frame), like the timeline's.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from typing import Callable

from l2p_ros.testbed.placement import TierPlacement

# A busy loop: one thread that never sleeps, the most CPU one process of the edge's kind can take.
_BUSY_LOOP = "while True: pass"


@dataclass(frozen=True)
class Window:
    """From ``start_s`` to ``stop_s``, seconds since the trace started."""

    start_s: float
    stop_s: float

    def __post_init__(self):
        if not 0 <= self.start_s < self.stop_s:
            raise ValueError(f"window {self.start_s:g}:{self.stop_s:g}: need 0 <= start < stop (seconds)")

    @classmethod
    def parse(cls, text: str) -> "Window":
        """``START:STOP`` in seconds, e.g. ``20:40``."""
        start, sep, stop = text.partition(":")
        try:
            start_s, stop_s = float(start), float(stop)
        except ValueError:
            raise ValueError(f"{text!r}: expected START:STOP in seconds, e.g. 20:40") from None
        if not sep:
            raise ValueError(f"{text!r}: expected START:STOP in seconds, e.g. 20:40")
        return cls(start_s, stop_s)


class CpuHog:
    """A busy process on a testbed tier: in its network namespace and inside its CPU limit, where it
    takes its share of the quota from the pipeline's processes as other work on a vehicle would."""

    def __init__(self, placement: TierPlacement):
        self.placement = placement
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        if self.process is None:
            argv = self.placement.command([sys.executable, "-c", _BUSY_LOOP])
            self.process = subprocess.Popen(argv, env=self.placement.env(), start_new_session=True,
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None


class EventSchedule:
    """Named actions at trace times; :meth:`tick` runs those due, in time order, each once, and
    records when it really ran them in ``fired``."""

    def __init__(self):
        self._pending: list[tuple[float, str, Callable]] = []
        self._watches: list[tuple[float, str, Callable]] = []
        self.fired: list[dict] = []

    def add(self, at_s: float, name: str, action: Callable) -> None:
        """``action(context)`` at ``at_s`` (``context``: what :meth:`tick` is given, e.g. the NodeSet)."""
        self._pending.append((float(at_s), name, action))
        self._pending.sort(key=lambda item: item[0])

    def watch(self, from_s: float, name: str, happened: Callable) -> None:
        """Record ``name`` when ``happened(context)`` first holds at or after ``from_s`` (something
        the run does not cause but waits for, e.g. a restarted node ready)."""
        self._watches.append((float(from_s), name, happened))

    @property
    def pending(self) -> list[tuple[float, str]]:
        return [(at_s, name) for at_s, name, _ in self._pending]

    def tick(self, now_s: float, context=None) -> None:
        while self._pending and self._pending[0][0] <= now_s:
            at_s, name, action = self._pending.pop(0)
            action(context)
            self.fired.append({"trace_time_s": round(now_s, 4), "planned_s": at_s, "event": name})
        for watch in [w for w in self._watches if w[0] <= now_s]:
            if watch[2](context):
                self._watches.remove(watch)
                self.fired.append({"trace_time_s": round(now_s, 4), "planned_s": None, "event": watch[1]})


def testbed_events(edge: TierPlacement, *, edge_hog: Window | None = None,
                   cloud_outage: Window | None = None) -> tuple[EventSchedule, CpuHog | None]:
    """The schedule of a run's events, and the hog it starts (stop it when the run ends, whatever
    happened). The cloud's node is killed (SIGKILL) and started again through the run's NodeSet."""
    schedule = EventSchedule()
    hog = None
    if edge_hog is not None:
        hog = CpuHog(edge)
        schedule.add(edge_hog.start_s, "edge hog started", lambda _nodes: hog.start())
        schedule.add(edge_hog.stop_s, "edge hog stopped", lambda _nodes: hog.stop())
    if cloud_outage is not None:
        schedule.add(cloud_outage.start_s, "cloud_node killed", lambda nodes: nodes.kill("cloud_node"))
        schedule.add(cloud_outage.stop_s, "cloud_node started", lambda nodes: nodes.start("cloud_node"))
        schedule.watch(cloud_outage.stop_s, "cloud_node ready", lambda nodes: _said_ready_twice(nodes, "cloud_node"))
    return schedule, hog


def _said_ready_twice(nodes, name: str) -> bool:
    """Whether node ``name`` logged its ready line (cloud_node: "cloud ready: ...") a second time:
    its restart has loaded the model and subscribed. Its log goes on across restarts (NodeSet)."""
    try:
        return nodes.running[name].log_path.read_text(errors="replace").count("cloud ready:") >= 2
    except (KeyError, OSError):
        return False
