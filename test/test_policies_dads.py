"""DADS min cut and heavy-load placement: equal to brute force on random DAGs, valid on YOLOv3."""
import itertools
import warnings

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from l2p_ros.model.graph import INPUT
from l2p_ros.policies.dads import DadsPolicy, StageCosts, Surgery
from l2p_ros.policies.types import Partition, SystemState
from test.test_policies_fixtures import cost_model


@st.composite
def costed_dags(draw):
    """A DAG on nodes 0..n-1 (edges only from lower to higher, node 0 the input) with integer costs."""
    n = draw(st.integers(2, 10))
    pairs = [(u, v) for u in range(n) for v in range(u + 1, n)]
    present = draw(st.lists(st.booleans(), min_size=len(pairs), max_size=len(pairs)))
    dag = nx.DiGraph()
    dag.add_nodes_from(range(n))
    dag.add_edges_from(pair for pair, keep in zip(pairs, present) if keep)
    cost = st.lists(st.integers(0, 20).map(float), min_size=n, max_size=n)
    return dag, StageCosts(*(dict(enumerate(draw(cost))) for _ in range(3)))


def closed_sets_brute_force(dag):
    for mask in range(1, 2 ** len(dag), 2):  # odd masks: node 0 on the edge
        edge = frozenset(v for v in dag if mask >> v & 1)
        if all(u in edge for u, v in dag.edges if v in edge):
            yield edge


def stages_brute_force(dag, edge, costs):
    sent = [u for u in edge if any(v not in edge for v in dag.successors(u))]
    return (sum(costs.edge_ms[v] for v in edge), sum(costs.send_ms[u] for u in sent),
            sum(costs.cloud_ms[v] for v in dag if v not in edge))


def is_closed_with_input(dag, edge):
    return 0 in edge and all(u in edge for u, v in dag.edges if v in edge)


@settings(max_examples=150, deadline=None)
@given(costed_dags())
def test_light_load_min_cut_equals_brute_force(case):
    dag, costs = case
    edge = Surgery(dag, 0).light(costs)
    assert is_closed_with_input(dag, edge)
    best = min(sum(stages_brute_force(dag, s, costs)) for s in closed_sets_brute_force(dag))
    assert sum(stages_brute_force(dag, edge, costs)) == best


@settings(max_examples=150, deadline=None)
@given(costed_dags())
def test_heavy_load_equals_brute_force(case):
    dag, costs = case
    surgery = Surgery(dag, 0)
    edge = surgery.heavy(costs)
    assert is_closed_with_input(dag, edge)
    assert set(surgery.closed_sets.sets) == set(closed_sets_brute_force(dag))
    best = min(max(stages_brute_force(dag, s, costs)) for s in closed_sets_brute_force(dag))
    assert max(stages_brute_force(dag, edge, costs)) == best
    assert surgery.stages(edge, costs) == stages_brute_force(dag, edge, costs)


def test_the_input_stays_on_the_edge_and_nothing_flows_back():
    # 0 -> 1 -> 2 where layer 1 is dear on the edge and layer 2 dear in the cloud. Without the
    # two fixes the cheapest "placement" would run 2 on the edge without its input 1 ({0, 2}: 6
    # ms) or the input in the cloud ({2}: 0 ms); the only valid best is everything on the edge.
    dag = nx.DiGraph([(0, 1), (1, 2)])
    costs = StageCosts({0: 5.0, 1: 100.0, 2: 0.0}, {0: 0.0, 1: 0.0, 2: 100.0}, {0: 1.0, 1: 1.0, 2: 0.0})
    unconstrained = min((frozenset(s) for r in range(4) for s in itertools.combinations(range(3), r)),
                        key=lambda s: sum(stages_brute_force(dag, s, costs)))
    assert unconstrained == {2}
    assert Surgery(dag, 0).light(costs) == {0, 1, 2}


