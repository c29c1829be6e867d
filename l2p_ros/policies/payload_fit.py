"""Payload bytes predicted from frame complexity: a least-squares fit on REAL frames.

Measured, not guessed (invariant 6): the model runs on real frames of a clip (the sample video by
default) and every crossing tensor is encoded as the edge encodes it (``l2p_ros.codec``), so each
chain cut and codec gets one ``(complexity, payload bytes)`` sample per frame. Complexity is the
live pipeline's own score (``ComplexityMeter`` over the clip's consecutive frames, so its motion
term is what the partitioner sees). Per (cut, codec) the fit is ``bytes = a + b * complexity``,
with R^2 and the residual standard deviation (the band a prediction holds to) recorded.

- Uncompressed codecs (``fp32``, ``fp16``, ``int8-channel``, the image as ``raw`` bytes) depend on
  shapes only: they are exact constants, checked equal on every measured frame.
- Image offload (cut -1) is measured for the image codecs (``raw``, ``jpeg-qN``: the whole frame
  as the edge sends it); tensor codecs for cuts 0..last (the last one carries the yolo outputs,
  which a fog sends on, and which per-tensor sizes need).
- Predictions hold complexity to the range of the fitted frames: a line fitted on a narrow range
  says nothing beyond it.
- One fit per cut on the cut's summed bytes equals the sum of per-tensor fits (least squares is
  linear in the data), so fitted payloads still add up over crossing tensors, which
  ``CostModel.tensor_bytes`` relies on.

:meth:`PayloadFit.payload_bytes` is a ``CostModel(payload_bytes_fn=...)``. The file (YAML,
``schema: l2p-payload-fit/1``) sits beside the profiles and also records how strongly content
moves payload bytes and compute time (``content_dependence``).
"""
from __future__ import annotations

import datetime as _dt
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping, Sequence

import cv2
import numpy as np
import torch

from l2p_ros import codec
from l2p_ros.complexity import ComplexityMeter
from l2p_ros.model.darknet import Darknet
from l2p_ros.model.graph import INPUT, Cut, crossing_bytes
from l2p_ros.model.postprocess import letterbox
from l2p_ros.model.runner import SplitRunner
from l2p_ros.profiling import ProfileError, read_versioned_yaml, save_yaml

SCHEMA = "l2p-payload-fit/1"
RAW_IMAGE = "raw"  # image offload as uncompressed uint8 pixels (the profile's name for it)
IMAGE_CODECS = (RAW_IMAGE, "jpeg-q75", "jpeg-q90")


def is_exact(codec_name: str) -> bool:
    """Whether a codec's size depends on tensor shapes only (no compression, not JPEG)."""
    if codec_name == RAW_IMAGE:
        return True
    spec = codec.CodecSpec.parse(codec_name)
    return spec.dtype != "jpeg" and spec.compression == "none"


def is_image_codec(codec_name: str) -> bool:
    return codec_name == RAW_IMAGE or codec.CodecSpec.parse(codec_name).dtype == "jpeg"


@dataclass(frozen=True)
class CutFit:
    """``payload bytes = intercept_bytes + slope_bytes * complexity`` at one cut and codec.

    ``r2``: share of the bytes' variance over the frames that complexity explains (None when
    exact: there is none). ``residual_std_bytes``: std of the residuals (n - 2 degrees of
    freedom). ``mean_bytes`` and ``cv`` (std / mean of the measured bytes) say how much content
    moves the size at all.
    """

    after_layer: int
    codec: str
    intercept_bytes: float
    slope_bytes: float
    r2: float | None
    residual_std_bytes: float
    mean_bytes: float
    cv: float
    exact: bool


@dataclass
class PayloadSamples:
    """Measured real frames: ``complexity`` (N,), ``payload_bytes[(cut, codec)]`` (N,) bytes,
    ``compute_ms`` (N,) the forward pass up to the last measured cut; ``source`` says what ran."""

    complexity: np.ndarray
    payload_bytes: dict[tuple[int, str], np.ndarray]
    compute_ms: np.ndarray
    source: dict


