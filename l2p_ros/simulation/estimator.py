"""What the monitors would believe about the link and the edge at a given trace time.

The live pipeline's monitors sample the link (probes) and the edge load periodically and smooth
the samples with :class:`l2p_ros.monitoring.estimators.RobustEwma`; a policy decides from those
estimates, which lag the truth and carry measurement noise. :class:`EwmaEstimator` reproduces
that on a trace: every ``probe_period_s`` it takes the true values, adds noise, and feeds the same
RobustEwma the live monitors use. Probe times and noise do not depend on the policy, so every
policy run on one trace and seed sees exactly the same estimates.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from l2p_ros.monitoring.estimators import RobustEwma
from l2p_ros.simulation.traces import Trace


@dataclass(frozen=True)
class EstimatorConfig:
    """``probe_period_s``: seconds between samples; ``alpha``: EWMA weight of a new sample;
    ``bandwidth_noise``: relative std of a bandwidth sample (log-normal); ``rtt_noise_ms`` and
    ``load_noise``: absolute std of an RTT (ms) and a load (fraction) sample. ``perfect``: no lag
    and no noise (the estimate is the true value at the frame's time)."""

    probe_period_s: float = 0.5
    alpha: float = 0.2
    bandwidth_noise: float = 0.15
    rtt_noise_ms: float = 2.0
    load_noise: float = 0.03
    perfect: bool = False
    hold_level_while_run: bool = True  # RobustEwma's; False: as the monitors were before stop 11

    def __post_init__(self) -> None:
        if self.probe_period_s <= 0 or not 0 < self.alpha <= 1:
            raise ValueError(f"need probe_period_s > 0 and 0 < alpha <= 1: {self}")
        if min(self.bandwidth_noise, self.rtt_noise_ms, self.load_noise) < 0:
            raise ValueError(f"noise levels must be >= 0: {self}")


class EwmaEstimator:
    """Estimates ``(bandwidth_mbps, rtt_ms, edge_load)`` at increasing times of one trace."""

    def __init__(self, trace: Trace, config: EstimatorConfig, rng: np.random.Generator):
        self.trace = trace
        self.config = config
        self.rng = rng
        # Bandwidth is smoothed in log space: a step from 50 to 5 Mbit/s is the same kind of
        # change as one from 5 to 0.5, and the noise is multiplicative.
        hold = config.hold_level_while_run
        self.log_bandwidth = RobustEwma(config.alpha, absolute_floor=0.05, hold_level_while_run=hold)
        self.rtt_ms = RobustEwma(config.alpha, absolute_floor=0.5, hold_level_while_run=hold)
        self.edge_load = RobustEwma(config.alpha, absolute_floor=0.02, hold_level_while_run=hold)
        self.next_probe_s = 0.0

    def estimate(self, t_s: float) -> tuple[float, float, float]:
        """Estimates at ``t_s`` from every probe at or before it (calls must not go back in time)."""
        if self.config.perfect:
            return self.trace.at(t_s)
        while self.next_probe_s <= t_s:
            self._probe(self.next_probe_s)
            self.next_probe_s += self.config.probe_period_s
        return (math.exp(self.log_bandwidth.value), max(self.rtt_ms.value, 0.0),
                min(max(self.edge_load.value, 0.0), 1.0))

    def _probe(self, t_s: float) -> None:
        bandwidth, rtt, load = self.trace.at(t_s)
        noise = self.rng.standard_normal(3)
        # A dead link reads as a trickle: log(0) has no estimate, and 0.01 Mbit/s is as unusable.
        self.log_bandwidth.add(math.log(max(bandwidth, 0.01)) + self.config.bandwidth_noise * noise[0])
        self.rtt_ms.add(rtt + self.config.rtt_noise_ms * noise[1])
        self.edge_load.add(load + self.config.load_noise * noise[2])
