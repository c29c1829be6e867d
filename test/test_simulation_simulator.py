"""The trace-driven simulator on this host's measured yolov3-tiny profile and real-frame payloads."""
import numpy as np
import pytest

from l2p_ros.policies.baselines import FixedCut, OraclePolicy
from l2p_ros.policies.registry import make_policy
from l2p_ros.policies.types import Partition
from l2p_ros.simulation.estimator import EstimatorConfig, EwmaEstimator
from l2p_ros.simulation.scenarios import get_scenario
from l2p_ros.simulation.simulator import SimulationConfig
from l2p_ros.simulation.traces import Trace
from test.simulation_fixtures import constant_scenario, small_world

PAPER = get_scenario("l2p-paper")
DETERMINISTIC_FIELDS = ("time_s", "row", "bandwidth_mbps", "bandwidth_estimate_mbps", "edge_load", "skipped",
                        "partition", "latency_ms", "edge_energy_j", "payload_bytes", "deadline_miss", "queue_ms")


def greedy():
    return make_policy("greedy", small_world().policy_model, codec=PAPER.codec, image_codec=PAPER.image_codec)


def run(scenario, policy, seed=0, duration_s=60.0, config=None):
    return small_world().simulator(scenario, duration_s, seed, config).run(policy)


def test_same_seed_gives_identical_results():
    first, second, other = run(PAPER, greedy(), 5), run(PAPER, greedy(), 5), run(PAPER, greedy(), 6)
    for name in DETERMINISTIC_FIELDS:
        assert np.array_equal(getattr(first, name), getattr(second, name), equal_nan=True), name
    assert first.partitions == second.partitions
    assert not np.array_equal(first.bandwidth_mbps, other.bandwidth_mbps)


def test_frames_faster_than_the_edge_queue_up_and_get_skipped():
    edge_only = FixedCut(Partition.edge_only(small_world().graph.num_layers))
    edge_ms = small_world().edge_profile.total_ms
    fast = constant_scenario(20.0, fps=2.0 * 1e3 / edge_ms)  # two frames per edge pass
    unbounded = run(fast, edge_only, duration_s=5.0, config=SimulationConfig(fps=fast.fps, max_vehicle_queue=10**6))
    assert not unbounded.skipped.any()
    assert (np.diff(unbounded.latency_ms) > 0).all()  # every frame waits longer than the one before
    assert unbounded.latency_ms[-1] > 10 * edge_ms
    bounded = run(fast, edge_only, duration_s=5.0, config=SimulationConfig(fps=fast.fps, max_vehicle_queue=2))
    assert bounded.skipped.sum() > 0.4 * len(bounded.skipped)  # about every other frame
    assert np.nanmax(bounded.latency_ms) <= 4 * edge_ms * 1.01  # at most 2 ahead + its own, + one in service
    slow = run(constant_scenario(20.0, fps=0.5 * 1e3 / edge_ms), edge_only, duration_s=5.0)
    assert not slow.skipped.any() and slow.queue_ms.max() < 1e-6
    assert np.allclose(slow.latency_ms, edge_ms)  # idle edge: the profile's full pass


def live(fps: float, **fields) -> SimulationConfig:
    return SimulationConfig(fps=fps, live_edge=True, **fields)


def test_live_edge_keeps_the_latest_frame_and_drops_the_one_it_replaces():
    """As the live edge node: one waiting frame, replaced by a newer one (superseded), so no frame
    waits behind more than the one in service."""
    edge_only = FixedCut(Partition.edge_only(small_world().graph.num_layers))
    edge_ms = small_world().edge_profile.total_ms
    fast = constant_scenario(20.0, fps=2.5 * 1e3 / edge_ms)  # 2.5 frames per edge pass
    log = run(fast, edge_only, duration_s=5.0, config=live(fast.fps))
    assert (log.superseded == log.skipped).all() and log.superseded.sum() > 0.4 * len(log.skipped)
    assert np.nanmax(log.latency_ms) <= 2 * edge_ms * 1.01  # the rest of one frame in service, then its own
    assert set(log.vehicle_queue[log.processed]) == {0, 1}  # frames at the edge: its one slot
    sim = small_world().simulator(fast, 5.0, 0, live(fast.fps))
    while not sim.done:  # ... of which the policies are shown none, as the live edge reports it
        assert sim.pending.estimated_state.edge_queue_length == sim.pending.true_state.edge_queue_length == 0
        sim.step(edge_only.decide(sim.pending.estimated_state))
    queued = run(fast, edge_only, duration_s=5.0, config=SimulationConfig(fps=fast.fps))
    assert not queued.superseded.any() and np.nanmax(queued.latency_ms) > 3 * edge_ms


