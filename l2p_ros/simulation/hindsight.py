"""The hindsight optimum of a simulated run: the least total latency of any schedule of partitions,
knowing the whole trace, with every queue (edge, uplink, fog, fog link, cloud) accounted for.

The per-frame bound (:mod:`l2p_ros.simulation.bound`) plays each frame on idle servers, so it is
loose wherever frames queue. Here the frames are played in order through the simulator's own
servers (:meth:`Simulator._play`), for every choice of partition per frame: a dynamic programme
whose state after frame n is the tuple of the servers' next free times. Exact, because a schedule
can be dropped once another reaches the same frame with no more total latency and every server
free no later: each server is FIFO and a frame's finish never falls when it starts later (the
simulator's ``unqueued_latency_ms`` argument), so every later frame does at least as well after
the other. What survives is the Pareto front of (total latency, free times); nothing else is pruned.

Windows: where the front outgrows ``max_states`` (long runs, many candidates: three tiers try every
(i, j) pair, about 350, and their five servers keep larger fronts), the run is cut into
windows and each window starts again from idle servers. Idle is no later than any state the
window could really start from, so each window's optimum is at most what any schedule spends on
its frames, and their sum is a proven lower bound on the whole run's optimum (a window of one
frame is the per-frame bound). One window is the exact optimum; the result says which it is.

What the candidates cover: every closed edge set of the layer DAG (chain cuts, image offload,
edge only and every DAG partition DADS can choose; 47 for yolov3-tiny) with the scenario's codec,
the learned bottlenecks, and with a fog every (i, j) pair of chain cuts; for a DAG with too many
closed sets (yolov3), the chain partitions and the true-state min cut, as the per-frame bound.
Every frame is processed: the simulator's ``max_vehicle_queue`` skipping is relaxed (a schedule
that skips frames is not compared), and ``live_edge`` (latest frame wins) is not modelled.

Hand-written: the state and its dominance are this simulator's; no library solves it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from l2p_ros.policies.baselines import OraclePolicy
from l2p_ros.policies.dads import DadsPolicy
from l2p_ros.policies.score import tiered_partitions
from l2p_ros.policies.types import INPUT, Partition
from l2p_ros.simulation.bound import candidate_partitions
from l2p_ros.simulation.simulator import Simulator

# Frames played per frame of the run (front size x candidates) before a new window starts: bounds
# time and memory (about 0.3 s a frame on this VM at the limit; 47 candidates: fronts up to 425).
PLAY_BUDGET = 20_000
CLOSED_SET_LIMIT = 2000  # DAGs with more closed edge sets use chain cuts and the min cut instead


@dataclass(frozen=True)
class HindsightResult:
    latency_ms: np.ndarray  # per frame, in the best schedule found (the window optimum's)
    partitions: list[Partition]  # per frame, that schedule's choice
    windows: int  # 1: the exact optimum; more: a lower bound (windows restarted from idle servers)
    candidates: int  # partitions tried per frame (the DAG-wide set; plus the min cut where it is not)

    @property
    def exact(self) -> bool:
        return self.windows == 1

    @property
    def mean_ms(self) -> float:
        return float(np.mean(self.latency_ms))


def hindsight_candidates(sim: Simulator, codec: str, image_codec: str) -> tuple[list[Partition], bool]:
    """The partitions every frame may take, and whether they are every closed set of the DAG (when
    not, the caller adds each frame's true-state min cut)."""
    model = sim.true_model
    surgeon = DadsPolicy(model, float("inf"), "light", codec, image_codec)
    try:
        surgeon.surgery.closed_set_limit = CLOSED_SET_LIMIT
        sets = surgeon.surgery.closed_sets.sets
    except ValueError:  # too many closed sets to try them all
        sets = None
    if sets is None:
        partitions = candidate_partitions(sim, codec, image_codec)
    else:
        partitions = list(dict.fromkeys(surgeon.to_partition(s) for s in sets)) + model.bottleneck_partitions()
    if model.has_fog:
        cuts = range(INPUT, model.num_layers)
        partitions += [p for p in tiered_partitions(cuts, model.num_layers, True, codec, image_codec)
                       if p.fog_until_layer is not None]
    return list(dict.fromkeys(partitions)), sets is not None


def _pareto(costs: np.ndarray, free: np.ndarray) -> np.ndarray:
    """Indices of the states no other state dominates (no more cost, every server free no later;
    of equal states the first is kept)."""
    order = np.lexsort((*free.T[::-1], costs))
    keep = np.empty(len(order), dtype=int)
    kept_free = np.empty_like(free)
    kept = 0
    for i in order:  # by cost: a state can only be dominated by one kept before it
        if kept and (kept_free[:kept] <= free[i]).all(axis=1).any():
            continue
        keep[kept], kept_free[kept] = i, free[i]
        kept += 1
    return keep[:kept]


def hindsight_optimum(sim: Simulator, codec: str, image_codec: str, max_states: int | None = None,
                      candidates: list[Partition] | None = None, frames: int | None = None,
                      on_frames=None) -> HindsightResult:
    """The least total latency over ``sim``'s frames (a fresh simulator, nothing played yet; used for
    its truth only) with every queue accounted (module docstring); ``frames``: its first frames only
    (what any policy does on them depends on them alone); ``candidates``: only these partitions
    (default :func:`hindsight_candidates`); ``max_states``: the largest front before a new window
    (default: :data:`PLAY_BUDGET` over the candidates); ``on_frames(k)``: progress."""
    if sim.config.fleet is not None or sim.config.live_edge:
        raise ValueError("the hindsight optimum is for a vehicle alone with its cloud and a FIFO edge "
                         "(no fleet, no live_edge): their states are not a tuple of free times")
    if candidates is None:
        candidates, complete = hindsight_candidates(sim, codec, image_codec)
    else:
        complete = True
    oracle = None if complete else OraclePolicy(sim.true_model, (codec,), image_codec)
    if max_states is None:
        max_states = max(8, PLAY_BUDGET // (len(candidates) + (0 if complete else 1)))
    fps = sim.config.fps
    total = sim.num_frames if frames is None else min(frames, sim.num_frames)
    latency = np.empty(total)
    chosen: list[Partition] = []
    windows = 0
    n = 0
    while n < total:
        windows += 1
        # One window: states are (total latency, free times); each keeps how it got there.
        costs = np.zeros(1)
        free = np.zeros((1, 5))
        paths: list[tuple] = [()]
        start = n
        while n < total:
            t = n / fps
            sim.true_model_for(n)  # the true model now holds this frame's own payloads
            row = int(sim.rows[n])
            options = candidates if complete else candidates + [oracle.decide(sim.true_state(n))]
            new_costs, new_free, new_paths = [], [], []
            for k, state in enumerate(free):
                for partition in options:
                    played = sim._play(partition, t, row, tuple(state))
                    new_costs.append(costs[k] + played.latency_ms)
                    new_free.append(played.free_s)
                    new_paths.append((paths[k], partition, played.latency_ms))
            new_costs, new_free = np.array(new_costs), np.array(new_free)
            keep = _pareto(new_costs, new_free)
            if len(keep) > max_states and n > start:
                break  # this frame starts the next window, from idle servers
            costs, free, paths = new_costs[keep], new_free[keep], [new_paths[i] for i in keep]
            n += 1
            if on_frames:
                on_frames(1)
        best = int(np.argmin(costs))
        window = []
        path = paths[best]
        while path:
            path, partition, ms = path
            window.append((partition, ms))
        window.reverse()
        latency[start:n] = [ms for _, ms in window]
        chosen += [partition for partition, _ in window]
    return HindsightResult(latency, chosen, windows, len(candidates))
