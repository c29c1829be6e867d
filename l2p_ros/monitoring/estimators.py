"""Uplink bandwidth and round-trip-time estimation from probe echoes and observed transfers (ROS-free).

Two kinds of observations feed one :class:`LinkEstimator`:

- Active probes (:mod:`l2p_ros.monitoring.probe`). A probe without payload measures the RTT. A probe
  carrying ``payload_bytes`` goes right behind an empty one and arrives later by the time those
  bytes need on the uplink: ``payload_bits / dispersion`` (the gap between the two arrivals, on
  the echo's clock) is a throughput sample. Without the lead's arrival, the payload probe's RTT over
  the base RTT stands in for the dispersion (the echo returns without the payload, so the downlink
  does not enter), which also counts this host's delays in sending and hearing.
- Passive transfers: the next tier reports when it received a real FeatureMap of ``payload_bytes``
  that the edge stamped when sending. The two stamps come from two clocks, but the empty probes
  measure the same apparent one-way delay (latency plus the clock offset between the same two
  hosts), so ``observed - apparent one-way delay`` is the transfer time with the offset cancelled.
  A frame that waited behind earlier ones shared the link with them: its sample is every byte that
  arrived from the last arrival before it entered the link until its own (on the next tier's
  clock), over that time, as BBR measures a delivery rate. Timed with its own bytes only, a queue
  of frames read as a slow link: 15-25% low on the testbed with frames flowing, and after a drop in
  bandwidth the true rate showed only once the queue had drained. Timed from the arrival right before it instead (a packet train), a frame
  completed by a resent fragment read the link many times too fast: the tbf queue drops, reliable
  DDS resends, and a frame's last fragment may arrive right behind another frame.

The delay subtracted is the smallest of the last ``BASELINE_SAMPLES`` empty probes (the base delay,
as LEDBAT and BBR take it), not their mean: an empty probe that waited behind a frame in the
link's queue, or behind a throttled CPU, would otherwise shorten every transfer time after it
(measured on the testbed: 40 Mbit/s read as 65-97 Mbit/s with the mean).

Every quantity is smoothed by a :class:`RobustEwma`, which also gives its uncertainty.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

__all__ = ["RobustEwma", "LinkEstimator", "LinkState"]

# Outliers are judged only once this many samples have set a level and a spread.
_TRUST_SAMPLES = 3
BASELINE_SAMPLES = 5  # empty probes behind the base delay: one every probe period, so ~2.5 s
# Arrivals (the next tier's clock) remembered to find what else arrived while a transfer was in flight.
ARRIVAL_MEMORY = 64


@dataclass
class RobustEwma:
    """Exponentially weighted mean of a noisy quantity, with the standard deviation of that mean.

    - The first samples are averaged (weight ``1/n``), so the estimate is usable from the first
      sample; after that a new sample weighs ``alpha``.
    - A sample farther than ``outlier_std`` spreads from the mean is an outlier: it moves the mean
      only as far as a sample at that distance would (Huber clipping), so one spike barely shows;
      it counts once the next sample shows it was a spike (not the start of a new level).
    - ``step_samples`` outliers in a row on the same side are a change of level, not noise: the
      estimate restarts from them (and its uncertainty grows again, because it rests on few samples).
    - The spread used to judge outliers is at least ``relative_floor * |mean|`` and
      ``absolute_floor`` (in the quantity's unit): a perfectly steady stream would otherwise call
      its first tiny change an outlier.
    """

    alpha: float = 0.2
    outlier_std: float = 3.0
    step_samples: int = 3
    relative_floor: float = 0.05
    absolute_floor: float = 0.0
    # False: each outlier moves the estimate at once (as before stop 11; the figures documented
    # then were simulated so), instead of once the next sample shows it was a spike.
    hold_level_while_run: bool = True
    samples: int = field(default=0, init=False)  # samples behind the estimate (since the last restart)
    outliers: int = field(default=0, init=False)  # clipped samples, counted since creation
    level_changes: int = field(default=0, init=False)  # restarts, counted since creation
    _mean: float = field(default=math.nan, init=False)
    _variance: float = field(default=0.0, init=False)  # of one sample around the mean
    _run: list[float] = field(default_factory=list, init=False)  # consecutive outliers, same side
    _run_clipped: list[float] = field(default_factory=list, init=False)  # what each counts as if a spike

    def __post_init__(self) -> None:
        if not 0.0 < self.alpha <= 1.0:
            raise ValueError(f"alpha must be in (0, 1], got {self.alpha}")
        if self.outlier_std <= 0 or self.step_samples < 1:
            raise ValueError("outlier_std must be > 0 and step_samples >= 1")

    @property
    def value(self) -> float:
        """The smoothed estimate; NaN before the first sample."""
        return self._mean

    @property
    def changing(self) -> bool:
        """Outliers on one side are waiting to be confirmed as a change of level."""
        return bool(self._run)

    @property
    def suspected(self) -> float:
        """The level the waiting outliers suggest (their mean); NaN when none wait."""
        return sum(self._run) / len(self._run) if self._run else math.nan

    @property
    def std(self) -> float:
        """Standard deviation of :attr:`value`; NaN before two samples.

        For an average of n samples of spread s it is s / sqrt(n); an EWMA of weight alpha behaves
        like an average of (2 - alpha) / alpha samples, so the uncertainty shrinks with samples
        down to that floor and does not vanish on a link that keeps changing.
        """
        if self.samples < 2:
            return math.nan
        effective_samples = min(self.samples, (2.0 - self.alpha) / self.alpha)
        return math.sqrt(self._variance / effective_samples)

    def add(self, x: float) -> bool:
        """Take one sample; returns False when it was clipped as an outlier. Non-finite x is refused."""
        if not math.isfinite(x):
            raise ValueError(f"sample must be finite, got {x}")
        if self.samples >= _TRUST_SAMPLES:
            threshold = self.outlier_std * max(math.sqrt(self._variance), self.relative_floor * abs(self._mean),
                                               self.absolute_floor)
            deviation = x - self._mean
            if abs(deviation) > threshold:
                self.outliers += 1
                if self._run and (self._run[0] > self._mean) != (deviation > 0):
                    self._settle_run()
                self._run.append(x)
                self._run_clipped.append(self._mean + math.copysign(threshold, deviation))
                if len(self._run) >= self.step_samples:
                    self._restart(list(self._run))
                elif not self.hold_level_while_run:
                    self._update(self._run_clipped.pop())
                return False
        self._settle_run()
        self._update(x)
        return True

    def _settle_run(self) -> None:
        """The waiting outliers were spikes, not a new level: they count now, clipped. Until then the
        estimate and its spread stay as they were, so each outlier of a run is judged against the
        same level (measured: updated with the first clipped sample of a drop from 40 to 1 Mbit/s,
        the spread of noisy 40 Mbit/s samples grew enough to take the second for normal, and the
        estimate fell by a fifth per sample instead of restarting: 4 s to adapt)."""
        for clipped in self._run_clipped:
            self._update(clipped)
        self._run.clear()
        self._run_clipped.clear()

    def _update(self, x: float) -> None:
        self.samples += 1
        weight = max(self.alpha, 1.0 / self.samples)
        deviation = x - self._mean if self.samples > 1 else 0.0
        self._mean = x if self.samples == 1 else self._mean + weight * deviation
        # West's incremental weighted variance: exact for the 1/n phase, exponential after it.
        self._variance = (1.0 - weight) * (self._variance + weight * deviation * deviation)

    def restart_at(self, x: float) -> None:
        """A change of level known for certain (not inferred from outliers): the estimate is ``x``."""
        self._restart([x])

    def _restart(self, run: list[float]) -> None:
        self.level_changes += 1
        self.samples = len(run)
        self._mean = sum(run) / len(run)
        self._variance = sum((x - self._mean) ** 2 for x in run) / len(run)
        self._run.clear()  # a new level: no outlier waits any more
        self._run_clipped.clear()


@dataclass(frozen=True)
class LinkState:
    """One snapshot of the uplink estimate; NaN where no observation supports a value yet."""

    bandwidth_mbps: float
    bandwidth_std_mbps: float
    rtt_ms: float
    rtt_std_ms: float
    samples: int  # RTT and throughput samples behind the two estimates
    link_up: bool


def _base(recent: deque[float]) -> float:
    return min(recent) if recent else math.nan


class LinkEstimator:
    """Uplink throughput and RTT of the link to the next tier, and whether it still answers.

    ``timeout_s``: the link is down when nothing (echo or transfer receipt) arrived for that long.
    Times passed in as ``now_s`` are seconds on one monotonic clock of the caller's choice.
    """

    def __init__(self, timeout_s: float = 2.0, alpha: float = 0.2):
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
        self.timeout_s = timeout_s
        self.alpha = alpha
        # Payload transfers that took no longer than an empty probe: the payload is too small for
        # the link's jitter, so they say nothing about throughput.
        self.unresolved = 0
        self.bounded = 0  # times an unanswered payload lowered the estimate
        self.reconnections = 0  # answers after a silence longer than timeout_s
        self._last_answer_s: float | None = None
        self._fresh_estimates()

    def _fresh_estimates(self) -> None:
        """Estimates that know nothing yet (at start, and when the link comes back after being down)."""
        self.rtt_ms = RobustEwma(self.alpha, absolute_floor=0.05)
        # Receive stamp (next tier's clock) minus send stamp (ours) of empty probes: one-way
        # latency plus clock offset; only ever used as a difference, so the offset cancels.
        self.apparent_one_way_ms = RobustEwma(self.alpha, absolute_floor=0.05)
        # Throughput is smoothed in log space, as the simulator's estimator does: its noise is
        # multiplicative and its changes are ratios. Smoothed linearly, samples scattered 16-115 on a
        # 40 Mbit/s link made a drop to 0.25 Mbit/s read as noise (under 3 spreads): the estimate fell
        # by a fifth per sample and took 6.7 s to reach the edge's break-even (testbed, stop 14).
        # Two throughput outliers on one side are a new level: one payload probe comes per second,
        # and a third would put off adapting to a faster link by another second.
        self.log_bandwidth = RobustEwma(self.alpha, step_samples=2, absolute_floor=0.05)
        self._recent_rtt_ms: deque[float] = deque(maxlen=BASELINE_SAMPLES)
        self._recent_one_way_ms: deque[float] = deque(maxlen=BASELINE_SAMPLES)
        # (arrival, bytes, start of its transfer) of recent answers, seconds on the next tier's clock
        self._arrivals: deque[tuple[float, int, float]] = deque(maxlen=ARRIVAL_MEMORY)

    def _answered(self, now_s: float) -> None:
        """An answer arrived. After a silence longer than ``timeout_s`` the link is back (the next tier
        restarted, the vehicle reconnected, perhaps over another link): what was estimated before,
        and the estimate an unanswered probe pushed towards 0 meanwhile, say nothing about it now."""
        if self._last_answer_s is not None and now_s - self._last_answer_s > self.timeout_s:
            self._fresh_estimates()
            self.reconnections += 1
        self._last_answer_s = now_s

    def add_probe(self, payload_bytes: int, rtt_ms: float, apparent_one_way_ms: float, now_s: float,
                  dispersion_ms: float | None = None, received_s: float | None = None) -> bool:
        """An answered probe: empty ones update the RTT, payload ones the throughput, timed by
        ``dispersion_ms`` (its arrival after its lead's, on the echo's clock) when known, else by
        its RTT over the base RTT. ``received_s``: its arrival on the echo's clock, remembered to
        time the transfers that arrive after it.

        Returns False when the observation could not be used (a payload probe before any RTT is
        known, or one not measurably slower than an empty probe).
        """
        self._answered(now_s)
        if payload_bytes == 0:
            self.rtt_ms.add(rtt_ms)
            self.apparent_one_way_ms.add(apparent_one_way_ms)
            self._recent_rtt_ms.append(rtt_ms)
            self._recent_one_way_ms.append(apparent_one_way_ms)
            self._arrived(received_s, 0)
            return True
        if dispersion_ms is not None:
            delivered, started_s = payload_bytes, None
            if received_s is not None:  # what arrived between the lead and the payload shared the link with it
                started_s = received_s - dispersion_ms / 1e3
                delivered += self._delivered_bytes(started_s, received_s)
            used = self._add_throughput(delivered, dispersion_ms)
        else:
            used = self._add_throughput(payload_bytes, rtt_ms - _base(self._recent_rtt_ms))
            started_s = None
        self._arrived(received_s, payload_bytes, started_s)
        return used

    def add_transfer(self, payload_bytes: int, apparent_one_way_ms: float, now_s: float,
                     received_s: float | None = None, behind_unknown: bool = False) -> bool:
        """A real transfer of ``payload_bytes`` that the next tier received ``apparent_one_way_ms``
        (its receive stamp minus our send stamp) after we sent it, at ``received_s`` on its clock
        (when given, what else arrived while it was in flight counts as delivered in that time).
        ``behind_unknown``: something whose arrival is not known yet (a payload probe still
        unanswered) may have been ahead of it on the link, so it is not timed at all.
        Returns False when unusable."""
        self._answered(now_s)
        if payload_bytes <= 0:
            return False
        if behind_unknown:
            self._arrived(received_s, payload_bytes)
            self.unresolved += 1
            return False
        transfer_ms = apparent_one_way_ms - _base(self._recent_one_way_ms)
        delivered = payload_bytes
        if received_s is not None and transfer_ms > 0:
            entered_s = received_s - transfer_ms / 1e3  # when it would have started on an idle link
            started_s = entered_s
            ahead = [entry for entry in self._arrivals if entered_s < entry[0] < received_s]
            if ahead:  # it waited: the link was busy from the last arrival before it entered, or from
                # when it or the first of those ahead of it entered if that is later (an arrival
                # ahead may have entered after it: it overtook a fragment that had to be resent)
                before = [arrival for arrival, _, _ in self._arrivals if arrival <= entered_s]
                start_s = max(min(entered_s, *(entry[2] for entry in ahead)), max(before, default=-math.inf))
                delivered += self._delivered_bytes(start_s, received_s)
                transfer_ms = (received_s - start_s) * 1e3
                started_s = max(entered_s, max(entry[0] for entry in ahead))  # its own turn on the link
            self._arrived(received_s, payload_bytes, started_s)
        else:
            self._arrived(received_s, payload_bytes)
        return self._add_throughput(delivered, transfer_ms)

    def _arrived(self, received_s: float | None, payload_bytes: int, started_s: float | None = None) -> None:
        """An arrival at ``received_s`` of ``payload_bytes`` whose transfer started at ``started_s``
        (default: then; all on the next tier's clock)."""
        if received_s is not None:
            self._arrivals.append((received_s, payload_bytes, received_s if started_s is None else started_s))

    def _delivered_bytes(self, from_s: float, until_s: float) -> int:
        """Bytes known to have arrived after ``from_s`` and before ``until_s`` (next tier's clock)."""
        return sum(size for arrival, size, _ in self._arrivals if from_s < arrival < until_s)

    def add_unanswered(self, payload_bytes: int, elapsed_ms: float) -> bool:
        """``payload_bytes`` sent ``elapsed_ms`` ago are still unanswered, so the link carries them
        no faster than ``payload_bits / (elapsed - base RTT)``: when the estimate is above that bound,
        it drops to it at once (returns True). On a link that just became slow no answer may come
        for seconds, or ever (a queue overflowing); this is how the estimate follows it meanwhile."""
        transfer_ms = elapsed_ms - (_base(self._recent_rtt_ms) if self._recent_rtt_ms else 0.0)
        if payload_bytes <= 0 or transfer_ms <= 0:
            return False
        bound = payload_bytes * 8 / (transfer_ms * 1e3)
        if not bound < self.bandwidth_mbps:  # also False while there is no estimate (NaN)
            return False
        self.log_bandwidth.restart_at(math.log(bound))
        self.bounded += 1
        return True

    def _add_throughput(self, payload_bytes: int, transfer_ms: float) -> bool:
        if math.isnan(transfer_ms):  # no empty probe answered yet: nothing to subtract
            return False
        if transfer_ms <= 0:
            self.unresolved += 1
            return False
        self.log_bandwidth.add(math.log(payload_bytes * 8 / (transfer_ms * 1e3)))  # bits per ms / 1e3 = Mbit/s
        return True

    @property
    def bandwidth_mbps(self) -> float:
        """The smoothed throughput (the geometric mean of the samples' level); NaN before any."""
        return math.exp(self.log_bandwidth.value)

    @property
    def cautious_bandwidth_mbps(self) -> float:
        """The lower of the estimate and a new level its latest samples suggest (not yet confirmed)."""
        log_bandwidth = self.log_bandwidth
        if log_bandwidth.changing:
            return math.exp(min(log_bandwidth.value, log_bandwidth.suspected))
        return self.bandwidth_mbps

    @property
    def bandwidth_std_mbps(self) -> float:
        """Its standard deviation, from that of the log (first order: d exp(x) = exp(x) dx)."""
        return self.bandwidth_mbps * self.log_bandwidth.std

    def link_up(self, now_s: float) -> bool:
        return self._last_answer_s is not None and now_s - self._last_answer_s <= self.timeout_s

    def state(self, now_s: float) -> LinkState:
        return LinkState(bandwidth_mbps=self.bandwidth_mbps, bandwidth_std_mbps=self.bandwidth_std_mbps,
                         rtt_ms=self.rtt_ms.value, rtt_std_ms=self.rtt_ms.std,
                         samples=self.rtt_ms.samples + self.log_bandwidth.samples, link_up=self.link_up(now_s))
