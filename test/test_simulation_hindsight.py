"""The hindsight optimum (l2p_ros.simulation.hindsight): equal to brute force over every schedule on
short runs, never above any policy that processed every frame, never below the per-frame bound,
and, cut into windows, still a bound."""
import itertools

import numpy as np
import pytest

from l2p_ros.policies.baselines import OraclePolicy
from l2p_ros.policies.types import Partition
from l2p_ros.simulation.bound import frame_lower_bounds
from l2p_ros.simulation.hindsight import hindsight_candidates, hindsight_optimum
from l2p_ros.simulation.scenarios import get_scenario
from l2p_ros.simulation.simulator import SimulationConfig
from test.simulation_fixtures import constant_scenario, scenario_runs, small_world

def _brute_force(sim_factory, candidates) -> float:
    """The least total latency over every sequence of ``candidates``, each played in full."""
    best = np.inf
    frames = sim_factory().num_frames
    for schedule in itertools.product(candidates, repeat=frames):
        sim = sim_factory()
        total = 0.0
        for partition in schedule:
            total += sim.step(partition).latency_ms
        assert sim.done  # no frame skipped: the optimum processes every frame too
        best = min(best, total)
    return best


@pytest.mark.parametrize("bandwidth_mbps, fps", [(8.0, 20.0), (2.0, 10.0), (30.0, 30.0)])
def test_the_optimum_equals_brute_force_over_every_schedule(bandwidth_mbps, fps):
    """Six frames arriving faster than any one partition clears them, four partitions (image, a
    middle cut, a late cut, edge only): 4,096 schedules played through the simulator itself."""
    scenario = constant_scenario(bandwidth_mbps, fps=fps)
    world = small_world()
    config = SimulationConfig(fps=fps, max_vehicle_queue=100)

    def sim_factory():
        return world.simulator(scenario, 6 / fps, 0, config)

    num_layers = world.policy_model.num_layers
    candidates = [Partition.image_offload(scenario.image_codec), Partition.chain(7, scenario.codec),
                  Partition.chain(13, scenario.codec), Partition.edge_only(num_layers)]
    result = hindsight_optimum(sim_factory(), scenario.codec, scenario.image_codec, candidates=candidates)
    assert result.exact and len(result.latency_ms) == sim_factory().num_frames == 6
    assert result.latency_ms.sum() == pytest.approx(_brute_force(sim_factory, candidates), rel=1e-9)
    # The schedule it reports plays to exactly its latencies.
    sim = sim_factory()
    played = [sim.step(partition).latency_ms for partition in result.partitions]
    assert np.allclose(played, result.latency_ms)


@pytest.mark.parametrize("scenario_name, fps, seed", [("l2p-paper", 20.0, 1), ("l2p-paper", 30.0, 2),
                                                      ("three-tier-throttle", 20.0, 0)])
def test_no_policy_beats_the_optimum_nor_is_it_below_the_per_frame_bound(scenario_name, fps, seed):
    duration_s = 3.0 if scenario_name == "l2p-paper" else 1.0  # three tiers: ~350 candidates a frame
    scenario, simulator, logs = scenario_runs(scenario_name, fps, seed, duration_s)
    result = hindsight_optimum(simulator(), scenario.codec, scenario.image_codec)
    per_frame = frame_lower_bounds(simulator(), scenario.codec, scenario.image_codec)
    assert result.exact or scenario.fog is not None, result.windows  # three tiers: windows, a bound
    assert result.latency_ms.sum() >= per_frame.sum() - 1e-6
    compared = 0
    for name, log in logs.items():
        if log.processed.all():  # a policy that skipped frames processed another set
            compared += 1
            assert np.nansum(log.latency_ms) >= result.latency_ms.sum() - 1e-6, name
    assert compared >= 4


def test_where_frames_queue_the_optimum_is_above_the_per_frame_bound_and_below_the_myopic_oracle():
    """An 8 Mbit/s link at 30 frames/s: alone, each frame is fastest on the edge (about 44 ms), but the
    edge cannot finish one every 33 ms; the optimum spreads frames over edge and link, which the
    per-frame bound cannot see and the myopic oracle (charging only the vehicle's queue) does less
    well (on the committed profile: optimum 46.1 ms mean, bound 41.6, oracle 48.0)."""
    scenario = constant_scenario(8.0, fps=30.0)
    world = small_world()
    config = SimulationConfig(fps=30.0, max_vehicle_queue=1000)

    def simulator():
        return world.simulator(scenario, 3.0, 0, config)

    result = hindsight_optimum(simulator(), scenario.codec, scenario.image_codec)
    per_frame = frame_lower_bounds(simulator(), scenario.codec, scenario.image_codec)
    sim = simulator()
    oracle = sim.run(OraclePolicy(sim.true_model, (scenario.codec,), scenario.image_codec))
    assert result.exact and oracle.processed.all()
    assert result.latency_ms.sum() > per_frame.sum() * 1.05
    assert oracle.latency_ms.sum() > result.latency_ms.sum() * 1.03
    assert len({p.name(world.graph.num_layers) for p in result.partitions}) >= 2  # it mixes partitions


def test_windows_restarted_from_idle_servers_are_a_bound_between_the_two():
    """Forced into windows by a small state budget: the sum is still at most the exact optimum and
    at least the per-frame bound."""
    scenario = get_scenario("l2p-paper")
    world = small_world().for_scenario(scenario)
    config = SimulationConfig(fps=30.0, deadline_ms=scenario.deadline_ms)

    def sim():
        return world.simulator(scenario, 3.0, 2, config)
    exact = hindsight_optimum(sim(), scenario.codec, scenario.image_codec)
    windowed = hindsight_optimum(sim(), scenario.codec, scenario.image_codec, max_states=3)
    per_frame = frame_lower_bounds(sim(), scenario.codec, scenario.image_codec)
    assert exact.exact and windowed.windows > 1
    assert per_frame.sum() - 1e-6 <= windowed.latency_ms.sum() <= exact.latency_ms.sum() + 1e-6


def test_the_candidates_are_every_closed_set_of_yolov3_tiny():
    scenario = get_scenario("l2p-paper")
    world = small_world().for_scenario(scenario)
    sim = world.simulator(scenario, 1.0, 0, SimulationConfig(fps=10.0))
    candidates, complete = hindsight_candidates(sim, scenario.codec, scenario.image_codec)
    assert complete
    chain = {Partition.chain(k, scenario.codec) for k in range(0, world.policy_model.num_layers - 1)}
    assert chain <= set(candidates) and Partition.image_offload(scenario.image_codec) in candidates
    assert any(p.edge_layers is not None for p in candidates)  # DAG partitions too
