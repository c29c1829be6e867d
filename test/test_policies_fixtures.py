"""Shared by the policy tests: profiles of the real YOLO graphs without timing a forward pass.

Layer latencies are proportional to each layer's real operation count (``profiling.layer_flops``)
at a stated rate, and payload sizes are the exact sizes of the uncompressed codecs (fp32, fp16,
int8-channel: elements times width, plus 8 bytes of quantization parameters per channel). The
JPEG size is a stated figure. The machine block says all of this: these are not measurements.
"""
from __future__ import annotations

import functools

from l2p_ros.model.cfg import bundled_cfg, parse_cfg
from l2p_ros.model.darknet import Darknet
from l2p_ros.model.graph import LayerGraph, crossing_bytes, tensor_elements
from l2p_ros.policies.cost_model import CostModel
from l2p_ros.measure.profile import CutProfile, LayerProfile, Profile
from l2p_ros.measure.profiler import layer_flops

INPUT_SIZE = 416
JPEG_BYTES = 40_000  # a 416x416-ish frame at quality 75, stated not measured
CPU_GFLOPS = 50.0  # this synthetic edge: 50 GFLOP/s, plus 0.05 ms per layer


@functools.lru_cache(maxsize=None)
def graph_of(model_name: str) -> LayerGraph:
    return LayerGraph(parse_cfg(bundled_cfg(model_name)))


@functools.lru_cache(maxsize=None)
def _shapes_and_flops(model_name: str) -> tuple[list, list[int]]:
    model = Darknet(parse_cfg(bundled_cfg(model_name)), INPUT_SIZE)  # builds weights: once per model
    return list(model.output_shapes), [layer_flops(model, i) for i in range(len(model.spec.layers))]


@functools.lru_cache(maxsize=None)
def synthetic_profile(model_name: str, gflops: float = CPU_GFLOPS) -> Profile:
    graph = graph_of(model_name)
    shapes, flops = _shapes_and_flops(model_name)
    layers = []
    for spec in graph.spec.layers:
        ms = 0.05 + flops[spec.index] / (gflops * 1e6)
        shape = list(shapes[spec.index])
        layers.append(LayerProfile(spec.index, spec.type, ms, ms, ms, shape,
                                   tensor_elements(shape) * 4, flops[spec.index]))
    input_shape = (1, 3, INPUT_SIZE, INPUT_SIZE)
    cuts = []
    total_ms = sum(layer.latency_ms_median for layer in layers)
    for cut in graph.chain_cuts():
        edge_ms = sum(layer.latency_ms_median for layer in layers[: cut.after_layer + 1])
        if cut.is_image_offload:
            payload = {"raw": crossing_bytes(cut, shapes, input_shape, 1), "jpeg-q75": JPEG_BYTES}
        else:
            channels = sum(shapes[t][1] for t in cut.crossing)
            payload = {"fp32": crossing_bytes(cut, shapes, input_shape, 4),
                       "fp16": crossing_bytes(cut, shapes, input_shape, 2),
                       "int8-channel": crossing_bytes(cut, shapes, input_shape, 1) + 8 * channels}
        cuts.append(CutProfile(cut.after_layer, cut.name(graph.num_layers), list(cut.crossing),
                               edge_ms, total_ms - edge_ms, payload))
    return Profile(model={"name": model_name, "input_size": INPUT_SIZE, "num_layers": len(layers)},
                   machine={"synthetic": f"latency = flops at {gflops} GFLOP/s + 0.05 ms per layer; "
                                         f"jpeg-q75 = {JPEG_BYTES} B stated"},
                   measurement={"repeats": 0, "warmup": 0, "full_pass_ms_median": total_ms},
                   layers=layers, cuts=cuts)


def cost_model(model_name: str, edge_speed: float = 1.0, cloud_speed: float = 20.0, **kwargs) -> CostModel:
    """Edge and cloud ``edge_speed`` / ``cloud_speed`` times the synthetic machine."""
    return CostModel(graph_of(model_name), synthetic_profile(model_name, CPU_GFLOPS * edge_speed),
                     synthetic_profile(model_name, CPU_GFLOPS * cloud_speed), **kwargs)

