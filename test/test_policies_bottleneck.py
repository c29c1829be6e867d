"""Learned bottleneck cuts in the cost model and the policies: a bottleneck is a codec usable at one
cut, sending the bytes per frame its file records from its held-out frames; every searching policy
weighs it against the other cuts. Real files: the committed CPU profile and the shipped
vtest-street bottleneck."""
import sys
from pathlib import Path

import pytest

from l2p_ros import context_coder
from l2p_ros.bottleneck_file import BottleneckError, read_bottleneck
from l2p_ros.deployment import Deployment, build_cost_model
from l2p_ros.policies.registry import SEARCHING_POLICIES, make_policy
from l2p_ros.policies.types import Partition, SystemState

ROOT = Path(__file__).resolve().parents[1]
EDGE_PROFILE = ROOT / "models" / "profiles" / "yolov3-tiny-416-cpu-t1-vm-2core.yaml"
CODEC = "bn:vtest-street"
SLOW_LINK = SystemState(bandwidth_mbps=2.0, rtt_ms=20.0, edge_load=0.0, frame_complexity=0.5)
FAST_LINK = SystemState(bandwidth_mbps=200.0, rtt_ms=2.0, edge_load=0.0, frame_complexity=0.5)


@pytest.fixture(scope="module")
def built():
    # An edge a quarter as fast as this VM's core (Jetson-class, derived): on this VM itself a 45 ms
    # edge-only pass beats any offload behind a 20 ms RTT, whatever the payload.
    deployment = Deployment("yolov3-tiny", 416, edge_profile=EDGE_PROFILE, edge_speed_factor=0.25,
                            bottlenecks=("vtest-street",))
    return build_cost_model(deployment, log=lambda *_: None)


def test_the_cost_model_sends_what_the_file_measured(built):
    model, sources = built
    info, _ = read_bottleneck("vtest-street")
    assert model.bottleneck_partitions() == [Partition.chain(7, CODEC)]
    assert sources["bottlenecks"][CODEC]["payload_bytes"] == info.held_out_payload_bytes
    prediction = model.predict(Partition.chain(7, CODEC), SLOW_LINK)
    assert prediction.payload_bytes == info.held_out_payload_bytes
    assert prediction.transfer_ms == pytest.approx(info.held_out_payload_bytes * 8 / 2e3 + SLOW_LINK.rtt_ms)
    assert prediction.edge_ms == pytest.approx(model.predict(Partition.chain(7, "fp32"), SLOW_LINK).edge_ms)
    with pytest.raises(ValueError, match="works at cut 7 only"):
        model.predict(Partition.chain(8, CODEC), SLOW_LINK)


@pytest.mark.parametrize("name", ["greedy", "dnnsplit", "dads", "dads-light", "dads-heavy", "score"])
def test_searching_policies_choose_the_bottleneck_where_it_wins_and_not_elsewhere(built, name):
    model, _ = built
    policy = make_policy(name, model, codec="int8-channel+zstd", image_codec="jpeg-q75")
    bottleneck = Partition.chain(7, CODEC)
    # 2 Mbit/s: the image (~23 KB) takes ~94 ms to send, the bottleneck's ~5 KB ~20 ms after a
    # ~52 ms head; everything on the edge ~166 ms.
    assert model.predict(bottleneck, SLOW_LINK).total_ms < min(
        model.predict(p, SLOW_LINK).total_ms for p in (Partition.image_offload("jpeg-q75"), Partition.edge_only(24)))
    assert policy.decide(SLOW_LINK) == bottleneck
    fresh = make_policy(name, model, codec="int8-channel+zstd", image_codec="jpeg-q75")  # score keeps a choice
    assert fresh.decide(FAST_LINK) != bottleneck  # a fast link: the image, without the edge's head


def test_static_and_heuristic_policies_hold_the_bottleneck_among_their_choices(built):
    model, _ = built
    assert make_policy("static-optimal", model, nominal=SLOW_LINK).decide(FAST_LINK) == Partition.chain(7, CODEC)
    heuristic = make_policy("heuristic", model, nominal=SLOW_LINK)
    assert heuristic.decide(SLOW_LINK) == Partition.chain(7, CODEC)


def test_a_bottleneck_for_another_model_or_without_a_measured_payload_is_refused(tmp_path):
    with pytest.raises(BottleneckError, match="made for model 'yolov3-tiny-416', not 'yolov3-416'"):
        build_cost_model(Deployment("yolov3", 416, edge_profile=ROOT / "models" / "profiles" /
                                    "yolov3-416-cpu-t1-vm-2core.yaml", bottlenecks=("vtest-street",)))
    with pytest.raises(BottleneckError, match="not found"):
        build_cost_model(Deployment("yolov3-tiny", 416, edge_profile=EDGE_PROFILE, bottlenecks=("nowhere",)))


