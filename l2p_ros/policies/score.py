"""Weighted score of edge energy, total energy and latency under a latency cap, over two- and
three-tier cuts, re-evaluated periodically (the adaptive three-tier partitioning work).

Candidates come from DNNSplit's chain cuts: every two-tier cut ``i`` (edge only included) and,
when the cost model has a fog, every ``(i, j)`` with ``i < j`` both candidates (the fog runs
i+1..j; ``j`` may be the last layer, leaving the cloud only post-processing). Every
``period_frames`` frames the policy predicts them all at the current state and keeps, until the
next evaluation, the feasible one (latency <= ``max_latency_ms``) of least

    w_edge * E_edge / min E_edge + w_total * E_total / min E_total + w_latency * L / min L,

each term relative to its best feasible value, so the weights trade ratios, not units. When no
candidate meets the cap it takes the fastest.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from l2p_ros.model.graph import INPUT
from l2p_ros.policies.cost_model import CostModel
from l2p_ros.policies.dnnsplit import profile_candidates
from l2p_ros.policies.types import DEFAULT_IMAGE_CODEC, DEFAULT_TENSOR_CODEC, Partition, Policy, SystemState


@dataclass(frozen=True)
class ScoreWeights:
    """Weights (>= 0, not all 0) of the score's terms; equal by default: no preference."""

    edge_energy: float = 1 / 3
    total_energy: float = 1 / 3
    latency: float = 1 / 3

    def __post_init__(self) -> None:
        values = (self.edge_energy, self.total_energy, self.latency)
        if min(values) < 0 or sum(values) == 0:
            raise ValueError(f"score weights must be >= 0 and not all 0: {self}")


def tiered_partitions(cuts: Iterable[int], num_layers: int, three_tier: bool,
                      codec: str = DEFAULT_TENSOR_CODEC, image_codec: str = DEFAULT_IMAGE_CODEC) -> list[Partition]:
    """Two-tier partitions at ``cuts`` and, with ``three_tier``, every ``(i, j)`` of them, i < j."""
    cuts = sorted(set(cuts))
    partitions = []
    for i in cuts:
        first_codec = image_codec if i == INPUT else codec
        partitions.append(Partition(cut_after_layer=i, codec=first_codec))
        if three_tier and i < num_layers - 1:
            partitions += [Partition(cut_after_layer=i, fog_until_layer=j, codec=first_codec) for j in cuts if j > i]
    return partitions


class ScorePolicy(Policy):
    """See the module docstring. ``candidates``: chain cut indices (default: DNNSplit's)."""

    name = "score"

    def __init__(self, cost_model: CostModel, max_latency_ms: float, weights: ScoreWeights = ScoreWeights(),
                 period_frames: int = 10, candidates: Iterable[int] | None = None,
                 codec: str = DEFAULT_TENSOR_CODEC, image_codec: str = DEFAULT_IMAGE_CODEC):
        if period_frames < 1:
            raise ValueError(f"period_frames must be >= 1, got {period_frames}")
        if candidates is None:
            candidates = profile_candidates(cost_model.graph, cost_model.edge_profile)
        self.max_latency_ms = max_latency_ms
        self.weights = weights
        self.period_frames = period_frames
        self.table = cost_model.table(tiered_partitions(candidates, cost_model.num_layers, cost_model.has_fog,
                                                        codec, image_codec) + cost_model.bottleneck_partitions())
        self.reset()

    @property
    def partitions(self) -> tuple[Partition, ...]:
        return self.table.partitions

    def reset(self) -> None:
        self._choice: Partition | None = None
        self._frames_since_evaluation = 0

    def decide(self, state: SystemState) -> Partition:
        if self._choice is None or self._frames_since_evaluation >= self.period_frames:
            self._choice = self.evaluate(state)
            self._frames_since_evaluation = 0
        self._frames_since_evaluation += 1
        return self._choice

    def evaluate(self, state: SystemState) -> Partition:
        """The choice at ``state`` now, whatever the period."""
        prediction = self.table.predict(state)
        latency_ms = prediction.total_ms
        feasible = np.flatnonzero(latency_ms <= self.max_latency_ms)
        if not feasible.size:
            return self.partitions[int(np.argmin(latency_ms))]
        score = np.zeros(feasible.size)
        for weight, values in ((self.weights.edge_energy, prediction.edge_energy_j),
                               (self.weights.total_energy, prediction.total_energy_j),
                               (self.weights.latency, latency_ms)):
            if weight:
                values = values[feasible]
                best = values.min()
                score += weight * (values / best if best > 0 else values)  # 0 only with a 0 W power model
        return self.partitions[int(feasible[np.argmin(score)])]
