"""Cost model arithmetic on a hand-computed five-layer profile, and derived profiles."""
import math

import pytest

from l2p_ros.model.cfg import parse_cfg_text
from l2p_ros.model.graph import LayerGraph
from l2p_ros.measure.profile import derive_profile, is_derived
from l2p_ros.policies.energy import PowerModel
from l2p_ros.policies.cost_model import CostModel
from l2p_ros.policies.types import Partition, SystemState
from l2p_ros.measure.profile import CutProfile, LayerProfile, Profile, ProfileError, load_profile

# 0 -> 1 -> 4 and 0 -> 2 -> 3 -> 4: layer 0 feeds two branches, route 4 joins them.
CFG = """
[net]
channels=3
[convolutional]
[convolutional]
[route]
layers=-2
[convolutional]
[route]
layers=-1,-3
"""
EDGE_MS = [10, 20, 1, 30, 0.5]
CLOUD_MS = [1, 2, 0.1, 3, 0.05]
TENSOR_BYTES = [400, 100, 300, 50, 0]  # fp32 bytes of each layer's output, as sent
# Chain cut payloads: cut 1 sends 0 (read by 2) and 1 (read by 4); cut 2 sends 1 and 2; cut 3 sends 1 and 3.
CUT_FP32_BYTES = {0: 400, 1: 500, 2: 400, 3: 150, 4: 0}
STATE = SystemState(bandwidth_mbps=8.0, rtt_ms=10.0, edge_load=0.5, frame_complexity=0.3)  # 1 byte/us


def profile(latencies_ms) -> Profile:
    layers = [LayerProfile(i, "x", ms, ms, ms, [1, 1], b, 0)
              for i, (ms, b) in enumerate(zip(latencies_ms, TENSOR_BYTES))]
    cuts = [CutProfile(-1, "cloud", [-1], 0.0, sum(latencies_ms), {"raw": 3072, "jpeg-q75": 1000})]
    cuts += [CutProfile(k, str(k), [], sum(latencies_ms[: k + 1]), sum(latencies_ms[k + 1:]), {"fp32": size})
             for k, size in CUT_FP32_BYTES.items()]
    return Profile({"name": "hand", "input_size": 32}, {"hostname": "hand"}, {}, layers, cuts)


@pytest.fixture
def model():
    return CostModel(LayerGraph(parse_cfg_text(CFG)), profile(EDGE_MS), profile(CLOUD_MS))


def test_chain_cut(model):
    p = model.predict(Partition.chain(1), STATE)
    assert p.edge_ms == pytest.approx((10 + 20) * 2)  # load 0.5: twice as long
    assert p.payload_bytes == 500 and p.send_ms == pytest.approx(0.5)
    assert p.rtt_ms == 10 and p.cloud_ms == pytest.approx(0.1 + 3 + 0.05)
    assert p.total_ms == pytest.approx(60 + 0.5 + 10 + 3.15)
    assert p.bottleneck_ms == pytest.approx(60)
    assert p.edge_energy_j == pytest.approx((15 * 60 + 7 * 0.5 + 5 * (10 + 3.15)) / 1000)


def test_per_tensor_bytes_and_dag_cut(model):
    assert list(model.tensor_bytes("fp32", 0.3)) == TENSOR_BYTES
    p = model.predict(Partition.dag([0, 2]), STATE)  # sends 0 (read by 1) and 2 (read by 3)
    assert p.payload_bytes == 400 + 300
    assert p.total_ms == pytest.approx((10 + 1) * 2 + 0.7 + 10 + (2 + 3 + 0.05))


def test_image_offload_and_edge_only(model):
    jpeg = model.predict(Partition.image_offload(), STATE)
    assert (jpeg.edge_ms, jpeg.send_ms, jpeg.cloud_ms) == (0, pytest.approx(1.0), pytest.approx(6.15))
    assert model.predict(Partition.image_offload("raw"), STATE).send_ms == pytest.approx(3.072)
    local = model.predict(Partition.edge_only(5), STATE)
    assert local.total_ms == pytest.approx(61.5 * 2) and local.transfer_ms == 0 and local.cloud_ms == 0
    assert local.edge_energy_j == pytest.approx(15 * 123 / 1000)


def test_no_link_and_saturated_edge(model):
    assert math.isinf(model.predict(Partition.chain(1), SystemState(bandwidth_mbps=0)).total_ms)
    saturated = model.predict(Partition.chain(0), SystemState(bandwidth_mbps=8, edge_load=1.0))
    assert saturated.edge_ms == pytest.approx(10 * 20)  # capped at 95% load: 20x


def test_payload_hook_and_power_model():
    def grows_with_complexity(cut, codec, complexity):
        return CUT_FP32_BYTES[cut.after_layer] * (1 + complexity)

    model = CostModel(LayerGraph(parse_cfg_text(CFG)), profile(EDGE_MS), profile(CLOUD_MS),
                      power=PowerModel(active_w=2, transmit_w=1, idle_w=0), payload_bytes_fn=grows_with_complexity)
    busy = SystemState(bandwidth_mbps=8, frame_complexity=1.0)
    assert model.predict(Partition.chain(1), busy).payload_bytes == 1000
    assert model.predict(Partition.dag([0, 2]), busy).payload_bytes == 1400
    assert model.predict(Partition.chain(1), busy).edge_energy_j == pytest.approx((2 * 30 + 1 * 1.0) / 1000)


