"""Heuristic (bandwidth thresholds derived from the cost model) and score (weighted energy and
latency under a cap, two and three tiers, periodic) policies on the real YOLOv3-tiny graph."""
from dataclasses import replace

import numpy as np
import pytest

from l2p_ros.policies.baselines import Greedy
from l2p_ros.policies.cost_model import CostModel
from l2p_ros.policies.heuristic import HeuristicPolicy
from l2p_ros.policies.registry import NOMINAL_STATE, make_policy
from l2p_ros.policies.score import ScorePolicy, ScoreWeights, tiered_partitions
from l2p_ros.policies.types import Partition, SystemState
from test.test_policies_fixtures import cost_model, graph_of, synthetic_profile

LAST = 23
BANDWIDTHS = np.geomspace(0.2, 2000, 60)


@pytest.fixture(scope="module")
def tiny():
    return cost_model("yolov3-tiny", edge_speed=1.0, cloud_speed=20.0)


@pytest.fixture(scope="module")
def heuristic(tiny):
    # Raw image offload against int8 tensors: the envelope has middle cuts (with JPEG the image wins early).
    return HeuristicPolicy(tiny, NOMINAL_STATE, codec="int8-channel", image_codec="raw")


def test_thresholds_are_where_the_nominal_fastest_changes(tiny, heuristic):
    greedy = Greedy(tiny, codec="int8-channel", image_codec="raw")  # same DNNSplit candidates
    for bandwidth in BANDWIDTHS:
        state = replace(NOMINAL_STATE, bandwidth_mbps=float(bandwidth))
        assert tiny.predict(heuristic.decide(state), state).total_ms == \
            pytest.approx(tiny.predict(greedy.decide(state), state).total_ms)
    assert heuristic.thresholds_mbps == sorted(heuristic.thresholds_mbps)
    assert len(heuristic.partitions) == len(heuristic.thresholds_mbps) + 1


def test_the_cut_moves_with_bandwidth_and_nothing_else(tiny, heuristic):
    cuts = [heuristic.decide(SystemState(bandwidth_mbps=float(b))).cut_after_layer for b in BANDWIDTHS]
    assert cuts[0] == LAST and cuts[-1] == -1 and cuts == sorted(cuts, reverse=True)
    assert {3, 5, 7} & set(cuts)  # a middle candidate between the thresholds
    low, high = heuristic.thresholds_mbps[0], heuristic.thresholds_mbps[-1]
    assert heuristic.decide(SystemState(bandwidth_mbps=low * 0.99)).is_edge_only(LAST + 1)
    assert heuristic.decide(SystemState(bandwidth_mbps=high)).is_image_offload
    # Load and content are ignored: that is the baseline's weakness the adaptive policies exploit.
    busy = SystemState(bandwidth_mbps=low * 0.5, edge_load=0.95, frame_complexity=1.0, edge_queue_length=5)
    assert heuristic.decide(busy).is_edge_only(LAST + 1)
    assert not Greedy(tiny, codec="int8-channel", image_codec="raw").decide(busy).is_edge_only(LAST + 1)


def test_thresholds_come_from_the_cost_model(tiny, heuristic):
    faster_edge = HeuristicPolicy(cost_model("yolov3-tiny", edge_speed=4.0), NOMINAL_STATE,
                                  codec="int8-channel", image_codec="raw")
    assert faster_edge.thresholds_mbps[0] > heuristic.thresholds_mbps[0]  # edge only holds to faster links
    far_cloud = HeuristicPolicy(tiny, replace(NOMINAL_STATE, rtt_ms=80), codec="int8-channel", image_codec="raw")
    assert far_cloud.thresholds_mbps[0] > heuristic.thresholds_mbps[0]
    assert make_policy("heuristic", tiny).name == "heuristic"
    jpeg = make_policy("heuristic", tiny)  # JPEG offload beats every interior cut: two levels
    assert [p.name(LAST + 1) for p in jpeg.partitions] == ["edge", "cloud"]


def score_by_hand(model, partitions, state, weights, cap_ms):
    """The score policy's choice computed from one-by-one predictions."""
    predictions = [model.predict(p, state) for p in partitions]
    feasible = [i for i, p in enumerate(predictions) if p.total_ms <= cap_ms]
    if not feasible:
        return partitions[min(range(len(partitions)), key=lambda i: predictions[i].total_ms)]
    terms = [(weights.edge_energy, "edge_energy_j"), (weights.total_energy, "total_energy_j"),
             (weights.latency, "total_ms")]
    best = {name: min(getattr(predictions[i], name) for i in feasible) for _, name in terms}

    def score(i):
        return sum(w * getattr(predictions[i], name) / best[name] for w, name in terms)
    return partitions[min(feasible, key=score)]


