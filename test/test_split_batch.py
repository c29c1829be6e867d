"""The fleet cloud's batched stage: SplitDetector.cloud_batch against cloud(), frame by frame, on real
frames of the sample video with pretrained yolov3-tiny; every layer type at batch > 1."""
import dataclasses

import pytest
import torch

from l2p_ros import codec
from l2p_ros.assets import SAMPLE_VIDEO, asset_path
from l2p_ros.model.darknet import load_model
from l2p_ros.model.matching import match_pairs
from l2p_ros.model.postprocess import letterbox, load_class_names
from l2p_ros.model.runner import SplitRunner
from l2p_ros.sources import read_video
from l2p_ros.split import CloudResult, SplitDetector

FRAME_INDICES = (10, 30, 50, 70, 90, 110, 130)
TINY_DAG = "dag:" + ",".join(str(i) for i in [*range(14), 17, 18])  # off the chain: 8, 13 and 18 cross
# (cut, codec): image offload as JPEG and as a tensor, chain cuts lossless and lossy, a DAG cut
CASES = [("cloud", "jpeg-q75"), ("cloud", "jpeg-full-q75"), ("cloud", "fp32"), (4, "fp32"), (8, "int8-channel+zstd"),
         (13, "fp16+zstd"), (TINY_DAG, "fp32")]


@pytest.fixture(scope="module")
def images():
    return [frame for _, frame in read_video(asset_path(SAMPLE_VIDEO), FRAME_INDICES)]


@pytest.fixture(scope="module")
def detector():
    return SplitDetector(load_model("yolov3-tiny"), load_class_names(), "yolov3-tiny-416")


def _frames(detector, images, cut, codec_name):
    spec = codec.CodecSpec.parse(codec_name)
    return [detector.edge(image, cut, spec) for image in images]


def _assert_same_detections(got: CloudResult, want: CloudResult, where: str):
    # What holds on this CPU in fp32 is bit-exactness; the weaker bound is checked too, so a failure
    # says how far apart they are.
    pairs = match_pairs(want.detections, got.detections, iou_threshold=0.99)
    assert len(pairs) == len(want.detections) == len(got.detections), where
    assert got.detections == want.detections, f"{where}: same classes and IoU >= 0.99, but not bit-exact"


@pytest.mark.parametrize("cut, codec_name", CASES, ids=[f"{c}-{n}" for c, n in CASES])
def test_cloud_batch_equals_cloud_frame_by_frame(detector, images, cut, codec_name):
    frames = _frames(detector, images[:4], cut, codec_name)
    want = [detector.cloud(frame) for frame in frames]
    got = detector.cloud_batch(frames)
    assert len(got) == len(frames)
    assert sum(len(result.detections) for result in want) > 0  # real frames: people in them
    for position, (result, reference) in enumerate(zip(got, want)):
        assert isinstance(result, CloudResult)
        _assert_same_detections(result, reference, f"cut {cut} {codec_name} frame {position}")
        assert result.batch_size == 4 and result.batch_ms >= result.cloud_ms >= result.decode_ms >= 0


def test_a_mixed_batch_groups_by_cut_and_keeps_the_order(detector, images):
    """Seven frames of three cuts interleaved (uneven groups, so power-of-two chunks on the CPU)."""
    plan = [("cloud", "jpeg-q75"), (8, "fp32"), (8, "fp32"), ("cloud", "jpeg-q75"), (8, "fp32"),
            (TINY_DAG, "fp32"), (8, "fp32")]
    frames = [detector.edge(image, cut, codec.CodecSpec.parse(name)) for image, (cut, name) in zip(images, plan)]
    want = [detector.cloud(frame) for frame in frames]
    got = detector.cloud_batch(frames)
    for position, (result, reference) in enumerate(zip(got, want)):
        _assert_same_detections(result, reference, f"frame {position} {plan[position]}")
    # every frame's compute share is counted once: the shares add up to at most the call's time
    assert sum(result.cloud_ms for result in got) <= got[0].batch_ms