def test_live_edge_charges_the_frame_overhead_and_the_pipeline_background_load():
    edge_only = FixedCut(Partition.edge_only(small_world().graph.num_layers))
    cloud_only = FixedCut(Partition.image_offload())
    slow = constant_scenario(20.0, fps=2.0)  # no frame waits for another
    for policy in (edge_only, cloud_only):
        plain = run(slow, policy, duration_s=5.0, config=live(slow.fps))
        overhead = run(slow, policy, duration_s=5.0, config=live(slow.fps, frame_overhead_ms=30.0))
        assert np.allclose(overhead.latency_ms - plain.latency_ms, 30.0)
        assert np.allclose(overhead.queue_ms, plain.queue_ms)  # a cost of every frame, not a wait
    idle = run(slow, edge_only, duration_s=5.0, config=live(slow.fps))
    busy = run(slow, edge_only, duration_s=5.0, config=live(slow.fps, edge_background_load=0.6))
    assert np.allclose(busy.edge_ms, idle.edge_ms / 0.4)
    assert np.array_equal(busy.edge_load_estimate, idle.edge_load_estimate)  # no monitor reports it
    with pytest.raises(ValueError, match="live_edge"):
        SimulationConfig(frame_overhead_ms=5.0)
    with pytest.raises(ValueError, match="edge_background_load"):
        live(10.0, edge_background_load=1.0)


def test_live_edge_policies_see_the_uplinks_backlog_in_the_rtt():
    """The monitor's probes wait behind the frames in the uplink: image offload faster than the link
    carries it shows as a growing RTT (the estimate's noise aside), not as a vehicle queue."""
    cloud_only = FixedCut(Partition.image_offload())
    congested = constant_scenario(0.5, fps=5.0)  # ~24 KB frames at 0.5 Mbit/s: ~0.4 s each
    log = run(congested, cloud_only, duration_s=10.0, config=live(congested.fps, max_vehicle_queue=10**6))
    assert set(log.vehicle_queue) <= {0, 1}
    world = small_world()
    sim = world.simulator(congested, 10.0, 0, live(congested.fps, max_vehicle_queue=10**6))
    rtts = []
    while not sim.done:
        rtts.append(sim.pending.estimated_state.rtt_ms)
        sim.step(Partition.image_offload())
    assert rtts[-1] > rtts[0] + 1000.0  # seconds of backlog after 10 s


def test_measured_frame_costs_are_charged_where_they_run():
    """Complexity and decision on the edge for every frame; encoding on the edge and decoding on the
    next tier for offloaded ones: with nothing queued, each adds to the latency exactly."""
    from l2p_ros.measure.frame_costs import committed_frame_costs, load_frame_costs

    costs = load_frame_costs(committed_frame_costs("yolov3-tiny"))
    world = small_world()
    slow = constant_scenario(20.0, fps=2.0)
    cut = 7
    crossing_bytes = world.edge_profile.layers[cut].output_bytes
    cases = [(FixedCut(Partition.edge_only(world.graph.num_layers)), costs.edge_per_frame_ms, 0.0),
             (FixedCut(Partition.image_offload(slow.image_codec)), costs.edge_per_frame_ms
              + costs.encode_ms(slow.image_codec, 0), costs.decode_ms(slow.image_codec, 0)),
             (FixedCut(Partition.chain(cut, slow.codec)), costs.edge_per_frame_ms
              + costs.encode_ms(slow.codec, crossing_bytes), costs.decode_ms(slow.codec, crossing_bytes))]
    for policy, edge_extra_ms, cloud_extra_ms in cases:
        plain = run(slow, policy, duration_s=5.0, config=SimulationConfig(fps=slow.fps))
        charged = run(slow, policy, duration_s=5.0, config=SimulationConfig(fps=slow.fps, frame_costs=costs))
        assert edge_extra_ms > 0.5
        assert np.allclose(charged.edge_ms - plain.edge_ms, edge_extra_ms)
        assert np.allclose(charged.cloud_ms - plain.cloud_ms, cloud_extra_ms)
        assert np.allclose(charged.latency_ms - plain.latency_ms, edge_extra_ms + cloud_extra_ms)
        assert (charged.edge_energy_j > plain.edge_energy_j).all()
    assert not costs.uncharged


