"""DNNSplit candidates on the full crossing size of the real YOLO graphs."""
import pytest

from l2p_ros.model.graph import INPUT, crossing_bytes
from l2p_ros.policies.dnnsplit import dnnsplit_candidates, profile_candidates
from test.test_policies_fixtures import INPUT_SIZE, graph_of, synthetic_profile

INPUT_SHAPE = (1, 3, INPUT_SIZE, INPUT_SIZE)


def shapes(name):
    return [layer.output_shape for layer in synthetic_profile(name).layers]


@pytest.mark.parametrize("name, expected", [
    # Every interior YOLOv3 cut sends more than the fp32 image (from 36 to 97 layer 36's 52x52
    # skip tensor alone is 2.8 MB): only image offload and edge only survive.
    ("yolov3", [INPUT, 106]),
    ("yolov3-tiny", [INPUT, 3, 5, 7, 23]),
])
def test_candidates(name, expected):
    graph = graph_of(name)
    candidates = dnnsplit_candidates(graph, shapes(name), INPUT_SHAPE)
    assert candidates == expected
    assert profile_candidates(graph, synthetic_profile(name)) == candidates
    sizes = [crossing_bytes(graph.chain_cut(k), shapes(name), INPUT_SHAPE) for k in candidates[:-1]]
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == len(sizes)


def test_counting_only_the_cut_layer_would_keep_cuts_that_send_more_than_the_image():
    graph = graph_of("yolov3")
    image_bytes = crossing_bytes(graph.chain_cut(INPUT), shapes("yolov3"), INPUT_SHAPE)
    own_output_bytes = synthetic_profile("yolov3").layers[74].output_bytes  # 1024x13x13 fp32
    assert own_output_bytes < image_bytes / 2
    full = crossing_bytes(graph.chain_cut(74), shapes("yolov3"), INPUT_SHAPE)  # + skips 36 and 61
    assert full > 2 * image_bytes