class PayloadFit:
    """Fitted payload bytes per (chain cut, codec); see the module docstring."""

    def __init__(self, model: dict, source: dict, complexity_range: Sequence[float], fits: Sequence[CutFit],
                 content_dependence: dict | None = None, created_utc: str = ""):
        self.model = model
        self.source = source
        self.complexity_range = (float(complexity_range[0]), float(complexity_range[1]))
        self.fits = {(f.after_layer, f.codec): f for f in fits}
        self.content_dependence = content_dependence or {}
        self.created_utc = created_utc
        self._lines = {key: (f.intercept_bytes, f.slope_bytes) for key, f in self.fits.items()}
        self._arrays: dict[str, np.ndarray] = {}  # codec -> (intercepts, slopes) by cut, built on first use

    def fit(self, after_layer: int, codec_name: str) -> CutFit:
        try:
            return self.fits[after_layer, codec_name]
        except KeyError:
            have = sorted(c for k, c in self.fits if k == after_layer)
            raise ProfileError(f"payload fit has no codec {codec_name} at cut {after_layer}; "
                               f"it has {have or 'no codec there'}") from None

    def payload_bytes(self, cut: Cut | int, codec_name: str, complexity: float) -> float:
        """Predicted bytes on the wire for a chain ``cut`` (or its index) under ``codec_name``."""
        after_layer = cut if isinstance(cut, int) else cut.after_layer
        if after_layer is None:
            raise ValueError("a payload fit covers chain cuts; a DAG cut's bytes add up its tensors "
                             "(CostModel.tensor_bytes)")
        line = self._lines.get((after_layer, codec_name))
        if line is None:
            self.fit(after_layer, codec_name)  # raises, naming what there is
        low, high = self.complexity_range
        return line[0] + line[1] * min(max(complexity, low), high)

    __call__ = payload_bytes  # the fit itself is a payload function, with the fast path below

    def payload_bytes_many(self, after_layers: np.ndarray, codec_name: str, complexity: float) -> np.ndarray:
        """:meth:`payload_bytes` of the chain cuts after ``after_layers`` (int array), at once."""
        if codec_name not in self._arrays:  # intercepts and slopes by cut index + 1, NaN where not fitted
            lines = np.full((2, max(k for k, _ in self.fits) + 2), np.nan)
            for (k, name), line in self._lines.items():
                if name == codec_name:
                    lines[:, k + 1] = line
            self._arrays[codec_name] = lines
        lines, columns = self._arrays[codec_name], np.asarray(after_layers) + 1
        if columns.size and (columns.max() >= lines.shape[1] or np.isnan(lines[0, columns]).any()):
            for k in after_layers:
                self.fit(int(k), codec_name)  # raises, naming what there is
        low, high = self.complexity_range
        return lines[0, columns] + lines[1, columns] * min(max(complexity, low), high)

    def to_dict(self) -> dict:
        return {"schema": SCHEMA, "created_utc": self.created_utc, "model": self.model, "source": self.source,
                "complexity_range": list(self.complexity_range),
                "content_dependence": self.content_dependence,
                "fits": [asdict(f) for f in self.fits.values()]}

    def save(self, path: str | Path) -> None:
        save_yaml(path, self.to_dict())


def load_payload_fit(path: str | Path) -> PayloadFit:
    data = read_versioned_yaml(path, SCHEMA, "payload fit")
    try:
        return PayloadFit(data["model"], data["source"], data["complexity_range"],
                          [CutFit(**entry) for entry in data["fits"]], data.get("content_dependence"),
                          data.get("created_utc", ""))
    except (KeyError, TypeError, IndexError) as error:
        raise ProfileError(f"{path}: malformed payload fit ({error})") from None


def fit_line(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float | None, float]:
    """Least squares ``y = a + b x``: ``(a, b, R^2 or None when y is constant, residual std)``."""
    design = np.column_stack([np.ones_like(x), x])
    (a, b), *_ = np.linalg.lstsq(design, y, rcond=None)
    residual = y - design @ (a, b)
    ss_res, ss_tot = float(residual @ residual), float(((y - y.mean()) ** 2).sum())
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else None
    return float(a), float(b), r2, math.sqrt(ss_res / (len(y) - 2))


def fit_payloads(samples: PayloadSamples, model: dict) -> PayloadFit:
    """Fit every measured (cut, codec); exact codecs must measure the same on every frame."""
    x = np.asarray(samples.complexity, dtype=float)
    if len(x) < 3 or np.ptp(x) == 0:
        raise ValueError(f"a fit needs at least 3 frames of differing complexity, got {len(x)} "
                         f"spanning {np.ptp(x) if len(x) else 0:.3g}")
    fits = []
    for (after_layer, name), measured in sorted(samples.payload_bytes.items()):
        y = np.asarray(measured, dtype=float)
        mean, cv = float(y.mean()), float(y.std() / y.mean()) if y.mean() > 0 else 0.0
        if is_exact(name):
            if np.ptp(y) != 0:
                raise ProfileError(f"{name} at cut {after_layer} varies over frames ({y.min()}..{y.max()} B) "
                                   "though it has no compression")
            fits.append(CutFit(after_layer, name, mean, 0.0, None, 0.0, mean, 0.0, True))
            continue
        a, b, r2, residual_std = fit_line(x, y)
        fits.append(CutFit(after_layer, name, a, b, r2, residual_std, mean, cv, False))
    low, high = float(x.min()), float(x.max())
    for f in fits:  # a line may only be used where it gives bytes
        if min(f.intercept_bytes + f.slope_bytes * low, f.intercept_bytes + f.slope_bytes * high) < 0:
            raise ProfileError(f"fit at cut {f.after_layer} {f.codec} is negative inside the fitted range")
    return PayloadFit(model, samples.source, (low, high), fits,
                      content_dependence(x, samples.compute_ms, fits),
                      _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))


