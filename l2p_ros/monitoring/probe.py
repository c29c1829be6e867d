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

__all__ = ["ProbeResult", "ProbeTracker", "sized_payload_bytes"]


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

    def __init__(self, payload_bytes: int, timeout_s: float, payload_timeout_s: float | None = None):
        if payload_bytes <= 0 or timeout_s <= 0:
            raise ValueError(f"payload_bytes and timeout_s must be > 0, got {payload_bytes}, {timeout_s}")
        self.payload_bytes = payload_bytes
        self.timeout_s = timeout_s
        # A payload probe on a link that just became slow takes long, and its late answer is the
        # news: it may take this long (default timeout_s) before it is forgotten.
        self.payload_timeout_s = max(timeout_s, payload_timeout_s or timeout_s)
        self.dropped: Counter[str] = Counter()  # reason -> echoes dropped
        self._next_seq = 0
        self._pending: dict[int, _Sent] = {}
        self._answered: deque[int] = deque(maxlen=self._ANSWERED_MEMORY)

    def payload_in_flight(self) -> bool:
        return any(sent.payload_bytes for sent in self._pending.values())

    def forget_payloads(self) -> int:
        """Give up on every payload probe awaiting its echo (the link went down meanwhile: they are
        lost, and one left pending would hold back the next and bound the new estimate); how many."""
        lost = [seq for seq, sent in self._pending.items() if sent.payload_bytes]
        for seq in lost:
            del self._pending[seq]
        return len(lost)

    def unanswered_payloads(self, monotonic_s: float) -> list[tuple[int, float]]:
        """(payload_bytes, ms since sent) of every payload probe still awaiting its echo."""
        return [(sent.payload_bytes, (monotonic_s - sent.monotonic_s) * 1e3)
                for sent in self._pending.values() if sent.payload_bytes]

    def send(self, monotonic_s: float, wall_s: float, payload_bytes: int | None = None) -> tuple[int, int]:
        """Record a probe sent now; returns its (seq, payload_bytes): :meth:`next`, then :meth:`record`."""
        seq, size = self.next(monotonic_s, payload_bytes)
        self.record(seq, size, monotonic_s, wall_s)
        return seq, size

    def next(self, monotonic_s: float, payload_bytes: int | None = None) -> tuple[int, int]:
        """The next probe's (seq, payload_bytes), to be built and then :meth:`record`-ed right before it
        is sent (building a large probe takes time the link must not be charged for). Odd sequence
        numbers carry ``payload_bytes`` (default: the tracker's), unless a payload probe is still
        unanswered: one at a time, so probes never queue behind each other on a slow link."""
        self._expire(monotonic_s)
        seq = self._next_seq
        self._next_seq += 1
        return seq, 0 if seq % 2 == 0 or self.payload_in_flight() else (payload_bytes or self.payload_bytes)

    def record(self, seq: int, payload_bytes: int, monotonic_s: float, wall_s: float) -> None:
        self._pending[seq] = _Sent(payload_bytes, monotonic_s, wall_s)

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
        for seq, sent in list(self._pending.items()):
            if monotonic_s - sent.monotonic_s > (self.payload_timeout_s if sent.payload_bytes else self.timeout_s):
                del self._pending[seq]


def sized_payload_bytes(bandwidth_mbps: float, share: float, period_s: float, minimum: int, maximum: int) -> int | None:
    """Payload of a throughput probe that, sent every ``period_s``, takes ``share`` of a link of
    ``bandwidth_mbps``; its transfer then lasts ``share * period_s`` at any rate, long enough to
    stand out of the jitter on fast links and cheap on slow ones. None while the rate is unknown."""
    if not bandwidth_mbps > 0:  # NaN too
        return None
    return int(min(max(share * bandwidth_mbps * 1e6 * period_s / 8, minimum), maximum))
