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


def with_complexity(model_name, fog=False):
    """Synthetic profiles whose payloads grow with complexity (uniformly, so they still add up);
    with ``fog``, a fog four times as fast as the edge."""
    edge = synthetic_profile(model_name)
    sizes = {cut.after_layer: cut.payload_bytes for cut in edge.cuts}

    def payload_bytes(cut, codec, complexity):
        return sizes[cut.after_layer][codec] * (0.7 + 0.6 * complexity)
    fog_profile = synthetic_profile(model_name, 4 * CPU_GFLOPS) if fog else None
    return CostModel(graph_of(model_name), edge, synthetic_profile(model_name, 1000.0), payload_bytes_fn=payload_bytes,
                     fog_profile=fog_profile, fog_codec="int8-channel")


def random_states(seed, count):
    rng = np.random.default_rng(seed)
    return [SystemState(bandwidth_mbps=float(10 ** rng.uniform(-1, 3)) if rng.random() > 0.05 else 0.0,
                        rtt_ms=float(rng.uniform(0, 60)), edge_load=float(rng.uniform(0, 0.95)),
                        edge_queue_length=int(rng.integers(0, 5)), frame_complexity=float(rng.random()),
                        fog_cloud_bandwidth_mbps=float(10 ** rng.uniform(0, 3)), fog_cloud_rtt_ms=float(rng.uniform(0, 80)))
            for _ in range(count)]


@pytest.mark.parametrize("model_name, count", [("yolov3-tiny", 60), ("yolov3", 15)])
@pytest.mark.parametrize("mode", ["light", "heavy", "auto"])
def test_closed_sets_equal_min_cut(model_name, count, mode):
    model = with_complexity(model_name)
    interval_ms = 60.0 if model_name == "yolov3-tiny" else 600.0  # auto switches within the sample
    fast = DadsPolicy(model, interval_ms, mode, "int8-channel")
    reference = DadsPolicy(model, interval_ms, mode, "int8-channel", method="min-cut")
    seed = ["light", "heavy", "auto"].index(mode) + 10 * len(model_name)
    for state in random_states(seed, count):
        assert fast.decide(state) == reference.decide(state), state


def test_light_is_the_cost_models_minimum_with_a_queue():
    model = with_complexity("yolov3")
    dads = DadsPolicy(model, float("inf"), "light", "int8-channel")
    for state in random_states(7, 4):
        best = min(model.predict(p, state).total_ms for p in dads.placements)
        assert model.predict(dads.decide(state), state).total_ms == pytest.approx(best)


@pytest.mark.parametrize("mode", ["light", "heavy", "auto"])
def test_in_three_tiers_dads_pays_the_fogs_forwarding(mode):
    """Through a fog, DADS's placements cross both links: the fast path still equals the min cut,
    and light load is still the cost model's minimum over the placements (now forwarded)."""
    model = with_complexity("yolov3-tiny", fog=True)
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