@pytest.mark.skipif(not context_coder.available(), reason="constriction is not installed (no Linux aarch64 wheel)")
def test_range_coded_codes_are_chosen_where_their_bytes_outweigh_their_coding_time(tmp_path):
    """``NAME+ctx``: the same bottleneck sending the fewer bytes its file measured through its context
    model, charged the range coder's extra milliseconds (the committed frame costs): on a slow link
    greedy sends it, on a fast one its coding costs more than the bytes it saves."""
    deployment = Deployment("yolov3-tiny", 416, edge_profile=EDGE_PROFILE, edge_speed_factor=0.25,
                            bottlenecks=("sample-scenes", "sample-scenes+ctx"), frame_costs="committed")
    model, sources = build_cost_model(deployment, log=lambda *_: None)
    info, _ = read_bottleneck("sample-scenes")
    zstd, coded = Partition.chain(7, "bn:sample-scenes"), Partition.chain(7, "bn:sample-scenes+ctx")
    assert model.bottleneck_partitions() == [zstd, coded]
    assert sources["bottlenecks"]["bn:sample-scenes+ctx"]["payload_bytes"] == info.held_out_context_payload_bytes
    assert info.held_out_context_payload_bytes < 0.85 * info.held_out_payload_bytes
    one_mbps = SystemState(bandwidth_mbps=1.0, rtt_ms=20.0, edge_load=0.0, frame_complexity=0.5)
    slow, fast = (model.predict(coded, state).total_ms - model.predict(zstd, state).total_ms
                  for state in (one_mbps, FAST_LINK))
    assert slow < 0 < fast, (slow, fast)
    assert make_policy("greedy", model, codec="int8-channel+zstd", image_codec="jpeg-q75").decide(one_mbps) == coded
    from l2p_ros.bottleneck import load_bottleneck

    plain = load_bottleneck("sample-scenes")
    plain.context = None  # as every file made before context models
    path = plain.save(tmp_path / "plain.safetensors")
    with pytest.raises(BottleneckError, match="no context model.*--context-only"):
        build_cost_model(Deployment("yolov3-tiny", 416, edge_profile=EDGE_PROFILE, bottlenecks=(f"{path}+ctx",)))


def test_where_nothing_can_range_code_ctx_is_refused_at_start_with_the_reason(monkeypatch):
    """A Jetson: PyPI has no constriction for Linux aarch64, so requirements.txt skips it there. A
    deployment offering NAME+ctx is refused when it is built, naming why and what works instead,
    and a frame asking for +ctx fails as a PayloadError, not at import."""
    from l2p_ros.cli import _check_codec

    monkeypatch.setattr(context_coder, "available", lambda: False)
    monkeypatch.setitem(sys.modules, "constriction", None)  # import fails as where absent
    with pytest.raises(BottleneckError, match="sample-scenes\\+ctx: .*constriction.*Linux on ARM.*use bn:NAME"):
        build_cost_model(Deployment("yolov3-tiny", 416, edge_profile=EDGE_PROFILE, bottlenecks=("sample-scenes+ctx",)))
    build_cost_model(Deployment("yolov3-tiny", 416, edge_profile=EDGE_PROFILE, bottlenecks=("sample-scenes",)))
    with pytest.raises(ValueError, match="--codec bn:sample-scenes\\+ctx: .*constriction"):
        _check_codec("bn:sample-scenes+ctx", "fixed:7")
    from l2p_ros.bottleneck import load_bottleneck
    from l2p_ros.codec_spec import PayloadError

    with pytest.raises(PayloadError, match="constriction"):
        load_bottleneck("sample-scenes").context.decode(b"\x00" * 8, (1, 32, 26, 26))


@pytest.mark.parametrize("name", SEARCHING_POLICIES)
def test_a_bottleneck_is_not_a_searching_policys_tensor_codec(built, name):
    """A searching policy asks its tensor codec for every cut's bytes, which a bottleneck has at its
    own cut only (greedy crashed on its first decision in `l2p run --codec bn:...`): it is refused at
    once with the way to use it, and a fixed policy at its cut keeps it."""
    model, _ = built
    with pytest.raises(ValueError, match="usable at its own cut only"):
        make_policy(name, model, codec=CODEC)
    assert make_policy("fixed:7", model, codec=CODEC).decide(FAST_LINK) == Partition.chain(7, CODEC)