def test_errors(model):
    with pytest.raises(ProfileError, match="fp16"):
        model.predict(Partition.chain(1, "fp16"), STATE)
    not_additive = CostModel(model.graph, model.edge_profile, model.cloud_profile,
                             payload_bytes_fn=lambda cut, codec, complexity: 100.0 * (cut.after_layer != 1))
    with pytest.raises(ProfileError, match="add up"):
        not_additive.predict(Partition.dag([0, 2]), STATE)
    with pytest.raises(ValueError, match="three-tier"):
        model.predict(Partition(cut_after_layer=1, fog_until_layer=3), STATE)
    with pytest.raises(ProfileError, match="layers"):
        four_layers = Profile({}, {}, {}, profile(EDGE_MS).layers[:4], [])
        CostModel(LayerGraph(parse_cfg_text(CFG)), four_layers, profile(CLOUD_MS))


def hand_frame_costs():
    from l2p_ros.measure.frame_costs import FrameCosts

    # fp32: encode 1 ms + 2 ms per fp32 MB, decode 0.5 ms + 1 ms per MB; the JPEG 3 ms out, 4 ms in.
    return FrameCosts("hand", {}, {}, {"complexity": 0.3, "decision": 0.2},
                      {"jpeg-q75": {"encode_ms": 3.0, "receive_ms": 4.0}},
                      {"fp32": {"encode": [1.0, 2.0], "decode": [0.5, 1.0]}})


def test_frame_costs_are_charged_where_they_run(model):
    """Complexity and decision on the edge for every frame, encoding on the edge (stretched by its
    load like the layers), decoding on the tier that computes next."""
    charged = CostModel(model.graph, model.edge_profile, model.cloud_profile, frame_costs=hand_frame_costs())
    chain = charged.predict(Partition.chain(1), STATE)  # 500 fp32 bytes cross
    assert chain.edge_ms == pytest.approx((10 + 20 + 0.5 + 1 + 2 * 500e-6) * 2)
    assert chain.cloud_ms == pytest.approx(3.15 + 0.5 + 1 * 500e-6)
    dag = charged.predict(Partition.dag([0, 2]), STATE)  # 400 + 300 fp32 bytes
    assert dag.edge_ms == pytest.approx((10 + 1 + 0.5 + 1 + 2 * 700e-6) * 2)
    assert dag.cloud_ms == pytest.approx(5.05 + 0.5 + 700e-6)
    jpeg = charged.predict(Partition.image_offload(), STATE)
    assert (jpeg.edge_ms, jpeg.cloud_ms) == (pytest.approx((0.5 + 3) * 2), pytest.approx(6.15 + 4))
    local = charged.predict(Partition.edge_only(5), STATE)
    assert local.total_ms == pytest.approx((61.5 + 0.5) * 2) and local.cloud_ms == 0
    assert charged.frame_costs.uncharged == set()
    assert CostModel(model.graph, model.edge_profile, model.cloud_profile).per_frame_edge_ms == 0.0


def test_frame_costs_in_three_tiers():
    """The fog decodes what it computes on and encodes its handover (fog_codec), which the cloud
    decodes; a forwarded payload is decoded by the cloud, a fog that finishes decodes it."""
    graph = LayerGraph(parse_cfg_text(CFG))
    fog = profile([ms / 2 for ms in EDGE_MS])
    charged = CostModel(graph, profile(EDGE_MS), profile(CLOUD_MS), fog_profile=fog, fog_codec="fp32",
                        frame_costs=hand_frame_costs())
    tiered = charged.predict(Partition(cut_after_layer=0, fog_until_layer=2, codec="fp32"), STATE)
    # Edge: layer 0 and 400 bytes encoded; fog: layers 1-2, decoding 400, encoding the 400 of cut 2.
    assert tiered.edge_ms == pytest.approx((10 + 0.5 + 1 + 2 * 400e-6) * 2)
    assert tiered.fog_ms == pytest.approx((20 + 1) / 2 + (0.5 + 400e-6) + (1 + 2 * 400e-6))
    assert tiered.cloud_ms == pytest.approx(3 + 0.05 + 0.5 + 400e-6)
    forwarded = charged.predict(Partition.chain(1, "fp32"), STATE)
    assert forwarded.fog_ms == 0 and forwarded.cloud_ms == pytest.approx(3.15 + 0.5 + 500e-6)
    finished = charged.predict(Partition(cut_after_layer=-1, fog_until_layer=4, codec="jpeg-q75"), STATE)
    assert finished.fog_ms == pytest.approx(61.5 / 2 + 4) and finished.cloud_ms == 0


def test_frame_costs_refuse_negative_times():
    from l2p_ros.measure.frame_costs import FrameCosts

    with pytest.raises(ValueError, match="codec fp16: times must be >= 0"):
        FrameCosts("hand", {}, {}, {}, {}, {"fp16": {"encode": [-0.2, 1.0], "decode": [0.1, 0.1]}})


def test_derived_profile_is_labelled_and_scaled(tmp_path):
    measured = profile(EDGE_MS)
    jetson = derive_profile(measured, 0.5, "jetson-class edge")
    assert is_derived(jetson) and not is_derived(measured)
    assert jetson.machine["measured_on"] == {"hostname": "hand"} and jetson.machine["label"] == "jetson-class edge"
    assert [l.latency_ms_median for l in jetson.layers] == [2 * ms for ms in EDGE_MS]
    assert jetson.cut(2).edge_ms == 2 * measured.cut(2).edge_ms
    assert jetson.cut(2).payload_bytes == measured.cut(2).payload_bytes
    assert measured.layers[0].latency_ms_median == 10  # the measured profile is untouched
    jetson.save(tmp_path / "jetson.yaml")
    assert is_derived(load_profile(tmp_path / "jetson.yaml"))
    with pytest.raises(ValueError):
        derive_profile(measured, 0, "nothing")
