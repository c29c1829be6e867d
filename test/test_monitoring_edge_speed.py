"""EdgeSpeed: the edge's measured times against the cost model's predictions, folded into the load."""
import math
from pathlib import Path

import pytest

from l2p_ros.deployment import Deployment, build_cost_model
from l2p_ros.monitoring.edge_speed import EdgeSpeed, calibrated_edge_load
from l2p_ros.monitoring.state import AssumedLinks, system_state
from l2p_ros.policies.registry import make_policy
from l2p_ros.policies.types import Partition

ROOT = Path(__file__).resolve().parents[1]
EDGE_PROFILE = ROOT / "models" / "profiles" / "yolov3-tiny-416-cpu-t1-vm-2core.yaml"


class Load:
    def __init__(self, cpu_percent, gpu_percent=math.nan, queue_length=0):
        self.cpu_percent, self.gpu_percent, self.queue_length = cpu_percent, gpu_percent, queue_length


class Link:
    def __init__(self, bandwidth_mbps, rtt_ms=20.0):
        self.bandwidth_mbps, self.rtt_ms, self.link_up = bandwidth_mbps, rtt_ms, True


def test_the_factor_is_one_until_enough_frames_then_their_median():
    speed = EdgeSpeed(window=5, min_frames=3)
    assert speed.add(100.0, 50.0) and speed.add(110.0, 50.0)
    assert speed.factor == 1.0  # two frames: not yet
    assert speed.add(600.0, 50.0)  # one frame held up by the scheduler: 12x
    assert speed.factor == pytest.approx(2.2)  # the median of 2.0, 2.2, 12
    for _ in range(5):  # the window forgets older frames
        speed.add(50.0, 50.0)
    assert speed.factor == 1.0 and speed.frames == 8


def test_frames_older_than_max_age_are_forgotten():
    """A passing slowdown (measured: 3-4x right after a link drop) must not keep the policy off the
    edge's cuts for good: forgotten, the edge is predicted from its profile again and measured anew."""
    now = [0.0]
    speed = EdgeSpeed(min_frames=3, max_age_s=10.0, clock=lambda: now[0])
    for at_s in (0.0, 0.1, 0.2):
        now[0] = at_s
        speed.add(180.0, 50.0)
    assert speed.factor == pytest.approx(3.6)
    now[0] = 9.9
    speed.add(110.0, 50.0)
    assert speed.factor == pytest.approx(3.6)  # the median of 3.6, 3.6, 3.6, 2.2
    now[0] = 10.15  # the first two are older than 10 s: two frames left, too few
    assert speed.factor == 1.0
    for at_s in (10.2, 10.3):
        now[0] = at_s
        speed.add(110.0, 50.0)
    assert speed.factor == pytest.approx(2.2)


def test_small_predictions_and_unusable_times_are_not_taken():
    speed = EdgeSpeed(min_frames=1, min_predicted_ms=5.0)
    assert not speed.add(30.0, 2.0)  # image offload's resize and JPEG: too little to compare
    assert not speed.add(math.nan, 50.0) and not speed.add(0.0, 50.0) and not speed.add(30.0, math.inf)
    assert speed.factor == 1.0 and speed.frames == 0


def test_the_factor_is_clamped_and_bad_settings_are_refused():
    speed = EdgeSpeed(min_frames=1, bounds=(0.5, 4.0))
    speed.add(1000.0, 10.0)
    assert speed.factor == 4.0
    with pytest.raises(ValueError, match="min_frames"):
        EdgeSpeed(window=3, min_frames=4)
    with pytest.raises(ValueError, match="bounds"):
        EdgeSpeed(bounds=(1.5, 4.0))
    with pytest.raises(ValueError, match="max_age_s"):
        EdgeSpeed(max_age_s=0.0)


@pytest.mark.parametrize("load, factor", [(0.0, 2.0), (0.3, 1.5), (0.5, 0.8), (0.9, 3.0)])
def test_the_calibrated_load_stretches_the_edge_by_the_monitors_stretch_times_the_factor(load, factor):
    calibrated = calibrated_edge_load(load, factor)
    assert 1 / (1 - calibrated) == pytest.approx(factor / (1 - load))


def test_an_edge_faster_than_predicted_is_predicted_at_no_load_at_least():
    assert calibrated_edge_load(0.1, 0.5) == 0.0
    assert calibrated_edge_load(1.0, 2.0) == 1.0
    with pytest.raises(ValueError):
        calibrated_edge_load(0.2, 0.0)


def test_the_state_carries_the_calibrated_load():
    state = system_state(0.5, Link(2.0), Load(40.0, queue_length=1), AssumedLinks(), edge_time_factor=2.0)
    assert state.edge_load == pytest.approx(0.7) and state.edge_queue_length == 1
    assert system_state(0.5, None, None, AssumedLinks(), edge_time_factor=2.0).edge_load == pytest.approx(0.5)
    assert system_state(0.5, None, Load(40.0), AssumedLinks()).edge_load == pytest.approx(0.4)


def test_the_rtt_floor_caps_a_reported_rtt_and_leaves_an_assumed_one():
    assert system_state(0.5, Link(2.0, rtt_ms=300.0), None, AssumedLinks(), rtt_floor_ms=30.0).rtt_ms == 30.0
    assert system_state(0.5, Link(2.0, rtt_ms=20.0), None, AssumedLinks(), rtt_floor_ms=30.0).rtt_ms == 20.0
    assert system_state(0.5, None, None, AssumedLinks(rtt_ms=50.0), rtt_floor_ms=30.0).rtt_ms == 50.0


def test_a_calibrated_edge_moves_a_bottleneck_that_cannot_keep_up_back_to_the_image():
    """What the testbed measured (docs/testbed.md, experiment 8), on the committed profiles: an edge
    a quarter of this VM's core, 2 Mbit/s. Predicted from the profile, the bottleneck's head wins;
    at twice the profile's time (the live edge's, with the camera and the partitioner beside it)
    the image is faster again, and every searching policy goes back to it."""
    deployment = Deployment("yolov3-tiny", 416, edge_profile=EDGE_PROFILE, edge_speed_factor=0.25,
                            bottlenecks=("vtest-street",))
    model, _ = build_cost_model(deployment, log=lambda *_: None)
    bottleneck, image = Partition.chain(7, "bn:vtest-street"), Partition.image_offload("jpeg-q75")
    for factor, expected in ((1.0, bottleneck), (2.5, image)):
        state = system_state(0.5, Link(2.0), Load(0.0), AssumedLinks(), edge_time_factor=factor)
        for name in ("greedy", "dads", "dnnsplit"):
            policy = make_policy(name, model, codec="int8-channel+zstd", image_codec="jpeg-q75")
            assert policy.decide(state) == expected, (name, factor)
    assert model.edge_node_ms(bottleneck) == pytest.approx(
        model.placement(bottleneck).edge_ms - model.per_frame_edge_ms)
    assert model.edge_node_ms(bottleneck) < model.edge_node_ms(Partition.edge_only(model.num_layers))
