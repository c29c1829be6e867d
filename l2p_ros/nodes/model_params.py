"""Model parameters shared by the nodes that run the network (edge, cloud/fog) and the partitioner.

The partitioner declares the same model parameters but never runs the network, so torch and the
model code are imported by :func:`load_detector` alone: a partitioner process never loads them.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rclpy.node import Node

from l2p_ros.codec_spec import bottleneck_source
from l2p_ros.measure.models import model_id
from l2p_ros.nodes.common import declare, parameter_error

if TYPE_CHECKING:
    from l2p_ros.split import SplitDetector


def declare_model(node: Node) -> tuple[str, int]:
    model = declare(node, "model", "yolov3-tiny", "yolov3, yolov3-tiny or a Darknet .cfg path")
    input_size = declare(node, "input_size", 416, "network input side in pixels, a multiple of 32")
    if input_size <= 0 or input_size % 32:
        raise parameter_error(node, "input_size", input_size, "must be a positive multiple of 32")
    return model, input_size


def load_detector(node: Node) -> SplitDetector:
    """Declare the model parameters on ``node`` (a lifecycle node: its thresholds are live) and load
    the model they name."""
    import torch

    from l2p_ros.model.darknet import load_model
    from l2p_ros.model.device import resolve_device
    from l2p_ros.model.postprocess import load_class_names
    from l2p_ros.split import SplitDetector

    model, input_size = declare_model(node)
    weights = declare(node, "weights", "", "Darknet .weights file ('' = pretrained yolov3-tiny from the cache)")
    random_weights = declare(node, "random_weights", False,
                             "seeded random weights: for latency profiling only, detections are meaningless")
    threads = declare(node, "threads", 0, "torch CPU threads (0 = torch default)", minimum=0)
    loaded: dict[str, SplitDetector] = {}  # the detector a live threshold applies to, once loaded

    def setter(name: str):
        return lambda value: loaded and setattr(loaded["detector"], name, value)

    # Live on the nodes that run the network (lifecycle nodes: ``node.live``).
    score_threshold = node.live.declare("score_threshold", 0.25, "minimum objectness x class probability, 0..1 "
                                        "(live)", setter("score_threshold"), minimum=0.0, maximum=1.0)
    nms_iou = node.live.declare("nms_iou", 0.45, "IoU above which NMS suppresses a same-class box, 0..1 (live)",
                                setter("nms_iou"), minimum=0.0, maximum=1.0)
    device = declare(node, "device", "cpu", "where the network runs: cpu, cuda or cuda:N")
    precision = declare(node, "precision", "fp32", "fp32, or fp16 (CUDA only)")
    bottlenecks = declare(node, "bottlenecks", "", "learned bottleneck codecs to load at start, comma-separated "
                          "names (models/bottleneck/NAME.safetensors) or paths; a frame naming a bundled one "
                          "loads it on first use")
    try:  # an unusable device fails at start, not on the first frame
        resolve_device(device, precision)
    except ValueError as error:
        raise parameter_error(node, "device/precision", f"{device}/{precision}", str(error)) from None
    if threads:
        torch.set_num_threads(threads)
    try:
        darknet = load_model(model, input_size=input_size, weights=Path(weights) if weights else None,
                             random_weights=random_weights, device=device, precision=precision)
    except (ValueError, FileNotFoundError) as error:
        raise parameter_error(node, "model/weights", f"{model}/{weights}", str(error)) from None
    if random_weights:
        node.get_logger().warning("random weights: detections are meaningless (profiling only)")
    detector = loaded["detector"] = SplitDetector(darknet, load_class_names(), model_id(model, input_size),
                                                  score_threshold, nms_iou)
    for name in filter(None, (part.strip() for part in bottlenecks.split(","))):
        try:  # NAME+ctx names the file NAME: the codes' coding is each frame's codec
            spec = detector.add_bottleneck(bottleneck_source(f"bn:{name}")[0])
        except ValueError as error:
            raise parameter_error(node, "bottlenecks", bottlenecks, str(error)) from None
        node.get_logger().info(f"bottleneck {spec} loaded from {name}")
    detector.warm_up()
    return detector
