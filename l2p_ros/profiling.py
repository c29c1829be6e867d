"""Per-layer latency/size profiles of a model on this machine, and their versioned file format.

A profile is measured, never guessed (invariant 6): it records the machine it was measured on,
and the cost model loads it to predict edge and cloud time for any cut.
"""
from __future__ import annotations

import datetime as _dt
import os
import platform
import socket
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
import yaml

from l2p_ros import codec
from l2p_ros.model.darknet import Darknet
from l2p_ros.model.graph import INPUT, Cut, crossing_bytes, tensor_elements
from l2p_ros.model.postprocess import letterbox
from l2p_ros.model.runner import SplitRunner

SCHEMA = "l2p-profile/1"


class ProfileError(ValueError):
    """A profile file that is missing, of another schema, or inconsistent."""


@dataclass
class LayerProfile:
    index: int
    type: str
    latency_ms_median: float
    latency_ms_p10: float
    latency_ms_p90: float
    output_shape: list[int]
    output_bytes: int
    flops: int


@dataclass
class CutProfile:
    after_layer: int
    name: str
    crossing: list[int]
    edge_ms: float  # sum of layer medians before the cut
    rest_ms: float  # sum of layer medians after the cut
    payload_bytes: dict[str, int]  # codec name -> bytes on the wire for the profiled frame


@dataclass
class Profile:
    model: dict
    machine: dict
    measurement: dict
    layers: list[LayerProfile]
    cuts: list[CutProfile]
    created_utc: str = ""
    schema: str = SCHEMA
    extra: dict = field(default_factory=dict)

    @property
    def total_ms(self) -> float:
        return sum(layer.latency_ms_median for layer in self.layers)

    def cut(self, after_layer: int) -> CutProfile:
        for cut in self.cuts:
            if cut.after_layer == after_layer:
                return cut
        raise ProfileError(f"profile has no cut after layer {after_layer}")

    def to_dict(self) -> dict:
        return {
            "schema": self.schema,
            "created_utc": self.created_utc,
            "model": self.model,
            "machine": self.machine,
            "measurement": self.measurement,
            "layers": [vars(layer) for layer in self.layers],
            "cuts": [vars(cut) for cut in self.cuts],
            **({"extra": self.extra} if self.extra else {}),
        }

    def save(self, path: str | Path) -> None:
        save_yaml(path, self.to_dict())


def save_yaml(path: str | Path, data: dict) -> None:
    """Write a measurement file (profile, payload fit), creating its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False, width=120))


def read_versioned_yaml(path: str | Path, schema: str, what: str) -> dict:
    """The mapping in a measurement file; ProfileError naming the file when missing or of another schema."""
    path = Path(path)
    if not path.is_file():
        raise ProfileError(f"{what} not found: {path}")
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict) or data.get("schema") != schema:
        found = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise ProfileError(f"{path}: schema {found!r} is not {schema!r}")
    return data


def load_profile(path: str | Path) -> Profile:
    data = read_versioned_yaml(path, SCHEMA, "profile")
    try:
        layers = [LayerProfile(**entry) for entry in data["layers"]]
        cuts = [CutProfile(**entry) for entry in data["cuts"]]
        profile = Profile(data["model"], data["machine"], data["measurement"], layers, cuts,
                          data.get("created_utc", ""), data["schema"], data.get("extra", {}))
    except (KeyError, TypeError) as error:
        raise ProfileError(f"{path}: malformed profile ({error})") from None
    if [layer.index for layer in layers] != list(range(len(layers))):
        raise ProfileError(f"{path}: layers must be listed 0..n-1 in order")
    return profile


def describe_machine(device: str, threads: int) -> dict:
    info = {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
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


@torch.inference_mode()
def cut_payload_bytes(runner: SplitRunner, image_bgr: np.ndarray, cut: Cut,
                      codec_names: Sequence[str]) -> dict[str, int]:
    """Bytes on the wire for ``cut`` and each codec, measured by encoding a real frame."""
    tensor, _ = letterbox(image_bgr, runner.model.input_size)
    tensor = tensor.to(next(runner.model.parameters()).device)
    sizes: dict[str, int] = {}
    if cut.is_image_offload:
        sizes["raw"] = crossing_bytes(cut, runner.model.output_shapes, runner.input_shape, 1)
        sizes["jpeg-q75"] = len(codec.encode_image(image_bgr, 75))
        return sizes
    payload = {k: v.cpu() for k, v in runner.head(tensor, cut).items()}
    for name in codec_names:
        spec = codec.CodecSpec.parse(name)
        if spec.dtype == "jpeg":
            continue
        sizes[name] = codec.payload_size_bytes(codec.encode_tensors(payload, spec))
    return sizes


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
    cut_profiles = []
    for cut in cuts:
        edge_ms = sum(medians[: cut.after_layer + 1])
        cut_profiles.append(CutProfile(
            after_layer=cut.after_layer, name=cut.name(len(layers)), crossing=list(cut.crossing),
            edge_ms=round(edge_ms, 4), rest_ms=round(sum(medians) - edge_ms, 4),
            payload_bytes=cut_payload_bytes(runner, image_bgr, cut, codec_names)))
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


def default_profile_path(model_id: str, device: str, threads: int) -> Path:
    """Where ``ensure_profile`` keeps the profile of a model on this host."""
    from l2p_ros.assets import cache_dir

    return cache_dir() / "profiles" / f"{model_id}-{device}-t{threads}-{socket.gethostname()}.yaml"


def ensure_profile(model_name: str, input_size: int, *, threads: int, device: str = "cpu",
                   weights: Path | None = None, repeats: int = 10, log=print) -> Path:
    """The cached profile of this model on this host, measured now if there is none yet."""
    import cv2

    from l2p_ros.assets import SAMPLE_VIDEO, asset_path
    from l2p_ros.model.darknet import load_model

    model_id = f"{Path(model_name).stem}-{input_size}"
    path = default_profile_path(model_id, device, threads)
    if path.is_file():
        return path
    random_weights = weights is None and Path(model_name).stem != "yolov3-tiny"
    log(f"profiling {model_id} on this host ({threads} threads, {device}) into {path} ...")
    model = load_model(model_name, input_size=input_size, weights=weights, random_weights=random_weights)
    capture = cv2.VideoCapture(str(asset_path(SAMPLE_VIDEO)))
    ok, frame = capture.read()
    capture.release()
    if not ok:
        raise ProfileError(f"cannot read a frame of {SAMPLE_VIDEO} to profile payload sizes")
    profile = profile_model(model, frame, device=device, threads=threads, repeats=repeats, warmup=2,
                            model_info={"name": Path(model_name).stem,
                                        "weights": "random" if random_weights else str(weights or "pretrained")})
    profile.save(path)
    return path
