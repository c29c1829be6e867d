"""A cloud shared by a batching fleet: the measured batch curves, the cost model's fluid prediction,
and the simulator's fleet of peers (frame by frame)."""
import math
from pathlib import Path

import numpy as np
import pytest

from l2p_ros.policies.cloud_batching import BatchCurve, CloudBatching, CloudShare
from l2p_ros.policies.registry import make_policy
from l2p_ros.policies.types import Partition, SystemState
from l2p_ros.simulation.fleet_cloud import IDLE, serve
from l2p_ros.simulation.simulator import SimulationConfig
from test.simulation_fixtures import constant_scenario, small_world

ROOT = Path(__file__).resolve().parents[1]
H200 = ROOT / "models" / "profiles" / "cloud-batching-yolov3-tiny-416-cuda-h200.yaml"
CPU = ROOT / "models" / "profiles" / "cloud-batching-yolov3-tiny-416-cpu-vm-2core.yaml"
LINEAR = CloudBatching({"tensor": BatchCurve((1, 4), (1.0, 2.0)), "image": BatchCurve((1, 4), (1.0, 4.0))}, "", "")


def test_a_curve_from_measured_throughput():
    curve = BatchCurve.from_capacity({1: 100.0, 2: 160.0, 4: 200.0, 8: 180.0})
    assert curve.factors[:3] == pytest.approx((1.0, 1.25, 2.0))
    assert curve.factors[3] == pytest.approx(4.0)  # batch 8 measured slower than 4: held at 4's rate
    assert curve.factor(3) == pytest.approx(1.625)  # linear between measured sizes
    assert curve.factor(10) == pytest.approx(4.0 + 1.25)  # beyond: one batch of 8 and one of 2
    with pytest.raises(ValueError):
        BatchCurve((1, 2), (1.0, 3.0))  # a batch of 2 cannot take 3 frames' time


def test_the_committed_curves_load_and_say_where_they_were_measured(tmp_path):
    for path in (H200, CPU):
        batching = CloudBatching.load(path)
        assert batching.machine and batching.source
        for image in (False, True):
            curve = batching.curve(image)
            assert curve.factor(1) == 1.0 and 1.0 < curve.factor(4) < 4.0
    assert CloudBatching.load(H200).curve(False).factor(32) == pytest.approx(16.176, abs=1e-3)
    saved = CloudBatching.load(LINEAR.save(tmp_path / "b.yaml"))
    assert saved.curve(True).factor(2) == pytest.approx(2.0)
    (tmp_path / "bad.yaml").write_text("schema: nonsense\n")
    with pytest.raises(ValueError, match="schema"):
        CloudBatching.load(tmp_path / "bad.yaml")
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        CloudBatching.load(tmp_path / "missing.yaml")


def test_the_fluid_model_batches_only_when_the_cloud_must():
    alone = CloudShare(1, 10.0, 4, LINEAR)
    assert alone.frame_ms(5.0, image=False) == 5.0  # one vehicle: the cloud is its own
    light = CloudShare(8, 10.0, 4, LINEAR)  # 80 frames/s at 5 ms: batch 1 keeps up (40% busy)
    assert light.batch(5.0, False) == (1, pytest.approx(0.4))
    assert light.frame_ms(5.0, False) == pytest.approx(5.0 * (1 + 0.4 * 7 / 8 / 2))
    heavy = CloudShare(32, 10.0, 4, LINEAR)  # 320 frames/s: batches of 3 (1.67x for 3 frames) keep up
    b, busy = heavy.batch(5.0, False)
    assert b == 3 and busy < 1
    assert heavy.frame_ms(5.0, False) > 5.0 * LINEAR.curve(False).factor(3)
    assert math.isinf(CloudShare(64, 10.0, 4, LINEAR).frame_ms(5.0, False))  # 640/s: no batch keeps up
    assert math.isinf(CloudShare(32, 10.0, 4, LINEAR).frame_ms(5.0, True))  # images do not batch here


