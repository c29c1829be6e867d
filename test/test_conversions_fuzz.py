"""The FeatureMap-to-frame conversion under hostile messages: every received message either becomes
detections or is refused with PayloadError (the cloud node counts that as malformed_payload and
goes on); nothing else may escape, since any other exception is counted as the tier's own failure.
The codec's bytes are fuzzed in test_codec.py; here the message's framing fields are."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from l2p_msgs.msg import CrossingTensor, FeatureMap
from l2p_ros.assets import SAMPLE_VIDEO, asset_path
from l2p_ros.codec import CodecSpec, PayloadError
from l2p_ros.model.darknet import load_model
from l2p_ros.model.postprocess import load_class_names
from l2p_ros.nodes.conversions import frame_to_msg, msg_to_frame
from l2p_ros.sources import read_video
from l2p_ros.split import SplitDetector

# (cut, codec) of the valid frames the messages start from: tensors of every dtype, and an image.
STARTS = (("7", "int8-channel+zstd"), ("4", "fp16+lz4"), ("12", "fp32"), ("cloud", "jpeg-q75"))


@pytest.fixture(scope="module")
def detector():
    return SplitDetector(load_model("yolov3-tiny"), load_class_names(), "yolov3-tiny-416")


@pytest.fixture(scope="module")
def valid_messages(detector):
    image = next(frame for index, frame in read_video(asset_path(SAMPLE_VIDEO)) if index == 10)
    return Messages(frame_to_msg(detector.edge(image, cut, CodecSpec.parse(name)), FeatureMap()) for cut, name in STARTS)


class Messages(list):
    """The valid messages, with a short repr: hypothesis prints its arguments on failure."""

    def __repr__(self) -> str:
        return f"<{len(self)} valid FeatureMaps: {', '.join(f'{c}/{n}' for c, n in STARTS)}>"


def _copy(msg: FeatureMap) -> FeatureMap:
    out = FeatureMap()
    for field in FeatureMap.get_fields_and_field_types():
        setattr(out, field, getattr(msg, field))
    out.tensors = [CrossingTensor(layer_index=t.layer_index, shape=list(t.shape), dtype=t.dtype,
                                  quant_scale=list(t.quant_scale), quant_zero_point=list(t.quant_zero_point),
                                  data=bytes(t.data)) for t in msg.tensors]
    return out


INT32 = st.integers(-2**31, 2**31 - 1)
FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=32)
# field -> values a hostile sender may put there (what the message type allows).
MUTATIONS = {
    "model_id": st.sampled_from(["", "yolov3-416", "yolov3-tiny-320", "x" * 1000]),
    "codec": st.sampled_from(["", "fp32", "int8", "int8-channel+zstd", "jpeg-q75", "bn:nothing", "bn:../../etc",
                              "fp16+lz4", "nonsense+zstd"]),
    "cut_after_layer": st.one_of(st.integers(-3, 30), INT32),
    "input_size": st.sampled_from([0, 32, 320, 416, 2**31 - 1]),
    "image_width": st.integers(0, 2**32 - 1), "image_height": st.integers(0, 2**32 - 1),
    "letterbox_scale": FLOATS, "letterbox_pad_x": FLOATS, "letterbox_pad_y": FLOATS,
    "edge_layers": st.lists(st.integers(-5, 40), max_size=30),
    "image_data": st.binary(max_size=64),
    "tensor_layer": INT32, "tensor_shape": st.lists(st.integers(0, 2**32 - 1), max_size=6),
    "tensor_dtype": st.sampled_from(["", "float32", "float16", "int8", "uint8", "float64"]),
    "tensor_scale": st.lists(FLOATS, max_size=300), "tensor_zero_point": st.lists(INT32, max_size=300),
    "tensor_data": st.binary(max_size=256), "tensors_dropped": st.just(None), "tensor_duplicated": st.just(None),
}


# Mutation name -> the CrossingTensor field it sets on the message's first tensor.
TENSOR_FIELDS = {"tensor_layer": "layer_index", "tensor_shape": "shape", "tensor_dtype": "dtype",
                 "tensor_scale": "quant_scale", "tensor_zero_point": "quant_zero_point", "tensor_data": "data"}


def _mutate(msg: FeatureMap, field: str, value) -> None:
    tensor = msg.tensors[0] if msg.tensors else None
    if field.startswith("tensor") and tensor is None:
        msg.tensors = [CrossingTensor()]
        tensor = msg.tensors[0]
    if field in TENSOR_FIELDS:
        setattr(tensor, TENSOR_FIELDS[field], value)
    elif field == "tensors_dropped":
        msg.tensors = []
    elif field == "tensor_duplicated":
        msg.tensors = list(msg.tensors) + [tensor]
    else:
        setattr(msg, field, value)


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(start=st.integers(0, len(STARTS) - 1),
       changes=st.lists(st.sampled_from(sorted(MUTATIONS)).flatmap(
           lambda field: st.tuples(st.just(field), MUTATIONS[field])), min_size=1, max_size=3))
def test_hostile_feature_maps_become_detections_or_payload_errors(detector, valid_messages, start, changes):
    msg = _copy(valid_messages[start])
    for field, value in changes:
        _mutate(msg, field, value)
    try:
        frame = msg_to_frame(msg, 416)
        result = detector.cloud(frame)
    except PayloadError:
        return
    assert all(np.isfinite([d.x1, d.y1, d.x2, d.y2, d.score]).all() for d in result.detections)


def test_the_payload_cap_refuses_a_message_before_reading_it(valid_messages):
    msg = valid_messages[0]
    carried = sum(len(t.data) for t in msg.tensors)
    assert msg_to_frame(msg, 416, max_payload_bytes=carried).records
    with pytest.raises(PayloadError, match=f"payload of {carried} B exceeds max_payload_bytes {carried - 1}"):
        msg_to_frame(msg, 416, max_payload_bytes=carried - 1)
    many = _copy(msg)
    many.edge_layers = list(range(100_000))
    with pytest.raises(PayloadError, match="too many"):
        msg_to_frame(many, 416)


def test_unknown_bottleneck_names_are_remembered_within_a_bound(detector, monkeypatch):
    from l2p_ros import split

    monkeypatch.setattr(split, "MAX_REFUSED_BOTTLENECKS", 3)
    monkeypatch.setattr(detector, "_refused_bottlenecks", {})
    for name in ("n0", "n1", "n2"):
        with pytest.raises(PayloadError, match=f"bn:{name}: .*{name}"):
            detector.bottleneck(CodecSpec.parse(f"bn:{name}"))
    with pytest.raises(PayloadError, match="3 unknown bottleneck names were refused already"):
        detector.bottleneck(CodecSpec.parse("bn:n3"))
    assert sorted(detector._refused_bottlenecks) == ["n0", "n1", "n2"]
    with pytest.raises(PayloadError, match="bn:n1: .*n1"):  # a remembered one keeps its own reason
        detector.bottleneck(CodecSpec.parse("bn:n1"))
