"""Edge queueing and three-tier predictions on the hand-computed five-layer profile, and the
vectorised PartitionTable against the one-partition reference."""
import itertools
import math

import numpy as np
import pytest

from l2p_ros.model.cfg import parse_cfg_text
from l2p_ros.model.graph import LayerGraph
from l2p_ros.policies.baselines import Greedy
from l2p_ros.policies.energy import PowerModel
from l2p_ros.policies.cost_model import CostModel
from l2p_ros.policies.types import Partition, SystemState
from test.test_policies_cost_model import CFG, CLOUD_MS, EDGE_MS, STATE, profile
from test.test_policies_fixtures import cost_model, graph_of, synthetic_profile

FOG_MS = [5, 10, 0.5, 15, 0.25]  # a fog twice as fast as the edge
# Uplink 8 Mbit/s = 1 byte/us as in STATE; backhaul 80 Mbit/s = 10 bytes/us.
FOG_STATE = SystemState(bandwidth_mbps=8.0, rtt_ms=10.0, edge_load=0.5, frame_complexity=0.3,
                        fog_cloud_bandwidth_mbps=80.0, fog_cloud_rtt_ms=2.0)
FOG_POWER = PowerModel(active_w=45, transmit_w=5, idle_w=0)
CLOUD_POWER = PowerModel(active_w=300, transmit_w=0, idle_w=0)


@pytest.fixture
def two_tier():
    return CostModel(LayerGraph(parse_cfg_text(CFG)), profile(EDGE_MS), profile(CLOUD_MS), cloud_power=CLOUD_POWER)


@pytest.fixture
def three_tier():
    return CostModel(LayerGraph(parse_cfg_text(CFG)), profile(EDGE_MS), profile(CLOUD_MS), fog_profile=profile(FOG_MS),
                     fog_power=FOG_POWER, cloud_power=CLOUD_POWER)


def test_queued_frames_wait_for_the_edge(two_tier):
    queued = SystemState(bandwidth_mbps=8.0, rtt_ms=10.0, edge_load=0.5, edge_queue_length=3)
    alone = two_tier.predict(Partition.chain(1), STATE)
    behind = two_tier.predict(Partition.chain(1), queued)
    assert behind.queue_ms == pytest.approx(3 * 60)  # three frames ahead, 60 ms of edge each
    assert behind.total_ms == pytest.approx(180 + 60 + 0.5 + 10 + 3.15)
    assert behind.edge_energy_j == alone.edge_energy_j  # waiting costs this frame no energy
    assert behind.bottleneck_ms == alone.bottleneck_ms  # nor the pipeline any throughput
    offload = two_tier.predict(Partition.image_offload(), queued)
    assert offload.queue_ms == 0 and offload.total_ms == pytest.approx(1.0 + 10 + 6.15)
    local = two_tier.predict(Partition.edge_only(5), queued)
    assert local.queue_ms == pytest.approx(3 * 123) and local.total_ms == pytest.approx(4 * 123)


def test_total_energy_adds_the_cloud(two_tier):
    p = two_tier.predict(Partition.chain(1), STATE)
    assert p.offload_energy_j == pytest.approx(300 * 3.15 / 1000)
    assert p.total_energy_j == pytest.approx(p.edge_energy_j + 300 * 3.15 / 1000)
    assert two_tier.predict(Partition.edge_only(5), STATE).offload_energy_j == 0


def test_three_tier_arithmetic(three_tier):
    # Edge 0 (10 ms x2 load) -> 400 B -> fog 1, 2 (10 + 0.5 ms) -> cut 2, 400 B fp32 -> cloud 3, 4 (3 + 0.05 ms).
    p = three_tier.predict(Partition(cut_after_layer=0, fog_until_layer=2), FOG_STATE)
    assert (p.edge_ms, p.send_ms, p.rtt_ms) == (pytest.approx(20), pytest.approx(0.4), 10)
    assert (p.fog_ms, p.fog_payload_bytes, p.fog_send_ms, p.fog_rtt_ms) == \
        (pytest.approx(10.5), 400, pytest.approx(0.04), 2)
    assert p.cloud_ms == pytest.approx(3.05)
    assert p.transfer_ms == pytest.approx(0.4 + 10 + 0.04 + 2)
    assert p.total_ms == pytest.approx(20 + 0.4 + 10 + 10.5 + 0.04 + 2 + 3.05)
    assert p.bottleneck_ms == pytest.approx(20)
    assert p.edge_energy_j == pytest.approx((15 * 20 + 7 * 0.4 + 5 * (10 + 10.5 + 0.04 + 2 + 3.05)) / 1000)
    assert p.offload_energy_j == pytest.approx((45 * 10.5 + 5 * 0.04) / 1000 + 300 * 3.05 / 1000)


def test_two_tier_partitions_pass_through_the_fog(three_tier):
    p = three_tier.predict(Partition.chain(1), FOG_STATE)  # the fog forwards the edge's 500 B
    assert (p.fog_ms, p.fog_payload_bytes, p.fog_send_ms) == (0, 500, pytest.approx(0.05))
    assert p.total_ms == pytest.approx(60 + 0.5 + 10 + 0.05 + 2 + 3.15)
    jpeg = three_tier.predict(Partition.image_offload(), FOG_STATE)
    assert jpeg.fog_payload_bytes == 1000 and jpeg.total_ms == pytest.approx(1.0 + 10 + 0.1 + 2 + 6.15)