def test_peers_queue_and_batch_behind_the_vehicles_frame():
    share = CloudShare(4, 10.0, 4, LINEAR)  # each frame brings 3 peers' frames, 25 ms apart
    done, state, size = serve(share, IDLE, 1.0, ("cut",), 60.0, False)
    assert (done, size) == (pytest.approx(1.060), 1)  # alone at 1.0; its peers arrive later
    assert [w.arrival_s for w in state.waiting] == pytest.approx([1.025, 1.050, 1.075])
    # The next frame at 1.100: at 1.060 the peers of 1.025 and 1.050 form a batch of 2 (4/3 x 60 ms,
    # to 1.140); then 1.075, this frame (1.100) and its first peer (1.125) a batch of 3 (5/3 x 60).
    done, state, size = serve(share, state, 1.100, ("cut",), 60.0, False)
    assert (done, size) == (pytest.approx(1.140 + 0.100), 3)
    assert [w.arrival_s for w in state.waiting] == pytest.approx([1.150, 1.175])
    # A frame of another cut (first in line at 1.240, with its three peers): a batch of its own.
    done, state, size = serve(share, state, 1.150, ("other",), 60.0, False)
    assert (done, size) == (pytest.approx(1.240 + 0.060 * 2), 4)
    assert [(w.arrival_s, w.key) for w in state.waiting] == [(pytest.approx(1.150), ("cut",)),
                                                             (pytest.approx(1.175), ("cut",))]
    one = CloudShare(1, 10.0, 4, LINEAR)
    done, state, _ = serve(one, IDLE, 2.0, ("cut",), 10.0, False)
    assert done == pytest.approx(2.010) and state.waiting == ()  # alone: a FIFO server


def _sim_logs(vehicles: int, max_batch: int, partition: Partition, fps: float = 20.0):
    world = small_world()
    scenario = constant_scenario(50.0, fps=fps)
    fleet = None if vehicles is None else CloudShare(vehicles, fps, max_batch, CloudBatching.load(CPU))
    sim = world.simulator(scenario, 5.0, 0, SimulationConfig(fps=fps, fleet=fleet, max_vehicle_queue=1000))
    while not sim.done:
        sim.step(partition)
    return sim.log


def test_one_vehicle_in_a_fleet_plays_as_a_vehicle_alone_and_more_vehicles_wait_longer():
    """Cut 7 takes the (derived) cloud 1.5 ms a frame: 670 frames/s one by one, ~1,000 in batches of
    4 (this VM's curve). 40 vehicles at 20 frames/s offer 800: one by one the cloud falls behind and
    frames wait behind the peers' queues; batching keeps up."""
    cut = Partition.chain(7, "int8-channel+zstd")
    alone = _sim_logs(None, 1, cut)
    assert np.array_equal(_sim_logs(1, 4, cut).latency_ms, alone.latency_ms)
    crowded, batched = _sim_logs(40, 1, cut), _sim_logs(40, 4, cut)
    assert np.mean(crowded.latency_ms) > np.mean(alone.latency_ms) + 20  # waits behind ~4 frames per peer
    assert np.mean(alone.latency_ms) < np.mean(batched.latency_ms) < np.mean(crowded.latency_ms) - 20


def test_a_cost_model_that_knows_the_fleet_leaves_a_cloud_that_cannot_keep_up():
    """Greedy on a fast link sends images to the (derived, 2.2 ms a frame) cloud. Told 100 vehicles
    at 10 frames/s share it, 1,000 images a second, more than it finishes in batches of any size
    (this VM's curve: images barely batch), it sends a cut whose tail the cloud keeps up with."""
    world = small_world()
    shared = world.with_cloud_share(CloudShare(100, 10.0, 4, CloudBatching.load(CPU)))
    fast = SystemState(bandwidth_mbps=200.0, rtt_ms=5.0, edge_load=0.0, frame_complexity=0.5)
    alone = make_policy("greedy", world.policy_model, codec="int8-channel+zstd", image_codec="jpeg-q75")
    told = make_policy("greedy", shared.policy_model, codec="int8-channel+zstd", image_codec="jpeg-q75")
    image = Partition.image_offload("jpeg-q75")
    assert alone.decide(fast) == image
    assert math.isinf(shared.policy_model.predict(image, fast).total_ms)
    chosen = told.decide(fast)
    assert chosen != image and math.isfinite(shared.policy_model.predict(chosen, fast).total_ms)
    # Its cloud time is the shared one: longer than the same tail's alone.
    assert shared.policy_model.placement(chosen).cloud_ms > world.policy_model.placement(chosen).cloud_ms
