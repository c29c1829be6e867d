"""DADS over the enumerated closed sets (numpy, per frame) equals the networkx min-cut reference."""
import warnings

import numpy as np
import pytest

from l2p_ros.policies.cost_model import CostModel
from l2p_ros.policies.baselines import OraclePolicy
from l2p_ros.policies.dads import DadsPolicy
from l2p_ros.policies.score import tiered_partitions
from l2p_ros.policies.types import SystemState
from test.test_policies_fixtures import CPU_GFLOPS, graph_of, synthetic_profile


def frame_costs(kind):
    """None; the committed measurements; or codecs whose image offload costs less than a tensor
    cut's fixed part (the min cut then weighs image offload apart)."""
    from l2p_ros.measure.frame_costs import FrameCosts, committed_frame_costs, load_frame_costs

    if kind == "committed":
        return load_frame_costs(committed_frame_costs("yolov3-tiny"))
    if kind == "cheap-image":
        return FrameCosts("synthetic", {}, {}, {"complexity": 1.0}, {"jpeg-q75": {"encode_ms": 0.1, "receive_ms": 0.1}},
                          {"int8-channel": {"encode": [6.0, 3.0], "decode": [4.0, 1.0]}})
    return None


def with_complexity(model_name, fog=False, costs=None):
    """Synthetic profiles whose payloads grow with complexity (uniformly, so they still add up);
    with ``fog``, a fog four times as fast as the edge; ``costs``: frame costs (:func:`frame_costs`)."""
    edge = synthetic_profile(model_name)
    sizes = {cut.after_layer: cut.payload_bytes for cut in edge.cuts}

    def payload_bytes(cut, codec, complexity):
        return sizes[cut.after_layer][codec] * (0.7 + 0.6 * complexity)
    fog_profile = synthetic_profile(model_name, 4 * CPU_GFLOPS) if fog else None
    return CostModel(graph_of(model_name), edge, synthetic_profile(model_name, 1000.0), payload_bytes_fn=payload_bytes,
                     fog_profile=fog_profile, fog_codec="int8-channel", frame_costs=frame_costs(costs))


def random_states(seed, count):
    rng = np.random.default_rng(seed)
    return [SystemState(bandwidth_mbps=float(10 ** rng.uniform(-1, 3)) if rng.random() > 0.05 else 0.0,
                        rtt_ms=float(rng.uniform(0, 60)), edge_load=float(rng.uniform(0, 0.95)),
                        edge_queue_length=int(rng.integers(0, 5)), frame_complexity=float(rng.random()),
                        fog_cloud_bandwidth_mbps=float(10 ** rng.uniform(0, 3)), fog_cloud_rtt_ms=float(rng.uniform(0, 80)))
            for _ in range(count)]


@pytest.mark.parametrize("model_name, count", [("yolov3-tiny", 60), ("yolov3", 15)])
@pytest.mark.parametrize("mode", ["light", "heavy", "auto"])
@pytest.mark.parametrize("costs", [None, "committed", "cheap-image"])
def test_closed_sets_equal_min_cut(model_name, count, mode, costs):
    model = with_complexity(model_name, costs=costs)
    interval_ms = 60.0 if model_name == "yolov3-tiny" else 600.0  # auto switches within the sample
    fast = DadsPolicy(model, interval_ms, mode, "int8-channel")
    reference = DadsPolicy(model, interval_ms, mode, "int8-channel", method="min-cut")
    seed = ["light", "heavy", "auto"].index(mode) + 10 * len(model_name)
    for state in random_states(seed, count):
        assert fast.decide(state) == reference.decide(state), state


@pytest.mark.parametrize("costs", [None, "committed", "cheap-image"])
def test_light_is_the_cost_models_minimum_with_a_queue(costs):
    """With frame costs too: each method's choice, costed by the cost model, is the least latency
    of every closed set (and the sample does choose image offload and a cut)."""
    model = with_complexity("yolov3", costs=costs)
    fast = DadsPolicy(model, float("inf"), "light", "int8-channel")
    reference = DadsPolicy(model, float("inf"), "light", "int8-channel", method="min-cut")
    chosen = set()
    for state in random_states(7, 12):
        best = min(model.predict(p, state).total_ms for p in fast.placements)
        for dads in (fast, reference):
            assert model.predict(dads.decide(state), state).total_ms == pytest.approx(best, rel=1e-9), state
        chosen.add(fast.decide(state).cut_after_layer)
    assert -1 in chosen and len(chosen) > 1


@pytest.mark.parametrize("mode", ["light", "heavy", "auto"])
@pytest.mark.parametrize("costs", [None, "committed"])
def test_in_three_tiers_dads_pays_the_fogs_forwarding(mode, costs):
    """Through a fog, DADS's placements cross both links: the fast path still equals the min cut,
    and light load is still the cost model's minimum over the placements (now forwarded)."""
    model = with_complexity("yolov3-tiny", fog=True, costs=costs)
    fast = DadsPolicy(model, 60.0, mode, "int8-channel")
    reference = DadsPolicy(model, 60.0, mode, "int8-channel", method="min-cut")
    forwarded = 0
    for state in random_states(3, 40):
        chosen = fast.decide(state)
        assert chosen == reference.decide(state), state
        if mode == "light":
            best = min(model.predict(p, state).total_ms for p in fast.placements)
            assert model.predict(chosen, state).total_ms == pytest.approx(best)
        forwarded += not chosen.is_edge_only(model.num_layers)
    assert forwarded > 0  # the sample does offload


def test_oracle_searches_three_tier_pairs_too():
    model = with_complexity("yolov3-tiny", fog=True)
    oracle = OraclePolicy(model, ("int8-channel",), "jpeg-q75")
    pairs = tiered_partitions(range(-1, model.num_layers), model.num_layers, True, "int8-channel", "jpeg-q75")
    dads = DadsPolicy(model, float("inf"), "light", "int8-channel")
    chose_a_fog = 0
    for state in random_states(5, 40):
        chosen = oracle.decide(state)
        best = min(model.predict(p, state).total_ms for p in [*pairs, *dads.placements])
        assert model.predict(chosen, state).total_ms == pytest.approx(best), state
        chose_a_fog += chosen.fog_until_layer is not None
    assert chose_a_fog > 0


def test_unknown_method():
    with pytest.raises(ValueError, match="method"):
        DadsPolicy(with_complexity("yolov3-tiny"), 50.0, method="magic")


def test_min_cut_with_the_link_down():
    model = with_complexity("yolov3-tiny")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for method in ("closed-sets", "min-cut"):
            chosen = DadsPolicy(model, 50.0, "light", method=method).decide(SystemState(bandwidth_mbps=0, rtt_ms=20))
            assert chosen.is_edge_only(model.num_layers)
