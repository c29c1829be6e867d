"""Partition and SystemState: canonical forms, validation, and how partitions map onto cuts."""
import pytest

from l2p_ros.model.graph import CutError
from l2p_ros.policies.types import Partition, SystemState
from test.test_policies_fixtures import graph_of


def test_prefix_edge_sets_are_chain_cuts():
    assert Partition.dag(range(4)) == Partition.chain(3)
    assert Partition.dag([]) == Partition.image_offload("fp32")
    off_chain = Partition.dag([0, 1, 3])
    assert off_chain.cut_after_layer is None and off_chain.edge_set() == {0, 1, 3}
    assert Partition.chain(2).edge_set() == {0, 1, 2}


def test_names_and_cuts_on_the_real_graph():
    graph = graph_of("yolov3-tiny")
    n = graph.num_layers
    assert Partition.image_offload().name(n) == "cloud"
    assert Partition.edge_only(n).name(n) == "edge" and Partition.edge_only(n).is_edge_only(n)
    assert Partition.chain(9).to_cut(graph).crossing == (8, 9)
    assert Partition(cut_after_layer=5, fog_until_layer=12).name(n) == "5/12"
    dag = Partition.dag(list(range(14)) + [17, 18])
    assert dag.name(n).startswith("dag:") and dag.to_cut(graph).after_layer is None
    with pytest.raises(CutError):
        Partition.dag([0, 2]).to_cut(graph)  # layer 2 needs layer 1 on the edge


@pytest.mark.parametrize("kwargs", [
    {}, {"cut_after_layer": -2}, {"cut_after_layer": 3, "edge_layers": frozenset({0})},
    {"cut_after_layer": 3, "fog_until_layer": 3}, {"edge_layers": frozenset({0, 2}), "fog_until_layer": 5},
    {"cut_after_layer": 3, "codec": "jpeg-q75"},
])
def test_invalid_partitions(kwargs):
    with pytest.raises(ValueError):
        Partition(**kwargs)


@pytest.mark.parametrize("kwargs", [
    {"bandwidth_mbps": -1}, {"bandwidth_mbps": 10, "rtt_ms": -1}, {"bandwidth_mbps": 10, "edge_load": 1.5},
    {"bandwidth_mbps": 10, "frame_complexity": -0.1}, {"bandwidth_mbps": 10, "edge_queue_length": -1},
])
def test_invalid_states(kwargs):
    with pytest.raises(ValueError):
        SystemState(**kwargs)