def content_dependence(complexity: np.ndarray, compute_ms: np.ndarray, fits: Sequence[CutFit]) -> dict:
    """How much frame content moves compute time and (compressed) payload bytes: per codec, the
    median and largest R^2 of bytes on complexity and coefficient of variation over frames.

    Compute times carry the machine's timing noise (other processes), so beside their CV the
    robust one (1.4826 MAD / median) is given; R^2 on complexity is the content signal.
    """
    summary = {"frames": len(complexity), "complexity_std": round(float(np.std(complexity)), 4),
               "compute_ms": None, "payload": {}}
    if len(compute_ms):  # none when only image offload was measured
        compute_ms = np.asarray(compute_ms, dtype=float)
        _, _, compute_r2, _ = fit_line(complexity, compute_ms)
        median = float(np.median(compute_ms))
        summary["compute_ms"] = {"median": round(median, 3),
                                 "cv": round(float(compute_ms.std() / compute_ms.mean()), 4),
                                 "robust_cv": round(1.4826 * float(np.median(np.abs(compute_ms - median))) / median, 4),
                                 "r2": None if compute_r2 is None else round(compute_r2, 4)}
    for name in sorted({f.codec for f in fits if not f.exact}):
        of_codec = [f for f in fits if f.codec == name and f.r2 is not None]
        r2 = [f.r2 for f in of_codec]
        cv = [f.cv for f in of_codec]
        if r2:
            summary["payload"][name] = {"r2_median": round(float(np.median(r2)), 4), "r2_max": round(max(r2), 4),
                                        "cv_median": round(float(np.median(cv)), 4), "cv_max": round(max(cv), 4)}
    return summary


def video_frames(clip_path: str | Path, indices: Sequence[int]) -> tuple[list[np.ndarray], np.ndarray]:
    """BGR frames ``indices`` of a clip and their complexity, measured over every frame in order
    (as the partitioner does), so the motion term compares consecutive frames."""
    wanted = set(indices)
    capture = cv2.VideoCapture(str(clip_path))
    meter = ComplexityMeter()
    frames, complexity, index = [], [], 0
    try:
        while index <= max(wanted):
            ok, frame = capture.read()
            if not ok:
                raise ProfileError(f"{clip_path} has no frame {index} (wanted up to {max(wanted)})")
            score = meter.measure(frame).complexity
            if index in wanted:
                frames.append(frame)
                complexity.append(score)
            index += 1
    finally:
        capture.release()
    return frames, np.array(complexity)


def spread_indices(clip_path: str | Path, count: int) -> list[int]:
    """``count`` frame indices spread over a clip, skipping frame 0 (it has no motion term)."""
    capture = cv2.VideoCapture(str(clip_path))
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    capture.release()
    if total < count + 1:
        raise ProfileError(f"{clip_path} has {total} frames, fewer than {count + 1}")
    return sorted({int(i) for i in np.linspace(1, total - 1, count).round()})