def test_image_offload_sends_and_charges_its_own_image_codec():
    """jpeg-dnn-q85 (a detector's quantization tables) against jpeg-q75 on the same frames: each
    puts its own measured bytes of each frame on the link and is charged its own encode (edge) and
    decode (cloud) prices."""
    from l2p_ros.measure.frame_costs import committed_frame_costs, load_frame_costs

    costs = load_frame_costs(committed_frame_costs("yolov3-tiny"))
    world = small_world()
    slow = constant_scenario(20.0, fps=2.0)
    config = SimulationConfig(fps=slow.fps, frame_costs=costs)
    logs = {name: run(slow, FixedCut(Partition.image_offload(name)), duration_s=5.0, config=config)
            for name in ("jpeg-q75", "jpeg-dnn-q85")}
    image, dnn = logs["jpeg-q75"], logs["jpeg-dnn-q85"]
    assert np.array_equal(image.row, dnn.row)
    for name, log in logs.items():
        assert np.array_equal(log.payload_bytes, world.table.image_bytes[log.row, world.table.image_index(name)])
    assert not np.array_equal(image.payload_bytes, dnn.payload_bytes)
    extra_encode_ms = costs.encode_ms("jpeg-dnn-q85", 0) - costs.encode_ms("jpeg-q75", 0)
    assert extra_encode_ms > 0.5  # Pillow's two-pass Huffman coding and 4:4:4's extra chroma blocks
    assert np.allclose(dnn.edge_ms - image.edge_ms, extra_encode_ms)
    assert np.allclose(dnn.cloud_ms - image.cloud_ms, costs.decode_ms("jpeg-dnn-q85", 0) - costs.decode_ms("jpeg-q75", 0))


def test_frame_costs_without_bottlenecks_still_load_and_name_what_they_leave_out(tmp_path):
    """A file written before bottleneck costs were collected (schema 1) loads; a bottleneck it does
    not price is charged nothing and named as uncharged."""
    import yaml

    from l2p_ros.measure.frame_costs import committed_frame_costs, load_frame_costs

    data = yaml.safe_load(committed_frame_costs("yolov3-tiny").read_text())
    data["schema"] = "l2p-frame-costs/1"
    del data["bottleneck_codecs"]
    old = tmp_path / "frame-costs-v1.yaml"
    old.write_text(yaml.safe_dump(data))
    costs = load_frame_costs(old)
    assert costs.bottleneck_codecs == {} and costs.encode_ms("jpeg-q75", 0) > 0
    assert costs.encode_ms("bn:vtest-street", 1e6) == 0.0 and costs.uncharged == {"bn:vtest-street"}
    data["schema"] = "l2p-frame-costs/9"
    old.write_text(yaml.safe_dump(data))
    with pytest.raises(ValueError, match="l2p-frame-costs/9"):
        load_frame_costs(old)


