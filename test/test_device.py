"""Device and precision: validated at construction on any machine; on a CUDA machine, real weights on
real frames give the CPU's detections, fp16 gives fp32's, and received payloads decode onto the GPU."""
import subprocess
import sys

import cv2
import pytest
import torch

from l2p_ros import codec
from l2p_ros.assets import SAMPLE_IMAGES, SAMPLE_VIDEO, asset_path
from l2p_ros.model.darknet import MaxPoolLayer, load_model
from l2p_ros.model.device import precision_name, resolve_device
from l2p_ros.model.matching import match_pairs
from l2p_ros.model.postprocess import letterbox, load_class_names
from l2p_ros.split import SplitDetector

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
IOU_MATCH = 0.9


def _no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def _frames(video_frames: int = 12) -> list:
    """The bundled images and frames spread over the sample video (real scenes, people and cars)."""
    frames = [cv2.imread(str(asset_path(name))) for name in SAMPLE_IMAGES]
    capture = cv2.VideoCapture(str(asset_path(SAMPLE_VIDEO)))
    index = 0
    while len(frames) < len(SAMPLE_IMAGES) + video_frames:
        ok, frame = capture.read()
        assert ok, "sample video ended early"
        if index % 60 == 30:
            frames.append(frame)
        index += 1
    capture.release()
    return frames


def _agreement(references: list, candidates: list) -> tuple[int, int]:
    """(matched, max(reference total, candidate total)): same class, IoU >= 0.9, one-to-one."""
    matched = sum(len(match_pairs(r, c, IOU_MATCH)) for r, c in zip(references, candidates, strict=True))
    return matched, max(sum(map(len, references)), sum(map(len, candidates)))


# ---- validation, on any machine ------------------------------------------------------------------


def test_cpu_fp32_is_the_default_and_cuda_index_is_explicit():
    assert resolve_device() == (torch.device("cpu"), torch.float32)
    assert resolve_device("CPU", "fp32") == (torch.device("cpu"), torch.float32)
    assert precision_name(torch.float16) == "fp16"


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "mps", "cpu:1", "cuda:-1", ""])
def test_unknown_device_string_is_a_clear_error(device):
    with pytest.raises(ValueError, match=r"device=.*allowed: 'cpu', 'cuda', 'cuda:N'"):
        resolve_device(device)


def test_unknown_precision_is_a_clear_error():
    with pytest.raises(ValueError, match=r"precision='bf16' unknown; allowed: 'fp32', 'fp16'"):
        resolve_device("cpu", "bf16")


@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_cuda_without_a_gpu_says_so(monkeypatch, device):
    _no_cuda(monkeypatch)
    with pytest.raises(ValueError, match=r"torch.cuda.is_available\(\) is False.*use device='cpu'"):
        resolve_device(device)


def test_a_cuda_index_past_the_last_gpu_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match=r"device='cuda:3': no such CUDA device, this machine has 1"):
        resolve_device("cuda:3")


def test_fp16_on_cpu_is_refused_with_the_reason():
    with pytest.raises(ValueError, match=r"precision='fp16' needs a CUDA device.*fp32 only"):
        resolve_device("cpu", "fp16")


def test_load_model_refuses_a_bad_pair_before_loading(monkeypatch):
    _no_cuda(monkeypatch)
    with pytest.raises(ValueError, match="precision='fp16'"):
        load_model("yolov3-tiny", precision="fp16")
    with pytest.raises(ValueError, match="is_available"):
        load_model("yolov3-tiny", device="cuda")


def test_split_detector_validates_at_construction_not_on_the_first_frame(monkeypatch):
    _no_cuda(monkeypatch)
    model, names = load_model("yolov3-tiny"), load_class_names()
    with pytest.raises(ValueError, match="is_available"):
        SplitDetector(model, names, "yolov3-tiny-416", device="cuda")
    with pytest.raises(ValueError, match="precision='fp16' needs a CUDA device"):
        SplitDetector(model, names, "yolov3-tiny-416", precision="fp16")
    model.half()  # moved by hand to a pair that cannot run: still refused up front
    with pytest.raises(ValueError, match="precision='fp16' needs a CUDA device"):
        SplitDetector(model, names, "yolov3-tiny-416")


