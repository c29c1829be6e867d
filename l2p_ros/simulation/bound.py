"""A lower bound on every policy's latency, frame by frame, in one simulated run.

The oracle (:class:`~l2p_ros.policies.baselines.OraclePolicy`) is myopic: it takes the fastest
partition for the frame in front of it, charging the vehicle's queue but not the link's or the
cloud's, and a policy that keeps those queues short beats it (at 20 frames/s DADS and the
heuristic do). It is a reference policy, not a bound.

The bound: every frame played alone, each server idle when it arrives, with the fastest of the
partitions any policy here can choose: every chain cut with the scenario's codec, image offload,
edge only, the learned bottlenecks, the DAG min cut for the frame's true conditions (and, with a
fog, the best (i, j) pair). Why no policy goes below it on any frame it processes: each server is
FIFO and a frame's finish time never falls when it starts later (its work is fixed, the rates are
positive or zero), so with any partition, waiting for a busy server or for better conditions only
ends later; and the min cut is the fastest closed set of the DAG whenever the conditions hold
through the frame (DADS's light-load cut is exact for total latency). Where the conditions change
while a frame is in flight, a DAG partition other than the min cut could be faster by the
difference; chain cuts, which every policy here chooses from on this model, are exact either way.

Hand-written: the bound is specific to this simulator's servers; no library states it.
"""
from __future__ import annotations

import numpy as np

from l2p_ros.policies.baselines import OraclePolicy, chain_partitions
from l2p_ros.policies.types import INPUT, Partition
from l2p_ros.simulation.simulator import Simulator


def candidate_partitions(sim: Simulator, codec: str, image_codec: str) -> list[Partition]:
    """Every chain partition (image offload, each cut, edge only) and the bottlenecks."""
    model = sim.true_model
    return chain_partitions(range(INPUT, model.num_layers), codec, image_codec) + model.bottleneck_partitions()


def frame_lower_bounds(sim: Simulator, codec: str, image_codec: str) -> np.ndarray:
    """Per frame of ``sim`` (a fresh simulator, nothing played yet), the least latency in ms any
    policy can reach for it (module docstring). ``sim`` is used for its truth only."""
    chain = candidate_partitions(sim, codec, image_codec)
    oracle = OraclePolicy(sim.true_model, (codec,), image_codec)
    bounds = np.empty(sim.num_frames)
    for n in range(sim.num_frames):
        sim.true_model_for(n)  # the oracle predicts with this frame's own payloads
        candidates = chain + [oracle.decide(sim.true_state(n))]
        bounds[n] = min(sim.unqueued_latency_ms(partition, n) for partition in candidates)
    return bounds
