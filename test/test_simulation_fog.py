"""The simulator's fog tier: edge -> link -> fog -> fog link -> cloud, against the cost model."""
import json
from dataclasses import replace

import numpy as np
import pytest

from l2p_ros.cli import main
from l2p_ros.simulation.evaluation import evaluate
from l2p_ros.policies.types import Partition
from l2p_ros.simulation.scenarios import FogTier, get_scenario
from l2p_ros.simulation.simulator import SimulationConfig
from test.simulation_fixtures import FRAMES_PER_CLIP, constant_scenario, small_world

CODEC = "int8-channel+zstd"


def fog_scenario(bandwidth_mbps=20.0, fps=1.0, fog=FogTier()):
    return replace(constant_scenario(bandwidth_mbps, rtt_ms=20.0, fps=fps), fog=fog)


def test_world_for_a_fog_scenario_has_a_derived_fog_profile():
    world = small_world()
    assert world.for_scenario(constant_scenario(20.0)) is world and not world.policy_model.has_fog
    tiered = world.for_scenario(fog_scenario())
    assert tiered is world.for_scenario(fog_scenario())  # cached
    assert tiered.policy_model.has_fog and tiered.policy_model.fog_codec == CODEC
    source = tiered.sources["fog_profile"]
    assert source["derived"] is True and source["speed_factor"] == 4.0
    assert tiered.fog_profile.machine["derived"] is True
    assert tiered.fog_profile.total_ms == pytest.approx(world.edge_profile.total_ms / 4)
    assert tiered.sources["fog_profile"]["fog_cloud_link"]["bandwidth_mbps"] == 1000.0


@pytest.mark.parametrize("partition", [Partition(cut_after_layer=7, fog_until_layer=13, codec=CODEC),
                                       Partition(cut_after_layer=-1, fog_until_layer=13, codec="jpeg-q75"),
                                       Partition.chain(7, CODEC),  # forwarded by the fog
                                       Partition.image_offload(),
                                       Partition(cut_after_layer=7, fog_until_layer=23, codec=CODEC),  # fog finishes
                                       Partition(cut_after_layer=-1, fog_until_layer=23, codec="jpeg-q75")])
def test_unqueued_latency_equals_the_cost_model_and_the_hand_sum(partition):
    world = small_world()
    sim = world.simulator(fog_scenario(), 3.0, 0)  # 1 frame/s: no frame waits
    assert sim.config.fog_cloud_bandwidth_mbps == 1000.0 and sim.config.fog_cloud_rtt_ms == 5.0
    for _ in range(3):
        frame = sim.pending
        assert frame.true_state.fog_cloud_bandwidth_mbps == 1000.0 and frame.true_state.fog_cloud_rtt_ms == 5.0
        predicted = sim.true_model.predict(partition, frame.true_state)
        outcome = sim.step(partition)
        assert outcome.latency_ms == pytest.approx(predicted.total_ms, rel=1e-9)
        assert outcome.queue_ms == pytest.approx(0.0, abs=1e-6)
        assert outcome.edge_energy_j == pytest.approx(predicted.edge_energy_j, rel=1e-9)
        # By hand: profile medians, this frame's table bytes over 20 and 1000 Mbit/s, both RTTs.
        model = sim.true_model
        k, j = partition.cut_after_layer, partition.fog_until_layer
        handover = k if j is None else j
        edge = sum(l.latency_ms_median for l in model.edge_profile.layers[:k + 1])
        fog = sum(l.latency_ms_median for l in model.fog_profile.layers[k + 1:handover + 1])
        cloud = sum(l.latency_ms_median for l in model.cloud_profile.layers[handover + 1:])
        first = sim.table.payload_bytes(frame.row, model.chain_cut(k), partition.codec)
        second = first if j is None else sim.table.payload_bytes(frame.row, model.chain_cut(j), CODEC)
        assert outcome.payload_bytes == first and outcome.fog_ms == pytest.approx(fog)
        fog_finishes = j == model.num_layers - 1  # nothing on the fog link, the cloud idle
        backhaul = 0.0 if fog_finishes else second * 8 / 1000e3 + 5.0
        by_hand = edge + first * 8 / 20e3 + 20.0 + fog + backhaul + cloud
        assert outcome.latency_ms == pytest.approx(by_hand, rel=1e-9)
        assert (outcome.fog_send_ms == 0.0) == fog_finishes
        if j is None:
            assert fog == 0.0
        if fog_finishes:
            assert cloud == 0.0 and fog > 0.0


@pytest.mark.parametrize("partition", [Partition(cut_after_layer=7, fog_until_layer=13, codec=CODEC),
                                       Partition.chain(7, CODEC),  # forwarded by the fog
                                       Partition(cut_after_layer=-1, fog_until_layer=23, codec="jpeg-q75")])
