"""The simple policies: fixed cuts, static optimal, greedy cost model (Neurosurgeon), and oracle."""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from l2p_ros.model.graph import INPUT
from l2p_ros.policies.cost_model import CostModel
from l2p_ros.policies.dads import DadsPolicy
from l2p_ros.policies.dnnsplit import profile_candidates
from l2p_ros.policies.score import tiered_partitions
from l2p_ros.policies.types import DEFAULT_IMAGE_CODEC, DEFAULT_TENSOR_CODEC, Partition, Policy, SystemState


def chain_partitions(cut_indices: Iterable[int], codec: str = DEFAULT_TENSOR_CODEC,
                     image_codec: str = DEFAULT_IMAGE_CODEC) -> list[Partition]:
    """Chain cuts as partitions; image offload (-1) gets the image codec."""
    return [Partition.image_offload(image_codec) if k == INPUT else Partition.chain(k, codec)
            for k in cut_indices]


def fastest(cost_model: CostModel, partitions: Sequence[Partition], state: SystemState) -> Partition:
    """The partition of least predicted latency at ``state`` (the first one on ties)."""
    return min(partitions, key=lambda p: cost_model.predict(p, state).total_ms)


class FixedCut(Policy):
    """Always the same partition."""

    name = "fixed"

    def __init__(self, partition: Partition):
        self.partition = partition

    def decide(self, state: SystemState) -> Partition:
        return self.partition


class EdgeOnly(FixedCut):
    name = "edge-only"

    def __init__(self, num_layers: int):
        super().__init__(Partition.edge_only(num_layers))


class CloudOnly(FixedCut):
    """Image offload: the edge sends the (JPEG) frame, the cloud runs everything."""

    name = "cloud-only"

    def __init__(self, image_codec: str = DEFAULT_IMAGE_CODEC):
        super().__init__(Partition.image_offload(image_codec))


class StaticOptimal(FixedCut):
    """The chain cut of least predicted latency under ``nominal`` conditions, chosen once.

    ``candidates``: cut indices to choose from (default: every chain cut).
    """

    name = "static-optimal"

    def __init__(self, cost_model: CostModel, nominal: SystemState, candidates: Iterable[int] | None = None,
                 codec: str = DEFAULT_TENSOR_CODEC, image_codec: str = DEFAULT_IMAGE_CODEC):
        cuts = range(INPUT, cost_model.num_layers) if candidates is None else candidates
        partitions = chain_partitions(cuts, codec, image_codec) + cost_model.bottleneck_partitions()
        super().__init__(fastest(cost_model, partitions, nominal))


class Greedy(Policy):
    """Neurosurgeon: every frame, the candidate cut of least predicted latency at the live estimates.

    ``candidates``: cut indices (default: DNNSplit candidates of the edge profile's shapes). The
    candidates are predicted together (:class:`PartitionTable`); ties go to the first.
    """

    name = "greedy"

    def __init__(self, cost_model: CostModel, candidates: Iterable[int] | None = None,
                 codec: str = DEFAULT_TENSOR_CODEC, image_codec: str = DEFAULT_IMAGE_CODEC):
        self.cost_model = cost_model
        if candidates is None:
            candidates = profile_candidates(cost_model.graph, cost_model.edge_profile)
        self.partitions = chain_partitions(candidates, codec, image_codec) + cost_model.bottleneck_partitions()
        self.table = cost_model.table(self.partitions)

    def decide(self, state: SystemState) -> Partition:
        return self.partitions[int(np.argmin(self.table.predict(state).total_ms))]


class OraclePolicy(Policy):
    """The fastest partition of the whole layer DAG (chain cuts included) under the TRUE state,
    and in three tiers of every (i, j) pair of chain cuts too.

    Myopic, so a reference and not a bound: it knows the true conditions (``cost_model`` should be
    the one the simulator scores frames with, true payload sizes included) but takes the fastest
    partition for the frame in front of it, charging the vehicle's queue and none of the link's or
    the cloud's; where frames queue, a policy that spreads them over edge and link beats it
    (:mod:`l2p_ros.simulation.bound` is the lower bound). The DADS light-load min cut is exact for total latency, so it is solved once per
    codec; DADS places on two tiers, so a three-tier model also searches the pairs, as a table.
    """

    name = "oracle"
    needs_true_state = True

    def __init__(self, cost_model: CostModel, codecs: Sequence[str] = (DEFAULT_TENSOR_CODEC,),
                 image_codec: str = DEFAULT_IMAGE_CODEC):
        self.cost_model = cost_model
        self.surgeons = [DadsPolicy(cost_model, float("inf"), "light", codec, image_codec) for codec in codecs]
        self.tiered = None
        if cost_model.has_fog:
            cuts = range(INPUT, cost_model.num_layers)
            self.tiered = cost_model.table([p for codec in codecs for p in tiered_partitions(
                cuts, cost_model.num_layers, True, codec, image_codec) if p.fog_until_layer is not None])

    def decide(self, state: SystemState) -> Partition:
        candidates = [surgeon.decide(state) for surgeon in self.surgeons] + self.cost_model.bottleneck_partitions()
        if self.tiered is not None:
            candidates.append(self.tiered.partitions[int(np.argmin(self.tiered.predict(state).total_ms))])
        return fastest(self.cost_model, candidates, state)
