"""Which tensors cross a cut (invariant 2), on the real YOLOv3 and YOLOv3-tiny graphs."""
import pytest

from l2p_ros.model.cfg import CfgError, bundled_cfg, parse_cfg, parse_cfg_text
from l2p_ros.model.graph import INPUT, CutError, LayerGraph


@pytest.fixture(scope="module", params=["yolov3", "yolov3-tiny"])
def graph(request):
    return LayerGraph(parse_cfg(bundled_cfg(request.param)))


def test_layer_counts_and_heads():
    assert LayerGraph(parse_cfg(bundled_cfg("yolov3"))).yolo_layers == (82, 94, 106)
    assert LayerGraph(parse_cfg(bundled_cfg("yolov3-tiny"))).yolo_layers == (16, 23)


@pytest.mark.parametrize("after_layer, crossing", [
    (INPUT, (INPUT,)), (0, (0,)), (4, (4,)),  # a shortcut's source crosses with its partner
    (3, (1, 3)), (36, (36,)), (37, (36, 37)), (61, (36, 61)), (62, (36, 61, 62)),
    (79, (36, 61, 79)), (82, (36, 61, 79, 82)), (83, (36, 61, 82, 83)),
    (86, (36, 82, 86)), (98, (82, 94, 98)), (105, (82, 94, 105)), (106, (82, 94, 106)),
])
def test_yolov3_crossings(after_layer, crossing):
    graph = LayerGraph(parse_cfg(bundled_cfg("yolov3")))
    assert graph.chain_cut(after_layer).crossing == crossing


def test_tiny_crossings():
    graph = LayerGraph(parse_cfg(bundled_cfg("yolov3-tiny")))
    assert graph.chain_cut(7).crossing == (7,)
    assert graph.chain_cut(9).crossing == (8, 9)  # layer 8 feeds route 20
    assert graph.chain_cut(16).crossing == (8, 13, 16)  # yolo output 16 is already final
    assert graph.chain_cut(23).crossing == (16, 23)


def test_every_chain_cut_carries_exactly_what_is_used_later(graph):
    """Brute force from the definition: produced at or before k, read after k or a network output."""
    spec = graph.spec
    for cut in graph.chain_cuts():
        k = cut.after_layer
        expected = {s for layer in spec.layers[k + 1:] for s in layer.inputs if s <= k}
        expected |= {i for i in graph.yolo_layers if i <= k}
        assert set(cut.crossing) == expected, k


def test_dag_cut_must_be_closed_under_predecessors(graph):
    with pytest.raises(CutError, match="inputs"):
        graph.dag_cut([1])  # layer 1 needs layer 0
    chain = graph.dag_cut(range(5))
    assert chain.after_layer == 4 and chain.crossing == graph.chain_cut(4).crossing
    assert graph.dag_cut([]).crossing == (INPUT,)


def test_dag_cut_off_the_chain():
    graph = LayerGraph(parse_cfg(bundled_cfg("yolov3-tiny")))
    # Run the backbone through layer 13 plus the second branch's route and 1x1 conv (17, 18) on
    # the edge, but leave the first head (14..16) to the cloud.
    cut = graph.dag_cut(list(range(14)) + [17, 18])
    assert cut.after_layer is None
    assert cut.crossing == (8, 13, 18)
    assert cut.name(graph.num_layers).startswith("dag:")


def test_parse_cut_names(graph):
    last = graph.num_layers - 1
    assert graph.parse_cut("edge").after_layer == last
    assert graph.parse_cut("cloud").after_layer == INPUT
    assert graph.parse_cut("3").after_layer == 3
    for bad in ("x", str(last + 1), "-2"):
        with pytest.raises(CutError):
            graph.parse_cut(bad)


def test_cfg_errors_name_the_problem():
    with pytest.raises(CfgError, match=r"first section must be \[net\]"):
        parse_cfg_text("[convolutional]\nfilters=1\n")
    with pytest.raises(CfgError, match="unsupported type"):
        parse_cfg_text("[net]\n[lstm]\n")
    with pytest.raises(CfgError, match="outside"):
        parse_cfg_text("[net]\n[convolutional]\nfilters=1\nsize=1\n[route]\nlayers=-5\n")
    with pytest.raises(FileNotFoundError, match="nowhere.cfg"):
        parse_cfg("/nowhere.cfg")


@pytest.mark.parametrize("options, match", [
    ("filters=-3\nsize=3\nstride=1", r"layer 0 \(convolutional\): filters=-3 must be >= 1"),
    ("filters=16\nsize=0\nstride=1", r"size=0 must be >= 1"),
    ("filters=16\nsize=3\nstride=two", r"stride='two' is not an integer"),
])
def test_impossible_layer_sizes_are_cfg_errors(options, match):
    with pytest.raises(CfgError, match=match):
        parse_cfg_text(f"[net]\nchannels=3\n[convolutional]\n{options}\n")
