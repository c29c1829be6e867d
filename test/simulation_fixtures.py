"""Shared by the simulation tests: a small real world (the yolov3-tiny profile measured on the
project's 2-core VM and committed, a 3-frames-per-clip video table of real frames, cached) and
scenarios with constant conditions.

The committed profile, not this host's: the tests set up regimes (an edge that cannot keep up at
30 frames/s, a link that makes the cloud dearer than the edge) around its figures, and a profile
measured on a slower or busy host moves those regimes (one measured beside a benchmark, 1.5x
slower, failed six of them)."""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from l2p_ros.policies.baselines import OraclePolicy
from l2p_ros.policies.registry import make_policy
from l2p_ros.simulation.scenarios import Scenario, get_scenario
from l2p_ros.simulation.simulator import SimulationConfig
from l2p_ros.simulation.traces import Trace
from l2p_ros.simulation.video import HIGH_COMPLEXITY_CLIP
from l2p_ros.simulation.world import World, build_world

FRAMES_PER_CLIP = 3  # a few real frames keep the first (uncached) run short


COMMITTED_EDGE_PROFILE = (Path(__file__).resolve().parents[1] / "models" / "profiles"
                          / "yolov3-tiny-416-cpu-t1-vm-2core.yaml")


@functools.lru_cache(maxsize=None)
def small_world() -> World:
    return build_world("yolov3-tiny", edge_profile=COMMITTED_EDGE_PROFILE, frames_per_clip=FRAMES_PER_CLIP,
                       log=lambda *args: None)


def constant_scenario(bandwidth_mbps: float, edge_load: float = 0.0, rtt_ms: float = 20.0,
                      fps: float = 10.0) -> Scenario:
    """The busy street under fixed link and load."""
    def trace(duration_s, rng):
        times = np.array([0.0, duration_s])
        return Trace(times, np.full(2, bandwidth_mbps), np.full(2, rtt_ms), np.full(2, edge_load), "constant")

    return Scenario(f"constant-{bandwidth_mbps}", "constant conditions", 1.0, trace,
                    lambda duration_s, rng: [(0.0, HIGH_COMPLEXITY_CLIP)], fps=fps)


# The policies the bound tests run beside the oracle.
BOUND_POLICIES = ("edge-only", "cloud-only", "heuristic", "greedy", "dads", "dnnsplit", "score")


def scenario_runs(scenario_name: str, fps: float, seed: int, duration_s: float):
    """(scenario, a factory of fresh simulators of it, the logs of BOUND_POLICIES and the oracle on it)."""
    scenario = get_scenario(scenario_name)
    world = small_world().for_scenario(scenario)
    config = SimulationConfig(fps=fps, deadline_ms=scenario.deadline_ms)

    def simulator():
        return world.simulator(scenario, duration_s, seed, config)

    logs = {}
    for name in BOUND_POLICIES:
        policy = make_policy(name, world.policy_model, codec=scenario.codec, image_codec=scenario.image_codec,
                             frame_interval_ms=1e3 / fps)
        logs[name] = simulator().run(policy)
    sim = simulator()
    logs["oracle"] = sim.run(OraclePolicy(sim.true_model, (scenario.codec,), scenario.image_codec))
    return scenario, simulator, logs
