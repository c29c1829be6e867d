"""Invariant 1: for every cut of every model, tail(head(x)) equals the full forward pass bit for bit."""
import cv2
import pytest
import torch

from l2p_ros.assets import SAMPLE_VIDEO, asset_path
from l2p_ros.model.darknet import load_model
from l2p_ros.model.graph import INPUT
from l2p_ros.model.postprocess import letterbox
from l2p_ros.model.runner import SplitRunner


def _frame():
    capture = cv2.VideoCapture(str(asset_path(SAMPLE_VIDEO)))
    for _ in range(30):  # a frame with people in it
        ok, frame = capture.read()
    capture.release()
    assert ok
    return frame


@pytest.fixture(scope="module")
def tiny():
    return SplitRunner(load_model("yolov3-tiny", input_size=416))


@pytest.fixture(scope="module")
def full_v3():
    # Pretrained full YOLOv3 weights do not exist offline; exactness does not depend on them. A
    # small input keeps 107 forward passes fast; cut semantics do not depend on the size.
    return SplitRunner(load_model("yolov3", input_size=128, random_weights=True))


def _assert_every_cut_exact(runner: SplitRunner, image: torch.Tensor):
    reference = runner.model(image)
    for cut in runner.graph.chain_cuts():
        payload = runner.head(image, cut)
        assert sorted(payload) == list(cut.crossing)
        # Simulate the wire in fp32: fresh contiguous copies, as the codec returns them.
        received = {k: v.clone().contiguous() for k, v in payload.items()}
        outputs = runner.tail(received, cut)
        for got, want in zip(outputs, reference, strict=True):
            assert torch.equal(got, want), f"cut after layer {cut.after_layer} is not bit-exact"


def test_every_tiny_cut_is_bit_exact_on_a_real_frame(tiny):
    image, _ = letterbox(_frame(), 416)
    _assert_every_cut_exact(tiny, image)


def test_every_yolov3_cut_is_bit_exact(full_v3):
    image, _ = letterbox(_frame(), 128)
    _assert_every_cut_exact(full_v3, image)


def test_a_payload_missing_a_crossing_tensor_is_refused(full_v3):
    image, _ = letterbox(_frame(), 128)
    payload = full_v3.head(image, 61)
    assert sorted(payload) == [36, 61]
    del payload[36]  # the skip feeding route 98
    with pytest.raises(ValueError, match="cut needs"):
        full_v3.tail(payload, 61)


def test_no_fewer_tensors_would_do(tiny):
    """Each crossing tensor is actually read after the cut: the tail fails without any one of them."""
    image, _ = letterbox(_frame(), 416)
    for cut in tiny.graph.chain_cuts()[1:-1]:
        payload = tiny.head(image, cut)
        for node in cut.crossing:
            partial = {k: v for k, v in payload.items() if k != node}
            rest = set(range(tiny.graph.num_layers)) - cut.edge_layers
            with pytest.raises(ValueError):
                tiny.run_segment(partial, rest, tiny.graph.yolo_layers)


def test_three_tier_split_is_bit_exact(tiny):
    image, _ = letterbox(_frame(), 416)
    reference = tiny.model(image)
    for first, second in [(INPUT, 9), (4, 13), (7, 20), (9, 23)]:
        fog_in = tiny.head(image, first)
        cloud_in = tiny.middle(fog_in, first, second)
        outputs = tiny.tail(cloud_in, second)
        assert all(torch.equal(a, b) for a, b in zip(outputs, reference, strict=True)), (first, second)


def test_general_dag_cut_is_bit_exact(tiny):
    image, _ = letterbox(_frame(), 416)
    cut = tiny.graph.dag_cut(list(range(14)) + [17, 18])
    outputs = tiny.tail(tiny.head(image, cut), cut)
    assert all(torch.equal(a, b) for a, b in zip(outputs, tiny.model(image), strict=True))
