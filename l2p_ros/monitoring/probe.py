"""The link probe protocol without ROS: numbering probes, matching echoes, measuring the round trip.

The prober sends an empty probe (RTT) every period and, every second period, a probe with
``payload_bytes`` of filler (throughput) right behind it; the echo service returns each one
without its payload, with the time it received it on its own clock. The payload probe's transfer
is the time between the two arrivals on the echo's clock (a packet pair): neither this host's
delays before it sends, nor its delays in hearing the echoes, nor any clock offset count. On an
edge whose CPU is shared by the camera, the network and other work, those delays had made a
1 Mbit/s link read 0.25-0.45 (measured on the testbed at 0.3 of a core). The prober trusts only
its own records of what it sent and when: an echo is matched by sequence number, and dropped (and
counted) when it is a duplicate, late (its probe is older than ``timeout_s``), unknown, or claims
a payload size that was not sent.
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
    # A payload probe's arrival minus its lead's, both on the echo's clock; None when the lead's
    # echo did not come first (lost, or no lead)
    dispersion_ms: float | None = None


@dataclass(frozen=True)
class _Sent:
    payload_bytes: int
    monotonic_s: float
    wall_s: float
    lead: int | None = None  # a payload probe's: the empty probe sent right before it


class ProbeTracker:
    """Sequence numbers and payload sizes of outgoing probes, and matching of their echoes.

    ``payload_bytes``: size of the payload probes (unless :meth:`next_probes` is given another).
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
        self._calls = 0
        self._pending: dict[int, _Sent] = {}
        self._answered: deque[int] = deque(maxlen=self._ANSWERED_MEMORY)
        self._lead_received: dict[int, float] = {}  # lead seq -> its echo's receive stamp (wall s)

    def payload_in_flight(self) -> bool:
        return any(sent.payload_bytes for sent in self._pending.values())

    def payload_pending_since(self, wall_s: float) -> bool:
        """A payload probe sent before ``wall_s`` still awaits its echo: a transfer sent at
        ``wall_s`` may have waited behind it on the link."""
        return any(sent.payload_bytes and sent.wall_s < wall_s for sent in self._pending.values())

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

    def send(self, monotonic_s: float, wall_s: float, payload_bytes: int | None = None,
             confirm: bool = False) -> list[tuple[int, int]]:
        """Record the probes sent now; returns their (seq, payload_bytes): :meth:`next_probes`, then
        :meth:`record` for each."""
        probes = self.next_probes(monotonic_s, payload_bytes, confirm)
        for seq, size in probes:
            self.record(seq, size, monotonic_s, wall_s)
        return probes

    def next_probes(self, monotonic_s: float, payload_bytes: int | None = None,
                    confirm: bool = False, payload: bool = True) -> list[tuple[int, int]]:
        """The probes to send now, in order, as (seq, payload_bytes): an empty one, and on every
        second call a payload probe (``payload_bytes``, default the tracker's) right behind it,
        unless one is still unanswered: one at a time, so probes never queue behind each other on a
        slow link. ``confirm``: an extra pair now, out of turn (to confirm a sample that suggests
        a new level at once, rather than a second later). ``payload=False``: no payload probe this
        time (real transfers measure the link). Build them, then :meth:`record` each right before
        it is sent (building a large probe takes time the link must not be charged for)."""
        self._expire(monotonic_s)
        if not confirm:
            self._calls += 1
        probes = [(self._next_seq, 0)]
        self._next_seq += 1
        if payload and (confirm or self._calls % 2 == 0) and not self.payload_in_flight():
            probes.append((self._next_seq, payload_bytes or self.payload_bytes))
            self._next_seq += 1
        return probes

    def record(self, seq: int, payload_bytes: int, monotonic_s: float, wall_s: float) -> None:
        """A probe sent now; a payload probe's lead is the empty probe recorded just before it."""
        lead = seq - 1 if payload_bytes and (seq - 1) in self._pending else None
        self._pending[seq] = _Sent(payload_bytes, monotonic_s, wall_s, lead)

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
        dispersion_ms = None
        if sent.payload_bytes:
            lead_received_s = self._lead_received.pop(sent.lead, None)
            if lead_received_s is not None:
                dispersion_ms = (received_wall_s - lead_received_s) * 1e3
        elif any(other.lead == seq for other in self._pending.values()):
            self._lead_received[seq] = received_wall_s
        return ProbeResult(seq=seq, payload_bytes=sent.payload_bytes, rtt_ms=(monotonic_s - sent.monotonic_s) * 1e3,
                           apparent_one_way_ms=(received_wall_s - sent.wall_s) * 1e3, dispersion_ms=dispersion_ms)

    def _expire(self, monotonic_s: float) -> None:
        for seq, sent in list(self._pending.items()):
            if monotonic_s - sent.monotonic_s > (self.payload_timeout_s if sent.payload_bytes else self.timeout_s):
                del self._pending[seq]
        leads = {sent.lead for sent in self._pending.values()}
        for seq in [seq for seq in self._lead_received if seq not in leads]:
            del self._lead_received[seq]


def sized_payload_bytes(bandwidth_mbps: float, share: float, period_s: float, minimum: int, maximum: int) -> int | None:
    """Payload of a throughput probe that, sent every ``period_s``, takes ``share`` of a link of
    ``bandwidth_mbps``; its transfer then lasts ``share * period_s`` at any rate, long enough to
    stand out of the jitter on fast links and cheap on slow ones. None while the rate is unknown."""
    if not bandwidth_mbps > 0:  # NaN too
        return None
    return int(min(max(share * bandwidth_mbps * 1e6 * period_s / 8, minimum), maximum))
