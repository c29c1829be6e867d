"""The link probe protocol without ROS: numbering probes, matching echoes, measuring the round trip.

The prober sends probes that alternate between empty (RTT) and ``payload_bytes`` of filler
(throughput); the echo service returns each one without its payload, with the time it received
it on its own clock. The prober trusts only its own records of what it sent and when: an echo is
matched by sequence number, and dropped (and counted) when it is a duplicate, late (its probe is
older than ``timeout_s``), unknown, or claims a payload size that was not sent.
"""
from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass

__all__ = ["ProbeResult", "ProbeTracker"]


@dataclass(frozen=True)
class ProbeResult:
    """One answered probe."""

    seq: int
    payload_bytes: int
    rtt_ms: float  # send to echo arrival, on the prober's monotonic clock
    apparent_one_way_ms: float  # echo's receive stamp (its clock) minus our send stamp (our clock)


@dataclass(frozen=True)
class _Sent:
    payload_bytes: int
    monotonic_s: float
    wall_s: float


class ProbeTracker:
    """Sequence numbers and payload sizes of outgoing probes, and matching of their echoes.

    ``payload_bytes``: size of every second probe (even sequence numbers are empty).
    ``timeout_s``: an echo arriving later than this after its probe is dropped as late.
    """

    # Answered sequence numbers remembered to tell duplicates from late echoes.
    _ANSWERED_MEMORY = 1024

    def __init__(self, payload_bytes: int, timeout_s: float):
        if payload_bytes <= 0 or timeout_s <= 0:
            raise ValueError(f"payload_bytes and timeout_s must be > 0, got {payload_bytes}, {timeout_s}")
        self.payload_bytes = payload_bytes
        self.timeout_s = timeout_s
        self.dropped: Counter[str] = Counter()  # reason -> echoes dropped
        self._next_seq = 0
        self._pending: dict[int, _Sent] = {}
        self._answered: deque[int] = deque(maxlen=self._ANSWERED_MEMORY)

    def send(self, monotonic_s: float, wall_s: float) -> tuple[int, int]:
        """Record a probe sent now; returns its (seq, payload_bytes)."""
        self._expire(monotonic_s)
        seq = self._next_seq
        self._next_seq += 1
        payload_bytes = 0 if seq % 2 == 0 else self.payload_bytes
        self._pending[seq] = _Sent(payload_bytes, monotonic_s, wall_s)
        return seq, payload_bytes

    def match(self, seq: int, payload_bytes: int, received_wall_s: float, monotonic_s: float) -> ProbeResult | None:
        """An echo arrived at ``monotonic_s``; returns its result, or None when it is dropped.

        ``received_wall_s`` is the echo service's receive stamp; ``payload_bytes`` the size the echo
        says its probe carried.
        """
        self._expire(monotonic_s)
        sent = self._pending.get(seq)
        if sent is None:
            reason = "duplicate" if seq in self._answered else ("unknown" if seq >= self._next_seq else "late")
            self.dropped[reason] += 1
            return None
        if payload_bytes != sent.payload_bytes:
            self.dropped["mismatched"] += 1
            return None
        del self._pending[seq]
        self._answered.append(seq)
        return ProbeResult(seq=seq, payload_bytes=sent.payload_bytes, rtt_ms=(monotonic_s - sent.monotonic_s) * 1e3,
                           apparent_one_way_ms=(received_wall_s - sent.wall_s) * 1e3)

    def _expire(self, monotonic_s: float) -> None:
        # Probes are sent in order, so the oldest pending ones come first.
        for seq in list(self._pending):
            if monotonic_s - self._pending[seq].monotonic_s <= self.timeout_s:
                break
            del self._pending[seq]
