"""Running per-stage statistics: every frame is counted as detected, offloaded or dropped (with a reason)."""
from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass
class StageStats:
    """Thread-safe counters of one stage; latency and payload statistics over a recent window."""

    window: int = 300
    frames_in: int = 0
    frames_detected: int = 0
    frames_offloaded: int = 0
    frames_fallback: int = 0
    drops: Counter = field(default_factory=Counter)
    _latencies_ms: deque = field(default_factory=deque)
    _payload_bytes: deque = field(default_factory=deque)
    _detected_times_s: deque = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def count_in(self) -> None:
        with self._lock:
            self.frames_in += 1

    def drop(self, reason: str) -> None:
        with self._lock:
            self.drops[reason] += 1

    def offloaded(self, payload_bytes: int) -> None:
        with self._lock:
            self.frames_offloaded += 1
            self._push(self._payload_bytes, payload_bytes)

    def detected(self, latency_ms: float, payload_bytes: int | None = None, fallback: bool = False) -> None:
        with self._lock:
            self.frames_detected += 1
            self.frames_fallback += int(fallback)
            self._push(self._latencies_ms, latency_ms)
            self._push(self._detected_times_s, time.monotonic())
            if payload_bytes is not None:
                self._push(self._payload_bytes, payload_bytes)

    def _push(self, values: deque, value: float) -> None:
        values.append(value)
        if len(values) > self.window:
            values.popleft()

    @property
    def frames_dropped(self) -> int:
        return sum(self.drops.values())

    def snapshot(self) -> dict:
        """A consistent copy: counters, drops by reason, latency mean/p95 (ms), bytes mean, fps."""
        with self._lock:
            latencies = np.asarray(self._latencies_ms, dtype=np.float64)
            times = list(self._detected_times_s)
            fps = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0
            return {
                "frames_in": self.frames_in, "frames_detected": self.frames_detected,
                "frames_offloaded": self.frames_offloaded, "frames_fallback": self.frames_fallback,
                "frames_dropped": self.frames_dropped, "drops": dict(self.drops),
                "latency_mean_ms": float(latencies.mean()) if latencies.size else 0.0,
                "latency_p95_ms": float(np.percentile(latencies, 95)) if latencies.size else 0.0,
                "payload_bytes_mean": float(np.mean(self._payload_bytes)) if self._payload_bytes else 0.0,
                "fps": fps,
            }


ERROR = 2
WARN = 1  # diagnostic_msgs/DiagnosticStatus levels, without importing ROS here
OK = 0


class DropWatch:
    """The drops (by reason) since the previous look: what a periodic status reports, so a stage
    that drops frames says so while it happens, and is OK again once it stops."""

    def __init__(self):
        self._seen: Counter = Counter()

    def since_last(self, drops: Mapping[str, int]) -> dict[str, int]:
        new = {reason: count - self._seen[reason] for reason, count in drops.items() if count > self._seen[reason]}
        self._seen = Counter(drops)
        return new


def stage_status(new_drops: Mapping[str, int], next_tier_silent: bool = False,
                 problems: Sequence[str] = ()) -> tuple[int, str]:
    """(level, message) of a stage's diagnostic status: ERROR while frames fail on the stage itself
    (a drop reason ``*_error``: it cannot run them); WARN while its next tier is silent, while it
    drops frames or while any of ``problems`` (what else degrades it, said in words) holds, naming
    each; else OK."""
    said = list(problems)
    if next_tier_silent:
        said.insert(0, "next tier silent: running locally")
    if new_drops:
        said.append("dropped frames in the last period: "
                    + ", ".join(f"{count} {reason}" for reason, count in sorted(new_drops.items())))
    if not said:
        return OK, "running"
    return (ERROR if any(reason.endswith("_error") for reason in new_drops) else WARN), "; ".join(said)


def backlog_problems(queued: Mapping[str, int], depth: int) -> list[str]:
    """A stage's queues that are full (its next frame would push out the oldest), in words, for
    :func:`stage_status`: a backlog warns before it drops."""
    full = sorted(name or "the vehicle" for name, count in queued.items() if count >= depth)
    return [f"backlog: queue full ({depth} frames) for {', '.join(full)}"] if full else []


def camera_status(requested_hz: float, achieved_hz: float, published: int, new_skipped: int) -> tuple[int, str]:
    """(level, message) of the camera: WARN while it publishes at under half the rate asked (after a
    few frames; a source that cannot keep up, or a starved CPU) or skips undecodable frames; else OK."""
    said = []
    if requested_hz > 0 and published >= 5 and achieved_hz < requested_hz / 2:
        said.append(f"publishing at {achieved_hz:.1f} Hz, asked {requested_hz:g}")
    if new_skipped:
        said.append(f"skipped {new_skipped} undecodable frames in the last period")
    return (WARN, "; ".join(said)) if said else (OK, "running")


def link_status(link_up: bool, throughput_age_s: float | None, stale_after_s: float) -> tuple[int, str]:
    """(level, message) of a network monitor: WARN while the link is down, or while it answers but
    no throughput sample came for ``stale_after_s`` (payload probes unanswered, no frames measured:
    the bandwidth the partitioner reads is old); else OK."""
    if not link_up:
        return WARN, "link down: the next tier does not answer"
    if throughput_age_s is None:
        return OK, "link up (no throughput sample yet)"
    if throughput_age_s > stale_after_s:
        return WARN, f"link up, but the throughput estimate is {throughput_age_s:.0f} s old"
    return OK, "link up"


def latency_per_minute(latencies: Sequence[tuple[float, float]]) -> list[dict]:
    """Per minute of the run (by frame stamp, from the first frame): frames detected and their latency
    percentiles, from (stamp s, total_ms) pairs. Percentiles are numpy's (linear interpolation)."""
    if not latencies:
        return []
    stamps = np.array([stamp for stamp, _ in latencies])
    totals = np.array([total for _, total in latencies])
    minutes = ((stamps - stamps.min()) // 60).astype(int)
    rows = []
    for minute in range(int(minutes.max()) + 1):
        values = totals[minutes == minute]
        if len(values):
            p50, p95, p99 = np.percentile(values, [50, 95, 99])
            rows.append({"minute": minute, "frames": int(len(values)), "p50_ms": round(float(p50), 2),
                         "p95_ms": round(float(p95), 2), "p99_ms": round(float(p99), 2),
                         "max_ms": round(float(values.max()), 2)})
    return rows