def test_cpu_detector_keeps_its_fp32_model_in_place():
    model = load_model("yolov3-tiny")
    detector = SplitDetector(model, load_class_names(), "yolov3-tiny-416", device="cpu", precision="fp32")
    assert detector.model is model and (model.device, model.dtype) == (torch.device("cpu"), torch.float32)
    assert model.to_device("cpu", "fp32") is model


@pytest.mark.parametrize("flags, message", [
    (["--precision", "fp16"], "precision='fp16' needs a CUDA device"),
    (["--device", "tpu"], "device='tpu' is not a device"),
])
def test_detect_command_rejects_a_bad_device_or_precision(flags, message):
    result = subprocess.run([sys.executable, "-m", "l2p_ros.cli", "detect", *flags, str(asset_path("messi5.jpg"))],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and message in result.stderr, result.stderr


def test_maxpool_off_the_cpu_path_takes_the_same_windows():
    # The GPU path (one max_pool2d on the -inf padded input) against the CPU's separable max, on CPU.
    model = load_model("yolov3-tiny")
    generator = torch.Generator().manual_seed(0)
    pools = [(i, m) for i, m in enumerate(model.layers) if isinstance(m, MaxPoolLayer)]
    assert {(m.size, m.stride) for _, m in pools} == {(2, 2), (2, 1)}
    for index, pool in pools:
        x = torch.randn(model.output_shapes[index - 1], generator=generator)
        assert torch.equal(pool._pool(pool._padded(x)), pool(x)), f"maxpool layer {index}"


def test_decode_lands_in_the_requested_dtype():
    tensors = {4: torch.randn(1, 16, 8, 8)}
    spec = codec.CodecSpec.parse("fp16+zstd")
    records = codec.encode_tensors(tensors, spec)
    as_fp32 = codec.decode_tensors(records, spec, {4: (1, 16, 8, 8)})
    as_fp16 = codec.decode_tensors(records, spec, {4: (1, 16, 8, 8)}, device="cpu", dtype=torch.float16)
    assert as_fp32[4].dtype == torch.float32 and as_fp16[4].dtype == torch.float16
    assert torch.equal(as_fp16[4].float(), as_fp32[4])  # fp16 on the wire: nothing lost either way


# ---- on a CUDA device ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def frames():
    return _frames()


@pytest.fixture(scope="module")
def cpu_detections(frames):
    detector = SplitDetector(load_model("yolov3-tiny"), load_class_names(), "yolov3-tiny-416")
    return [detector.detect(frame) for frame in frames]


@needs_cuda
def test_cuda_detections_match_the_cpu_on_real_frames(frames, cpu_detections):
    detector = SplitDetector(load_model("yolov3-tiny", device="cuda"), load_class_names(), "yolov3-tiny-416")
    assert detector.model.device.type == "cuda"
    cuda_detections = [detector.detect(frame) for frame in frames]
    assert sum(map(len, cpu_detections)) >= 30  # real scenes: enough to compare
    matched, total = _agreement(cpu_detections, cuda_detections)
    assert matched >= 0.99 * total, f"{matched} of {total} detections agree"


@needs_cuda
def test_fp16_detections_match_fp32_on_real_frames(frames):
    names = load_class_names()
    fp32 = SplitDetector(load_model("yolov3-tiny", device="cuda"), names, "yolov3-tiny-416")
    fp16 = SplitDetector(load_model("yolov3-tiny", device="cuda", precision="fp16"), names, "yolov3-tiny-416")
    assert fp16.model.dtype == torch.float16
    matched, total = _agreement([fp32.detect(f) for f in frames], [fp16.detect(f) for f in frames])
    assert matched >= 0.97 * total, f"{matched} of {total} detections agree"


@needs_cuda
def test_letterbox_placed_on_the_gpu_equals_the_cpu(frames):
    """The uint8 pixels go to the GPU and are placed and scaled there: the same float32 input."""
    for frame in frames[:2]:
        on_cpu, info = letterbox(frame, 416)
        on_gpu, same_info = letterbox(frame, 416, device="cuda")
        assert on_gpu.device.type == "cuda" and same_info == info and torch.equal(on_gpu.cpu(), on_cpu)
        assert torch.equal(letterbox(frame, 416, device="cuda", dtype=torch.float16)[0], on_gpu.half())


@needs_cuda
@pytest.mark.parametrize("codec_name", ["int8-tensor", "int8-channel+zstd", "int8-channel+lz4"])
def test_int8_dequantized_on_the_gpu_equals_the_cpu(codec_name):
    """int8 codes go to the GPU as codes and are dequantized there: the same float32 values."""
    x = torch.randn(1, 32, 13, 13).clamp(min=-0.5) * torch.logspace(-2, 2, 32).view(1, 32, 1, 1)
    spec = codec.CodecSpec.parse(codec_name)
    records = codec.encode_tensors({8: x}, spec)
    on_cpu = codec.decode_tensors(records, spec, {8: (1, 32, 13, 13)})[8]
    on_gpu = codec.decode_tensors(records, spec, {8: (1, 32, 13, 13)}, device="cuda")[8]
    assert on_gpu.device.type == "cuda" and torch.equal(on_gpu.cpu(), on_cpu)


@needs_cuda
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("cut, codec_name", [("8", "fp16+zstd"), ("13", "int8-channel+zstd"), ("cloud", "jpeg-q75")])
def test_cpu_edge_to_cuda_cloud(frames, cpu_detections, precision, cut, codec_name):
    """A vehicle on the CPU, the cloud on the GPU: payloads decode onto the GPU in its dtype."""
    names = load_class_names()
    edge = SplitDetector(load_model("yolov3-tiny"), names, "yolov3-tiny-416")
    cloud = SplitDetector(load_model("yolov3-tiny", device="cuda", precision=precision), names, "yolov3-tiny-416")
    spec = codec.CodecSpec.parse(codec_name)
    sent = [edge.edge(frame, cut, spec) for frame in frames]
    if not sent[0].image_jpeg:
        decoded = codec.decode_tensors(sent[0].records, spec, cloud.runner.expected_shapes(cut),
                                       device=cloud.device, dtype=cloud.dtype)
        assert all(t.device.type == "cuda" and t.dtype == cloud.dtype for t in decoded.values())
    results = [cloud.cloud(frame) for frame in sent]
    assert all(r.cloud_ms >= r.decode_ms >= 0 for r in results)
    # Against the same lossy codec run wholly on the CPU: only the device and precision differ.
    reference = [edge.cloud(frame).detections for frame in sent]
    matched, total = _agreement(reference, [r.detections for r in results])
    assert matched >= 0.95 * total, f"{matched} of {total} detections agree"


@needs_cuda
@pytest.mark.parametrize("first, second, first_codec", [("4", 13, "fp16"), ("cloud", 8, "jpeg-q90")])
def test_edge_fog_cloud_on_cuda_matches_the_same_path_on_the_cpu(frames, first, second, first_codec):
    names = load_class_names()
    cpu = SplitDetector(load_model("yolov3-tiny"), names, "yolov3-tiny-416")
    gpu = SplitDetector(load_model("yolov3-tiny", device="cuda", precision="fp16"), names, "yolov3-tiny-416")
    first_spec, second_spec = codec.CodecSpec.parse(first_codec), codec.CodecSpec.parse("fp16")

    def through(detector, frame):
        forwarded = detector.fog(detector.edge(frame, first, first_spec), second, second_spec)
        assert forwarded.edge_ms > 0
        return detector.cloud(forwarded).detections

    # The same lossy codecs on both sides: only the device and precision differ.
    matched, total = _agreement([through(cpu, f) for f in frames[:8]], [through(gpu, f) for f in frames[:8]])
    assert total > 0 and matched >= 0.9 * total, f"{matched} of {total} detections agree"
