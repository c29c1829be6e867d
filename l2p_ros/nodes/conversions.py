"""Translations between core types (l2p_ros.split, l2p_ros.codec) and l2p_msgs messages.

Decoding a received message never trusts it: anything malformed raises codec.PayloadError so the
node can drop the frame and count it.
"""
from __future__ import annotations

import math

from l2p_msgs.msg import CrossingTensor, Detection as DetectionMsg, DropCount, FeatureMap, PipelineStats

from l2p_ros import codec
from l2p_ros.model.postprocess import Detection, LetterboxInfo
from l2p_ros.split import EncodedFrame
from l2p_ros.stats import StageStats

# The most payload bytes (tensor data plus image) a received FeatureMap may carry: checked before any
# byte is copied or decoded. YOLOv3-608's largest crossing in fp32 is about 45 MB; the cloud node's
# ``max_payload_bytes`` sets it per deployment.
DEFAULT_MAX_PAYLOAD_BYTES = 64 * 2**20


def frame_to_msg(frame: EncodedFrame, msg: FeatureMap) -> FeatureMap:
    """Fill ``msg`` (header, seq and timings set by the caller) from an encoded frame."""
    msg.model_id = frame.model_id
    msg.cut_after_layer = frame.cut_after_layer
    msg.edge_layers = list(frame.edge_layers)
    msg.codec = str(frame.codec)
    msg.tensors = [CrossingTensor(layer_index=r.layer_index, shape=list(r.shape), dtype=r.dtype,
                                  quant_scale=list(r.quant_scale), quant_zero_point=list(r.quant_zero_point),
                                  data=r.data) for r in frame.records]
    msg.image_data = frame.image_jpeg
    msg.payload_bytes = frame.payload_bytes
    info = frame.letterbox
    msg.image_width, msg.image_height, msg.input_size = int(info.image_width), int(info.image_height), int(info.input_size)
    # Explicit casts: a Python int in a float field aborts the process inside rosidl's C conversion.
    msg.letterbox_scale, msg.letterbox_pad_x, msg.letterbox_pad_y = float(info.scale), float(info.pad_x), float(info.pad_y)
    return msg


def msg_to_frame(msg: FeatureMap, input_size: int, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES) -> EncodedFrame:
    """A received FeatureMap as an EncodedFrame; PayloadError when its framing is inconsistent or it
    carries more than ``max_payload_bytes``.

    Tensor contents, shapes and dtypes are validated later against the cut by ``codec.decode_tensors``.
    """
    carried = len(msg.image_data) + sum(len(t.data) for t in msg.tensors)
    if carried > max_payload_bytes:
        raise codec.PayloadError(f"payload of {carried} B exceeds max_payload_bytes {max_payload_bytes}")
    if len(msg.tensors) > 64 or len(msg.edge_layers) > 4096:  # far above any cut of the models we run
        raise codec.PayloadError(f"{len(msg.tensors)} tensors / {len(msg.edge_layers)} edge_layers: too many")
    spec = codec.CodecSpec.parse(msg.codec)
    if msg.input_size != input_size:
        raise codec.PayloadError(f"frame was letterboxed to {msg.input_size} px, this model runs {input_size} px")
    if bool(msg.image_data) == bool(msg.tensors):
        raise codec.PayloadError("a FeatureMap carries either tensors or an image, not both or neither")
    if bool(msg.image_data) != (spec.dtype == "jpeg"):
        raise codec.PayloadError(f"codec {spec} does not match the payload kind")
    scale = float(msg.letterbox_scale)
    if not (math.isfinite(scale) and scale > 0) or not 0 < msg.image_width <= 16384 or not 0 < msg.image_height <= 16384:
        raise codec.PayloadError(f"implausible image geometry {msg.image_width}x{msg.image_height} scale {scale}")
    pads = (float(msg.letterbox_pad_x), float(msg.letterbox_pad_y))
    if not all(math.isfinite(pad) and 0 <= pad <= msg.input_size for pad in pads):  # found by fuzzing: inf
        raise codec.PayloadError(f"letterbox padding {pads} outside 0..{msg.input_size}")
    info = LetterboxInfo(scale, int(pads[0]), int(pads[1]),
                         int(msg.image_width), int(msg.image_height), int(msg.input_size))
    records = [codec.TensorRecord(t.layer_index, tuple(int(d) for d in t.shape), t.dtype,
                                  tuple(t.quant_scale), tuple(t.quant_zero_point), bytes(t.data))
               for t in msg.tensors]
    return EncodedFrame(msg.model_id, msg.cut_after_layer, spec, info, records, bytes(msg.image_data),
                        edge_layers=tuple(int(i) for i in msg.edge_layers))


def detections_to_msgs(detections: list[Detection]) -> list[DetectionMsg]:
    return [DetectionMsg(class_id=int(d.class_id), label=d.label, score=float(d.score),
                         center_x=float(d.x1 + d.x2) / 2, center_y=float(d.y1 + d.y2) / 2,
                         size_x=float(d.x2 - d.x1), size_y=float(d.y2 - d.y1)) for d in detections]


def stats_to_msg(snapshot: dict, msg: PipelineStats) -> PipelineStats:
    """Fill ``msg`` (header set by the caller) from ``StageStats.snapshot()``."""
    for name in ("frames_in", "frames_detected", "frames_offloaded", "frames_fallback", "frames_dropped"):
        setattr(msg, name, int(snapshot[name]))
    msg.drops = [DropCount(reason=reason, count=int(count)) for reason, count in sorted(snapshot["drops"].items())]
    for name in ("latency_mean_ms", "latency_p95_ms", "payload_bytes_mean", "fps"):
        setattr(msg, name, float(snapshot[name]))
    return msg


def publish_stage_stats(node, stats: StageStats, publisher) -> tuple[dict, dict]:
    """Publish a stage's PipelineStats now; return its counters flat (``dropped_<reason>``) for
    diagnostics, and its drops by reason."""
    snapshot = stats.snapshot()
    msg = stats_to_msg(snapshot, PipelineStats())
    msg.header.stamp = node.get_clock().now().to_msg()
    publisher.publish(msg)
    drops = snapshot.pop("drops")
    return {**snapshot, **{f"dropped_{reason}": count for reason, count in drops.items()}}, drops
