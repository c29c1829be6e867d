"""Measuring a profile: every layer's latency on this machine and every cut's bytes on a real frame.

A profile is measured, never guessed (invariant 6): it records the machine it was measured on
(``measure.profile`` holds the type and its file format), and the cost model loads it to predict
edge and cloud time for any cut.
"""
from __future__ import annotations

import datetime as _dt
import os
import platform
import socket
import statistics
import time
from typing import Callable, Sequence

import numpy as np
import torch

from l2p_ros import codec
from l2p_ros.measure.host import cpu_model
from l2p_ros.measure.payload_fit import is_image_codec
from l2p_ros.measure.payloads import measure_frames
from l2p_ros.measure.profile import PROFILED_IMAGE_CODECS, CutProfile, LayerProfile, Profile
from l2p_ros.model.darknet import Darknet
from l2p_ros.model.graph import INPUT, tensor_elements
from l2p_ros.model.postprocess import letterbox
from l2p_ros.model.runner import SplitRunner

def describe_machine(device: str, threads: int) -> dict:
    info = {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "threads": threads,
        "torch": str(torch.__version__),
        "device": device,
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def layer_flops(model: Darknet, index: int) -> int:
    """Multiply-adds x2 for convolutions; one operation per output element otherwise."""
    spec = model.spec.layers[index]
    out_shape = model.output_shapes[index]
    if spec.type == "convolutional":
        in_channels = _input_channels(model, index)
        kernel = spec.get_int("size")
        groups = spec.get_int("groups", 1)
        return 2 * (in_channels // groups) * kernel * kernel * tensor_elements(out_shape)
    return tensor_elements(out_shape)


def _input_channels(model: Darknet, index: int) -> int:
    source = model.spec.layers[index].inputs[0]
    return model.spec.input_channels if source == INPUT else model.output_shapes[source][1]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.inference_mode()
def time_layers(runner: SplitRunner, image: torch.Tensor, repeats: int, warmup: int,
                progress: Callable[[int], None] | None = None) -> tuple[list[list[float]], list[float]]:
    """Latency of every layer (ms, one list per layer) and of the whole pass, over ``repeats``."""
    model = runner.model
    device = image.device
    per_layer: list[list[float]] = [[] for _ in model.spec.layers]
    totals: list[float] = []
    for iteration in range(warmup + repeats):
        values = {INPUT: image}
        start_pass = time.perf_counter()
        for spec in model.spec.layers:
            inputs = [values[s] for s in spec.inputs]
            _sync(device)
            start = time.perf_counter()
            values[spec.index] = model.layer_forward(spec.index, inputs)
            _sync(device)
            if iteration >= warmup:
                per_layer[spec.index].append((time.perf_counter() - start) * 1e3)
        if iteration >= warmup:
            totals.append((time.perf_counter() - start_pass) * 1e3)
        if progress:
            progress(1)
    return per_layer, totals


def _percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def profile_model(model: Darknet, image_bgr: np.ndarray, *, device: str = "cpu", threads: int = 1,
                  repeats: int = 20, warmup: int = 3, codec_names: Sequence[str] = codec.CODECS,
                  model_info: dict | None = None, progress_factory=None) -> Profile:
    """Measure ``model`` on this machine; ``image_bgr`` is a real frame for payload sizes."""
    torch.set_num_threads(threads)
    torch_device = torch.device(device)
    model = model.to(torch_device)
    runner = SplitRunner(model)
    image, _ = letterbox(image_bgr, model.input_size)
    image = image.to(torch_device)
    cuts = runner.graph.chain_cuts()

    bar = progress_factory(total=warmup + repeats + len(cuts)) if progress_factory else None
    per_layer, totals = time_layers(runner, image, repeats, warmup, bar.update if bar else None)
    layers = []
    for spec, samples in zip(model.spec.layers, per_layer):
        shape = list(model.output_shapes[spec.index])
        layers.append(LayerProfile(
            index=spec.index, type=spec.type,
            latency_ms_median=round(statistics.median(samples), 4),
            latency_ms_p10=round(_percentile(samples, 10), 4),
            latency_ms_p90=round(_percentile(samples, 90), 4),
            output_shape=shape, output_bytes=tensor_elements(shape) * 4,
            flops=layer_flops(model, spec.index)))
    medians = [layer.latency_ms_median for layer in layers]
    # Image offload is profiled as raw pixels and JPEG (network and camera size); tensor cuts under every tensor codec.
    tensor_codecs = [name for name in codec_names if not is_image_codec(name)]
    measured = measure_frames(model, [image_bgr], tensor_codecs=tensor_codecs,
                              image_codecs=PROFILED_IMAGE_CODECS)
    cut_profiles = []
    for cut in cuts:
        edge_ms = sum(medians[: cut.after_layer + 1])
        if cut.is_image_offload:
            payload_bytes = {name: int(size) for name, size in zip(measured.image_codecs, measured.image_bytes[0])}
        else:
            payload_bytes = {name: int(measured.cut_bytes(cut.crossing, name)[0]) for name in tensor_codecs}
        cut_profiles.append(CutProfile(
            after_layer=cut.after_layer, name=cut.name(len(layers)), crossing=list(cut.crossing),
            edge_ms=round(edge_ms, 4), rest_ms=round(sum(medians) - edge_ms, 4), payload_bytes=payload_bytes))
        if bar:
            bar.update(1)
    if bar:
        bar.close()
    return Profile(
        model={**(model_info or {}), "input_size": model.input_size, "num_layers": len(layers)},
        machine=describe_machine(device, threads),
        measurement={"repeats": repeats, "warmup": warmup,
                     "full_pass_ms_median": round(statistics.median(totals), 4),
                     "full_pass_ms_p90": round(_percentile(totals, 90), 4)},
        layers=layers, cuts=cut_profiles,
        created_utc=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