@torch.inference_mode()
def measure_payloads(model: Darknet, frames: Sequence[np.ndarray], complexity: Sequence[float],
                     cuts: Sequence[int] | None = None, codecs: Sequence[str] = (*codec.CODECS, RAW_IMAGE),
                     source: Mapping | None = None, progress=None) -> PayloadSamples:
    """Bytes on the wire of every (cut, codec) on real ``frames`` (default: every chain cut).

    One forward pass per frame keeps every tensor some cut needs; each is encoded once per codec
    and a cut's bytes are the sum over its crossing tensors, as each is sent as its own record.
    """
    runner = SplitRunner(model)
    cuts = list(range(INPUT, runner.graph.num_layers)) if cuts is None else sorted(cuts)
    tensor_codecs = [c for c in codecs if not is_image_codec(c)]
    image_codecs = [c for c in codecs if is_image_codec(c)]
    tensor_cuts = [runner.graph.chain_cut(k) for k in cuts if k != INPUT]
    needed = sorted({t for cut in tensor_cuts for t in cut.crossing})
    specs = {name: codec.CodecSpec.parse(name) for name in tensor_codecs}
    image_quality = {name: codec.CodecSpec.parse(name).quality for name in image_codecs if name != RAW_IMAGE}
    raw_bytes = crossing_bytes(runner.graph.chain_cut(INPUT), model.output_shapes, runner.input_shape, 1)
    layers = range(max((c.after_layer for c in tensor_cuts), default=INPUT) + 1)
    if tensor_cuts and frames:  # untimed warm-up: the first pass pays for lazy initialisation
        runner.run_segment({INPUT: letterbox(frames[0], model.input_size)[0]}, layers, needed)
    samples: dict[tuple[int, str], list[float]] = {}
    compute_ms = []
    for frame in frames:
        if INPUT in cuts:
            for name in image_codecs:
                size = raw_bytes if name == RAW_IMAGE else len(codec.encode_image(frame, image_quality[name]))
                samples.setdefault((INPUT, name), []).append(size)
        if tensor_cuts:
            tensor, _ = letterbox(frame, model.input_size)
            start = time.perf_counter()
            outputs = runner.run_segment({INPUT: tensor}, layers, needed)
            compute_ms.append((time.perf_counter() - start) * 1e3)
            for name, spec in specs.items():
                sizes = {t: codec.payload_size_bytes(codec.encode_tensors({t: outputs[t]}, spec)) for t in needed}
                for cut in tensor_cuts:
                    samples.setdefault((cut.after_layer, name), []).append(sum(sizes[t] for t in cut.crossing))
        if progress:
            progress(1)
    return PayloadSamples(np.asarray(complexity, dtype=float),
                          {key: np.array(sizes, dtype=float) for key, sizes in samples.items()}, np.array(compute_ms),
                          {**(source or {}), "frames": len(frames), "cuts": cuts, "codecs": list(codecs),
                           "torch_threads": torch.get_num_threads()})


def default_fit_path(model_id: str, weights: str) -> Path:
    """Where :func:`ensure_payload_fit` keeps a model's fit: beside the profiles. Bytes depend on
    the weights and the frames, not on the machine."""
    from l2p_ros.assets import cache_dir

    return cache_dir() / "profiles" / f"{model_id}-{weights}-payload-fit.yaml"


def ensure_payload_fit(model_name: str, input_size: int, *, frames_per_clip: int = 24,
                       clips: Sequence[str] | None = None, codecs: Sequence[str] = (*codec.CODECS, RAW_IMAGE),
                       log=print, progress_factory=None) -> Path:
    """The cached fit of this model over every chain cut, measured now unless the cached one has
    these frames and clips and at least these codecs. ``clips``: asset names (default: the sample
    video). Models other than yolov3-tiny run with random weights (no pretrained weights
    offline) and say so."""
    from l2p_ros.assets import SAMPLE_VIDEO, asset_path
    from l2p_ros.model.darknet import load_model

    clips = list(clips or [SAMPLE_VIDEO])
    weights = "pretrained" if Path(model_name).stem == "yolov3-tiny" else "random"
    path = default_fit_path(f"{Path(model_name).stem}-{input_size}", weights)
    request = {"frames_per_clip": frames_per_clip, "clips": clips, "codecs": list(codecs)}
    if path.is_file():
        cached = load_payload_fit(path).source.get("request", {})
        if {**cached, "codecs": request["codecs"]} == request and set(request["codecs"]) <= set(cached["codecs"]):
            return path
    log(f"fitting payload bytes of {model_name}-{input_size} ({weights} weights) on "
        f"{frames_per_clip} real frames of {', '.join(clips)} into {path} ...")
    model = load_model(model_name, input_size=input_size, random_weights=weights == "random")
    all_frames, complexity, indices = [], [], {}
    for clip in clips:
        indices[clip] = spread_indices(asset_path(clip), frames_per_clip)
        clip_frames, clip_complexity = video_frames(asset_path(clip), indices[clip])
        all_frames += clip_frames
        complexity.append(clip_complexity)
    bar = progress_factory(total=len(all_frames)) if progress_factory else None
    samples = measure_payloads(model, all_frames, np.concatenate(complexity), codecs=codecs,
                               source={"request": request, "frame_indices": indices},
                               progress=bar.update if bar else None)
    if bar:
        bar.close()
    fit = fit_payloads(samples, {"name": Path(model_name).stem, "input_size": input_size,
                                 "num_layers": len(model.spec.layers), "weights": weights})
    fit.save(path)
    return path