@pytest.mark.parametrize("weights", [ScoreWeights(), ScoreWeights(1, 0, 0), ScoreWeights(0, 1, 0),
                                     ScoreWeights(0, 0, 1), ScoreWeights(0.6, 0.1, 0.3)])
def test_score_is_the_cheapest_under_the_cap(weights):
    model = cost_model("yolov3-tiny", cloud_speed=1.2)
    rng = np.random.default_rng(3)
    for _ in range(20):
        state = SystemState(bandwidth_mbps=float(10 ** rng.uniform(-1, 2.5)), rtt_ms=float(rng.uniform(0, 50)),
                            edge_load=float(rng.uniform(0, 0.9)), edge_queue_length=int(rng.integers(0, 3)))
        cap_ms = float(rng.uniform(60, 400))
        policy = ScorePolicy(model, cap_ms, weights)
        chosen = policy.evaluate(state)
        assert chosen == score_by_hand(model, policy.partitions, state, weights, cap_ms)
        latency = [model.predict(p, state).total_ms for p in policy.partitions]
        if min(latency) <= cap_ms:
            assert model.predict(chosen, state).total_ms <= cap_ms
        else:
            assert model.predict(chosen, state).total_ms == min(latency)


def test_energy_weights_offload_and_latency_weights_go_fastest():
    # A slowish cloud: edge only is fastest, but offloading spares the edge's energy on a good link.
    model = cost_model("yolov3-tiny", cloud_speed=1.2)
    good_link = SystemState(bandwidth_mbps=100, rtt_ms=20)
    edge_heavy = ScorePolicy(model, 500, ScoreWeights(1, 0, 0)).evaluate(good_link)
    latency_heavy = ScorePolicy(model, 500, ScoreWeights(0, 0, 1)).evaluate(good_link)
    assert edge_heavy.is_image_offload
    fastest = min(ScorePolicy(model, 500).partitions, key=lambda p: model.predict(p, good_link).total_ms)
    assert latency_heavy == fastest and fastest.is_edge_only(LAST + 1)
    assert ScorePolicy(model, 500, ScoreWeights(0, 1, 0)).evaluate(good_link).is_edge_only(LAST + 1)  # 300 W cloud
    # At half load only image offload (117 ms) meets a 150 ms cap: even total-energy weights take it.
    loaded = replace(good_link, edge_load=0.5)
    assert ScorePolicy(model, 150, ScoreWeights(0, 1, 0)).evaluate(loaded).is_image_offload


def test_three_tier_candidates_and_a_fog_choice():
    graph = graph_of("yolov3-tiny")
    model = CostModel(graph, synthetic_profile("yolov3-tiny", 15.0), synthetic_profile("yolov3-tiny", 1000.0),
                      fog_profile=synthetic_profile("yolov3-tiny", 300.0), fog_codec="int8-channel")
    policy = ScorePolicy(model, 300, ScoreWeights(0, 1, 0), codec="int8-channel")
    names = {p.name(LAST + 1) for p in policy.partitions}
    fog_pairs = {f"{i}/{j}" for i in (-1, 3, 5, 7) for j in (3, 5, 7, 23) if j > i}
    assert names == {"cloud", "3", "5", "7", "edge"} | fog_pairs
    state = SystemState(bandwidth_mbps=50, rtt_ms=5, fog_cloud_bandwidth_mbps=1000, fog_cloud_rtt_ms=20)
    chosen = policy.evaluate(state)  # the 45 W fog is cheaper than the 300 W cloud for the same work
    assert chosen.fog_until_layer is not None
    assert chosen == score_by_hand(model, policy.partitions, state, policy.weights, 300)
    assert tiered_partitions([-1, 23], 24, three_tier=False) == [Partition.image_offload(), Partition.edge_only(24)]


def test_periodic_re_evaluation():
    model = cost_model("yolov3-tiny")
    policy = make_policy("score", model, frame_interval_ms=200.0, period_frames=5)
    good, down = SystemState(bandwidth_mbps=500, rtt_ms=5), SystemState(bandwidth_mbps=0.0)
    first = policy.decide(good)
    assert first.is_image_offload
    assert [policy.decide(down) for _ in range(4)] == [first] * 4  # held until the period ends
    assert policy.decide(down).is_edge_only(LAST + 1)
    policy.reset()
    assert policy.decide(good) == first
    assert policy.max_latency_ms == 200.0 and policy.name == "score"
    with pytest.raises(ValueError):
        ScoreWeights(0, 0, 0)