def _corrupt_records(frame):
    record = frame.records[0]
    frame.records = [dataclasses.replace(record, data=record.data[: len(record.data) // 2]), *frame.records[1:]]
    return frame


def _truncate_jpeg(frame):
    frame.image_jpeg = frame.image_jpeg[:-10]
    return frame


def _other_model(frame):
    frame.model_id = "yolov3-416"
    return frame


def _bad_cut(frame):
    frame.cut_after_layer = 999
    return frame


@pytest.mark.parametrize("cut, codec_name, spoil", [
    (8, "fp32", _corrupt_records), ("cloud", "jpeg-q75", _truncate_jpeg), (8, "fp32", _other_model),
    (8, "int8-channel+zstd", _bad_cut),
])
def test_a_malformed_frame_fails_only_itself(detector, images, cut, codec_name, spoil):
    frames = _frames(detector, images[:4], cut, codec_name)
    want = [detector.cloud(frame) for frame in frames]
    frames[1] = spoil(frames[1])
    with pytest.raises(codec.PayloadError):
        detector.cloud(frames[1])
    got = detector.cloud_batch(frames)
    assert isinstance(got[1], codec.PayloadError)
    for position in (0, 2, 3):
        _assert_same_detections(got[position], want[position], f"frame {position} beside a malformed one")
        assert got[position].batch_size == 4


def test_decode_workers_give_the_same_results_in_the_same_slots(images):
    """Seven frames decoded on three threads, among them malformed ones and two naming a bundled
    bottleneck that is not loaded yet (so threads may look it up at once): the same detections and
    errors, slot for slot, as decoding them one after another; the times stay per frame."""
    detector = SplitDetector(load_model("yolov3-tiny"), load_class_names(), "yolov3-tiny-416")
    plan = [("cloud", "jpeg-q75"), (8, "int8-channel+zstd"), (7, "bn:sample-scenes"), ("cloud", "jpeg-q75"),
            (8, "fp32"), (7, "bn:sample-scenes"), (8, "int8-channel+zstd")]
    frames = [detector.edge(image, cut, codec.CodecSpec.parse(name)) for image, (cut, name) in zip(images, plan)]
    frames[3], frames[6] = _truncate_jpeg(frames[3]), _bad_cut(frames[6])
    one_by_one = detector.cloud_batch(frames)
    detector = SplitDetector(load_model("yolov3-tiny"), load_class_names(), "yolov3-tiny-416")  # none loaded
    assert not detector.bottlenecks
    for _ in range(2):  # the second call reuses the threads
        threaded = detector.cloud_batch(frames, decode_workers=3)
        for position, (got, want) in enumerate(zip(threaded, one_by_one)):
            if isinstance(want, codec.PayloadError):
                assert type(got) is type(want) and str(got) == str(want), position
            else:
                _assert_same_detections(got, want, f"frame {position} {plan[position]}")
                assert got.batch_size == 7 and got.cloud_ms >= got.decode_ms > 0
    assert list(detector.bottlenecks) == ["sample-scenes"]


def test_an_empty_batch_and_a_batch_of_only_malformed_frames(detector, images):
    assert detector.cloud_batch([]) == []
    frame = _truncate_jpeg(_frames(detector, images[:1], "cloud", "jpeg-q75")[0])
    [result] = detector.cloud_batch([frame])
    assert isinstance(result, codec.PayloadError)


def test_chunks_are_powers_of_two_where_weights_are_packed_per_shape(detector):
    assert detector.model.packs_per_input_shape  # CPU fp32 (oneDNN in this build)
    assert detector._chunk_sizes(7, None) == [4, 2, 1]
    assert detector._chunk_sizes(16, None) == [16]
    assert detector._chunk_sizes(7, 2) == [2, 2, 2, 1]
    assert detector._chunk_sizes(0, None) == []


# ---- the layers themselves at batch > 1 --------------------------------------------------------------
def assert_batched_tails_equal_alone(runner, tensors, cuts):
    """At every cut, the frames' crossing tensors stacked through one tail equal each frame's full
    pass, bit for bit."""
    references = [runner.model(x) for x in tensors]
    for cut in cuts:
        payloads = [runner.head(x, cut) for x in tensors]
        stacked = {node: torch.cat([p[node] for p in payloads]) for node in cut.crossing}
        outputs = runner.tail(stacked, cut)
        for row, reference in enumerate(references):
            for got, want in zip(outputs, reference, strict=True):
                where = f"cut {cut.name(runner.graph.num_layers)}, image {row}"
                assert torch.equal(got[row: row + 1], want), where


def test_every_tiny_chain_cut_runs_a_batch_as_its_frames_alone(detector, images):
    """Stacked crossing tensors through the tail equal each frame's own tail, bit for bit (conv,
    Winograd, maxpool, route, upsample, yolo decoding)."""
    runner = detector.runner
    assert_batched_tails_equal_alone(runner, [letterbox(image, 416)[0] for image in images[:3]],
                                     runner.graph.chain_cuts()[:-1])


def test_yolov3_layers_run_a_batch_as_its_frames_alone(images):
    """Shortcut, the deeper routes and upsamples of YOLOv3 (random weights, small input)."""
    runner = SplitRunner(load_model("yolov3", input_size=128, random_weights=True))
    input_cut = runner.cut("cloud")
    assert_batched_tails_equal_alone(runner, [letterbox(image, 128)[0] for image in images[:3]],
                                     (input_cut, runner.cut(61)))
    assert input_cut.crossing == (-1,)


def test_alternating_batch_sizes_keep_their_packed_weights(detector):
    """The CPU keeps packed weights per input shape: going back to a batch size reuses them."""
    conv = detector.model.layers[0]
    x = torch.rand(2, 3, 416, 416)
    first = conv.cpu.packed_for(x[:1])
    second = conv.cpu.packed_for(x)
    assert conv.cpu.packed_for(x[:1]) is first and conv.cpu.packed_for(x) is second and first is not second