def test_the_fog_can_finish_the_network(three_tier):
    # Image to the fog, which runs everything and post-processes: the fog -> cloud link is not used.
    p = three_tier.predict(Partition(cut_after_layer=-1, fog_until_layer=4, codec="jpeg-q75"), FOG_STATE)
    assert (p.edge_ms, p.send_ms, p.fog_ms, p.fog_send_ms, p.fog_rtt_ms, p.cloud_ms) == \
        (0, pytest.approx(1.0), pytest.approx(30.75), 0, 0, 0)
    assert p.total_ms == pytest.approx(1.0 + 10 + 30.75)
    assert p.offload_energy_j == pytest.approx(45 * 30.75 / 1000)
    local = three_tier.predict(Partition.edge_only(5), FOG_STATE)
    assert local.transfer_ms == 0 and local.fog_ms == 0 and local.total_ms == pytest.approx(123)


def test_fog_link_down_and_missing_fog(three_tier, two_tier):
    down = SystemState(bandwidth_mbps=8.0, fog_cloud_bandwidth_mbps=0.0)
    assert math.isinf(three_tier.predict(Partition(cut_after_layer=0, fog_until_layer=2), down).total_ms)
    with pytest.raises(ValueError, match="three-tier"):
        two_tier.predict(Partition(cut_after_layer=0, fog_until_layer=2), FOG_STATE)
    with pytest.raises(ValueError):
        SystemState(bandwidth_mbps=1, fog_cloud_rtt_ms=-1)


def partitions_of(num_layers, three_tier):
    parts = [Partition.image_offload(), Partition.image_offload("raw")] + \
        [Partition.chain(k) for k in range(num_layers)]
    if three_tier:
        parts += [Partition(cut_after_layer=i, fog_until_layer=j, codec="jpeg-q75" if i == -1 else "fp32")
                  for i, j in itertools.combinations(range(-1, num_layers), 2)]
    return parts


STATES = [STATE, FOG_STATE, SystemState(bandwidth_mbps=0.0, rtt_ms=5),
          SystemState(bandwidth_mbps=3.0, rtt_ms=1, edge_load=0.9, edge_queue_length=4, frame_complexity=0.9,
                      fog_cloud_bandwidth_mbps=0.5, fog_cloud_rtt_ms=30)]
FIELDS = ("edge_ms", "send_ms", "rtt_ms", "cloud_ms", "payload_bytes", "edge_energy_j", "queue_ms", "fog_ms",
          "fog_send_ms", "fog_rtt_ms", "fog_payload_bytes", "offload_energy_j", "total_ms", "bottleneck_ms",
          "total_energy_j")


@pytest.mark.parametrize("tiers", ["two_tier", "three_tier"])
def test_table_equals_one_by_one(request, tiers):
    model = request.getfixturevalue(tiers)
    parts = partitions_of(5, tiers == "three_tier") + [Partition.dag([0, 2])]
    table = model.table(parts)
    for state in STATES:
        together = table.predict(state)
        for i, partition in enumerate(parts):
            alone = model.predict(partition, state)
            for field in FIELDS:
                expected = pytest.approx(getattr(alone, field), rel=1e-12)
                assert getattr(together, field)[i] == expected, (partition, field)


def test_greedy_on_yolov3_is_still_the_argmin():
    yolov3 = cost_model("yolov3")
    greedy = Greedy(yolov3, candidates=range(-1, 107), codec="int8-channel")
    rng = np.random.default_rng(1)
    for _ in range(5):
        state = SystemState(bandwidth_mbps=float(rng.uniform(0.5, 200)), rtt_ms=20,
                            edge_load=float(rng.uniform(0, 0.9)), edge_queue_length=int(rng.integers(0, 4)))
        best = min(yolov3.predict(p, state).total_ms for p in greedy.partitions)
        assert yolov3.predict(greedy.decide(state), state).total_ms == best


def test_three_tier_on_the_real_tiny_graph():
    graph = graph_of("yolov3-tiny")
    model = CostModel(graph, synthetic_profile("yolov3-tiny"), synthetic_profile("yolov3-tiny", 1000.0),
                      fog_profile=synthetic_profile("yolov3-tiny", 200.0), fog_codec="int8-channel")
    p = model.predict(Partition(cut_after_layer=3, fog_until_layer=7, codec="fp16"), FOG_STATE)
    assert p.fog_payload_bytes == synthetic_profile("yolov3-tiny").cut(7).payload_bytes["int8-channel"]
    assert p.payload_bytes == synthetic_profile("yolov3-tiny").cut(3).payload_bytes["fp16"]
    fog_layers = synthetic_profile("yolov3-tiny", 200.0).layers[4:8]
    assert p.fog_ms == pytest.approx(sum(l.latency_ms_median for l in fog_layers))