def test_frame_costs_in_three_tiers_are_played_as_predicted(partition):
    """With measured frame costs the fog decodes what it computes on and encodes its handover for
    the cloud, which decodes it: the played frame equals the truth's prediction, and exceeds the
    uncharged one by exactly those costs."""
    from l2p_ros.measure.frame_costs import committed_frame_costs, load_frame_costs

    costs = load_frame_costs(committed_frame_costs("yolov3-tiny"))
    world = small_world()
    config = SimulationConfig(fps=1.0, frame_costs=costs)
    charged, plain = world.simulator(fog_scenario(), 2.0, 0, config), world.simulator(fog_scenario(), 2.0, 0)
    model = charged.true_model
    k, j = partition.cut_after_layer, partition.fog_until_layer
    fp32 = model.crossing_fp32_bytes
    edge_extra = costs.edge_per_frame_ms + costs.encode_ms(partition.codec, fp32(model.chain_cut(k)))
    decoded = costs.decode_ms(partition.codec, fp32(model.chain_cut(k)))
    if j is None:  # forwarded: the cloud decodes
        fog_extra, cloud_extra = 0.0, decoded
    elif j == model.num_layers - 1:  # the fog finishes
        fog_extra, cloud_extra = decoded, 0.0
    else:
        fog_extra = decoded + costs.encode_ms(CODEC, fp32(model.chain_cut(j)))
        cloud_extra = costs.decode_ms(CODEC, fp32(model.chain_cut(j)))
    for _ in range(2):
        predicted = model.predict(partition, charged.pending.true_state)
        played, base = charged.step(partition), plain.step(partition)
        assert played.latency_ms == pytest.approx(predicted.total_ms, rel=1e-9)
        assert played.fog_ms - base.fog_ms == pytest.approx(fog_extra, rel=1e-9)
        assert played.latency_ms - base.latency_ms == pytest.approx(edge_extra + fog_extra + cloud_extra, rel=1e-9)
    assert fog_extra > 0 or cloud_extra > 0


def test_edge_only_never_reaches_the_fog():
    sim = small_world().simulator(fog_scenario(), 2.0, 0)
    outcome = sim.step(Partition.edge_only(sim.true_model.num_layers))
    assert outcome.fog_ms == outcome.fog_send_ms == outcome.send_ms == 0.0


def test_the_fog_queues_like_the_other_stages():
    # Image to the fog, which runs all but the last layer: the fog is the slowest stage by far.
    world = small_world()
    num_layers = world.policy_model.num_layers
    partition = Partition(cut_after_layer=-1, fog_until_layer=num_layers - 2, codec="jpeg-q75")
    fog_ms = world.for_scenario(fog_scenario()).policy_model.placement(partition).fog_ms
    fps = 2e3 / fog_ms  # frames arrive twice as fast as the fog serves them
    sim = world.simulator(fog_scenario(1000.0, fps), 40 / fps, 0,
                          SimulationConfig(fps=fps, max_vehicle_queue=100))
    outcomes = [sim.step(partition) for _ in range(20)]
    queue = np.array([o.queue_ms for o in outcomes])
    assert queue[0] == pytest.approx(0.0, abs=1e-6)
    assert np.all(np.diff(queue) > 0)  # each frame waits longer for the fog
    # Once queued, a frame leaves the fog one fog service after the one before (the rest of its
    # way is the fog link, whose time depends on the frame's bytes, then fixed times).
    finish = np.array([o.index / fps * 1e3 + o.latency_ms - o.fog_send_ms for o in outcomes])
    assert np.diff(finish)[5:] == pytest.approx(fog_ms, rel=1e-6)


def test_the_fog_link_queues_too():
    world = small_world()
    slow_backhaul = FogTier(cloud_bandwidth_mbps=2.0)
    partition = Partition.chain(0, CODEC)  # layer 0's big output, forwarded on a 2 Mbit/s fog link
    sim = world.simulator(fog_scenario(1000.0, 10.0, slow_backhaul), 3.0, 0,
                          SimulationConfig(fps=10.0, max_vehicle_queue=100))
    outcomes = [sim.step(partition) for _ in range(10)]
    assert all(o.fog_send_ms > 100 for o in outcomes)  # slower than the frame interval
    assert all(o.fog_ms == 0.0 for o in outcomes)
    assert np.all(np.diff([o.queue_ms for o in outcomes]) > 0)


def test_three_tier_throttle_evaluates_score_and_a_fixed_three_tier_split(tmp_path):
    out = tmp_path / "eval"
    assert main(["evaluate", "--scenario", "three-tier-throttle", "--minutes", "0.2", "--seed", "1",
                 "--video-frames", str(FRAMES_PER_CLIP), "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["scenario"]["tiers"] == 3
    assert results["sources"]["fog_profile"]["derived"] is True
    policies = results["policies"]
    assert {"score", "fixed:7:13", "greedy", "static-optimal", "oracle"} <= set(policies)
    assert set(policies["fixed:7:13"]["cut_histogram"]) == {"7/13"}
    assert policies["score"]["latency_ms"]["mean"] > 0
    table = (out / "results.md").read_text()
    assert "fog profile: DERIVED (4x the edge profile)" in table and "| fixed:7:13 |" in table


def test_behind_a_slow_backhaul_the_fog_finishes_frames():
    evaluation = evaluate("three-tier-backhaul", minutes=0.5, seed=2, world=small_world(), progress=False,
                          policies=["static-optimal", "greedy", "dads", "score", "oracle", "fixed:cloud:last"])
    assert evaluation.meta["scenario"]["tiers"] == 3
    runs = {name: run.summary for name, run in evaluation.runs.items()}
    last = small_world().policy_model.num_layers - 1
    assert set(runs["fixed:cloud:last"]["cut_histogram"]) == {f"-1/{last}"}
    fog_finished = sum(count for label, count in runs["score"]["cut_histogram"].items() if label.endswith(f"/{last}"))
    assert fog_finished > runs["score"]["processed_frames"] / 2
    means = {name: summary["latency_ms"]["mean"] for name, summary in runs.items()}
    assert means["score"] < means["greedy"] < means["static-optimal"]
    assert all(means["oracle"] <= mean + 1e-9 for mean in means.values())


def test_two_tier_scenarios_stay_two_tier():
    assert get_scenario("l2p-paper").fog is None
    assert get_scenario("three-tier-throttle").fog == FogTier()
    sim = small_world().simulator(get_scenario("l2p-paper"), 1.0, 0)
    assert not sim.true_model.has_fog