def test_exact_heavy_load_refuses_wide_dags():
    star = nx.DiGraph([(0, leaf) for leaf in range(1, 21)])  # 2**20 closed sets
    costs = StageCosts(*({v: 1.0 for v in star} for _ in range(3)))
    with pytest.raises(ValueError, match="more than 1000 closed edge sets"):
        Surgery(star, 0, closed_set_limit=1000).heavy(costs)
    assert Surgery(star, 0).light(costs) == set(star)  # the min cut has no such limit


STATES = [SystemState(bandwidth_mbps=bw, rtt_ms=20, edge_load=load)
          for bw, load in itertools.product([2, 20, 200, 2000], [0.0, 0.8])]


@pytest.fixture(scope="module")
def yolov3():
    return cost_model("yolov3", edge_speed=1.0, cloud_speed=20.0)


@pytest.mark.parametrize("codec", ["fp32", "int8-channel"])
def test_yolov3_min_cut_beats_every_chain_cut(yolov3, codec):
    dads = DadsPolicy(yolov3, frame_interval_ms=float("inf"), mode="light", codec=codec)
    chains = [Partition.image_offload()] + [Partition.chain(k, codec) for k in range(yolov3.num_layers)]
    for state in STATES:
        chosen = dads.decide(state)
        chosen.to_cut(yolov3.graph)  # a valid cut: closed under predecessors
        best_chain = min(yolov3.predict(p, state).total_ms for p in chains)
        assert yolov3.predict(chosen, state).total_ms <= best_chain + 1e-6


def test_yolov3_min_cut_is_the_best_closed_set(yolov3):
    """The min-cut costs are the cost model's: its placement is the best of all 325 closed sets."""
    dads = DadsPolicy(yolov3, frame_interval_ms=float("inf"), mode="light", codec="int8-channel")
    placements = [dads.to_partition(s) for s in dads.surgery.closed_sets.sets]
    assert len(placements) == 325
    for state in STATES[1::3]:
        best = min(yolov3.predict(p, state).total_ms for p in placements)
        assert yolov3.predict(dads.decide(state), state).total_ms == pytest.approx(best)


def test_yolov3_heavy_load_and_the_dynamic_switch(yolov3):
    state = SystemState(bandwidth_mbps=50, rtt_ms=20)
    light = DadsPolicy(yolov3, float("inf"), "light", "int8-channel").decide(state)
    heavy = DadsPolicy(yolov3, float("inf"), "heavy", "int8-channel").decide(state)
    predict = lambda p: yolov3.predict(p, state)  # noqa: E731
    assert predict(heavy).bottleneck_ms <= predict(light).bottleneck_ms
    assert predict(light).total_ms <= predict(heavy).total_ms
    chain_bottleneck = min(predict(Partition.chain(k, "int8-channel")).bottleneck_ms for k in range(106))
    assert predict(heavy).bottleneck_ms <= chain_bottleneck + 1e-6
    # Auto: light while its slowest stage keeps up with the camera, heavy when it does not.
    assert DadsPolicy(yolov3, predict(light).bottleneck_ms * 2, "auto", "int8-channel").decide(state) == light
    assert DadsPolicy(yolov3, predict(light).bottleneck_ms / 2, "auto", "int8-channel").decide(state) == heavy


def test_edge_only_and_image_offload_come_out_as_such(yolov3):
    dads = DadsPolicy(yolov3, float("inf"), "light")
    assert dads.decide(SystemState(bandwidth_mbps=0.01, rtt_ms=20)) == Partition.edge_only(107)
    assert dads.decide(SystemState(bandwidth_mbps=1000, rtt_ms=1)) == Partition.image_offload()
    assert INPUT in dads.surgery.light(dads.stage_costs(SystemState(bandwidth_mbps=1000), True))


def test_link_down_runs_everything_on_the_edge(yolov3):
    link_down = SystemState(bandwidth_mbps=0, rtt_ms=20)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no inf * 0 on the way
        for mode in ("light", "heavy"):
            assert DadsPolicy(yolov3, 50.0, mode).decide(link_down) == Partition.edge_only(107)
