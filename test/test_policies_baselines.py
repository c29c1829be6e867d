"""The simple policies on YOLOv3-tiny: fixed, static optimal, greedy (Neurosurgeon), oracle."""
import pytest

from l2p_ros.policies.baselines import CloudOnly, EdgeOnly, FixedCut, Greedy, OraclePolicy, StaticOptimal
from l2p_ros.policies.dads import DadsPolicy
from l2p_ros.policies.types import Partition, SystemState
from test.test_policies_fixtures import cost_model

LAST = 23


@pytest.fixture(scope="module")
def tiny():
    return cost_model("yolov3-tiny", edge_speed=1.0, cloud_speed=20.0)


def chosen_cuts(policy, states):
    return [policy.decide(state).cut_after_layer for state in states]


def test_greedy_moves_to_the_edge_as_bandwidth_drops(tiny):
    states = [SystemState(bandwidth_mbps=bw, rtt_ms=20) for bw in (1000, 100, 20, 5, 2, 1, 0.5)]
    cuts = chosen_cuts(Greedy(tiny), states)
    assert cuts[0] == -1 and cuts[-1] == LAST
    assert cuts == sorted(cuts)


def test_greedy_moves_to_the_cloud_as_edge_load_rises(tiny):
    states = [SystemState(bandwidth_mbps=2, rtt_ms=20, edge_load=load) for load in (0, 0.2, 0.4, 0.6, 0.8, 0.95)]
    cuts = chosen_cuts(Greedy(tiny), states)
    assert cuts[0] == LAST and cuts[-1] == -1
    assert cuts == sorted(cuts, reverse=True)


def test_greedy_is_the_argmin_over_its_candidates(tiny):
    greedy = Greedy(tiny, codec="int8-channel")
    assert [p.cut_after_layer for p in greedy.partitions] == [-1, 3, 5, 7, LAST]  # DNNSplit's
    for bw in (0.5, 3, 30):
        state = SystemState(bandwidth_mbps=bw, rtt_ms=5, edge_load=0.3)
        best = min(tiny.predict(p, state).total_ms for p in greedy.partitions)
        assert tiny.predict(greedy.decide(state), state).total_ms == best


def test_static_optimal_is_chosen_once(tiny):
    nominal = SystemState(bandwidth_mbps=20, rtt_ms=20)
    static = StaticOptimal(tiny, nominal)
    everything = [Partition.image_offload()] + [Partition.chain(k) for k in range(LAST + 1)]
    assert tiny.predict(static.decide(nominal), nominal).total_ms == \
        min(tiny.predict(p, nominal).total_ms for p in everything)
    states = [SystemState(bandwidth_mbps=bw, edge_load=load) for bw in (0.1, 20, 1000) for load in (0, 0.9)]
    assert {static.decide(state) for state in states} == {static.decide(nominal)}


def test_fixed_policies():
    assert EdgeOnly(LAST + 1).decide(SystemState(1)) == Partition.edge_only(LAST + 1)
    assert CloudOnly().decide(SystemState(1)) == Partition.image_offload("jpeg-q75")
    assert FixedCut(Partition.chain(7)).decide(SystemState(1)) == Partition.chain(7)


def test_oracle_is_a_lower_bound(tiny):
    oracle = OraclePolicy(tiny, codecs=("fp32", "int8-channel"))
    assert oracle.needs_true_state and not Greedy.needs_true_state
    others = [Greedy(tiny), Greedy(tiny, range(-1, LAST + 1), "int8-channel"), EdgeOnly(LAST + 1), CloudOnly(),
              StaticOptimal(tiny, SystemState(bandwidth_mbps=20, rtt_ms=20)),
              DadsPolicy(tiny, 50.0, "auto", "fp32")]
    for bw in (0.3, 2, 8, 50):
        for load in (0, 0.7):
            state = SystemState(bandwidth_mbps=bw, rtt_ms=15, edge_load=load)
            best = tiny.predict(oracle.decide(state), state).total_ms
            assert all(best <= tiny.predict(p.decide(state), state).total_ms + 1e-9 for p in others)


def test_policy_names_are_the_evaluation_keys():
    names = [p.name for p in (FixedCut, EdgeOnly, CloudOnly, StaticOptimal, Greedy, DadsPolicy, OraclePolicy)]
    assert names == ["fixed", "edge-only", "cloud-only", "static-optimal", "greedy", "dads", "oracle"]