def test_edge_only_ignores_bandwidth_and_cloud_only_does_not():
    layers = small_world().graph.num_layers
    # 5 frames/s: no stage is a bottleneck, so every frame is processed at either bandwidth.
    edge = [run(constant_scenario(bw, fps=5.0), FixedCut(Partition.edge_only(layers))) for bw in (5.0, 50.0)]
    cloud = [run(constant_scenario(bw, fps=5.0), FixedCut(Partition.image_offload())) for bw in (5.0, 50.0)]
    assert not any(log.skipped.any() for log in edge + cloud)
    assert np.array_equal(edge[0].latency_ms, edge[1].latency_ms)
    # A JPEG frame (~24 KB at network resolution) at 5 vs 50 Mbit/s: the latency grows by its
    # transfer time's difference, and by nothing else.
    slower_ms = np.mean(cloud[0].payload_bytes) * 8 / 1e3 * (1 / 5.0 - 1 / 50.0)
    assert slower_ms > 25
    assert cloud[0].latency_ms.mean() - cloud[1].latency_ms.mean() == pytest.approx(slower_ms, rel=0.05)
    # The sent bytes are the real frame's own: they vary with the frame, not with the link.
    assert np.array_equal(cloud[0].payload_bytes, cloud[1].payload_bytes) and np.ptp(cloud[0].payload_bytes) > 0


def test_edge_load_stretches_edge_time():
    edge_only = FixedCut(Partition.edge_only(small_world().graph.num_layers))
    idle, loaded = (run(constant_scenario(20.0, edge_load=load, fps=2.0), edge_only) for load in (0.0, 0.5))
    assert np.allclose(loaded.edge_ms, 2 * idle.edge_ms)


def test_the_myopic_oracle_leads_every_policy_where_frames_do_not_queue():
    """At 10 frames/s on the paper's scenario nothing queues for long, and the oracle (the fastest
    partition for each frame under the true state) is ahead of every policy and fixed cut. It is no
    bound: where frames queue it is beaten (test_simulation_bound, test_simulation_hindsight)."""
    world = small_world()
    names = ["edge-only", "cloud-only", "static-optimal", "heuristic", "greedy", "dads", "dnnsplit", "score"]
    means = {name: np.nanmean(run(PAPER, make_policy(name, world.policy_model, codec=PAPER.codec,
                                                       image_codec=PAPER.image_codec), seed=2).latency_ms)
             for name in names}
    for partition in world.candidates(PAPER.codec, PAPER.image_codec):
        means[partition.name(world.graph.num_layers)] = np.nanmean(run(PAPER, FixedCut(partition), seed=2).latency_ms)
    sim = world.simulator(PAPER, 60.0, 2)
    oracle = np.nanmean(sim.run(OraclePolicy(sim.true_model, (PAPER.codec,), PAPER.image_codec)).latency_ms)
    assert all(oracle <= mean for mean in means.values()), (oracle, means)


def test_policies_see_estimates_and_the_oracle_the_truth():
    world = small_world()
    seen = {}

    class Recorder(FixedCut):
        def __init__(self, key, needs_truth):
            super().__init__(Partition.image_offload())
            self.key, self.needs_true_state = key, needs_truth

        def decide(self, state):
            seen.setdefault(self.key, []).append(state.bandwidth_mbps)
            return super().decide(state)

    for key, truth in (("estimate", False), ("truth", True)):
        log = world.simulator(PAPER, 30.0, 1).run(Recorder(key, truth))
    assert np.array_equal(seen["truth"], log.bandwidth_mbps)
    assert np.array_equal(seen["estimate"], log.bandwidth_estimate_mbps)
    assert not np.array_equal(seen["estimate"], seen["truth"])


def test_estimator_lags_a_step_then_follows_it():
    trace = Trace(np.array([0.0, 10.0]), np.array([50.0, 5.0]), np.array([20.0, 20.0]), np.array([0.1, 0.8]))
    estimator = EwmaEstimator(trace, EstimatorConfig(), np.random.default_rng(0))
    before = estimator.estimate(9.9)
    just_after = estimator.estimate(10.0)
    later = estimator.estimate(20.0)
    assert 35 < before[0] < 70 and just_after[0] > 20  # one probe of the new level is not believed yet
    assert 3.5 < later[0] < 7.0 and 0.7 < later[2] < 0.9
    perfect = EwmaEstimator(trace, EstimatorConfig(perfect=True), np.random.default_rng(0))
    assert perfect.estimate(10.0) == trace.at(10.0)


def test_three_tier_partitions_are_refused():
    sim = small_world().simulator(PAPER, 1.0, 0)
    with pytest.raises(ValueError, match="three-tier"):
        sim.step(Partition(cut_after_layer=3, fog_until_layer=7, codec=PAPER.codec))
