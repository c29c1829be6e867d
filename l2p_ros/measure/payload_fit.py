"""Payload bytes predicted from frame complexity: a least-squares fit on REAL frames.

Measured, not guessed (invariant 6): ``measure.payloads`` runs the model on real frames of a clip
(the sample video by default) and encodes every crossing tensor as the edge encodes it, so each
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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from l2p_ros.codec_spec import full_size_name, has_exact_size
from l2p_ros.codec_spec import is_image_codec as _is_jpeg
from l2p_ros.measure.profile import ProfileError, read_versioned_yaml, save_yaml
from l2p_ros.model.graph import Cut

SCHEMA = "l2p-payload-fit/2"
SCHEMA_V1 = "l2p-payload-fit/1"  # its ``jpeg-qN`` was the camera-size image (``jpeg-full-qN``)
RAW_IMAGE = "raw"  # image offload as uncompressed uint8 pixels (the profile's name for it)
IMAGE_CODECS = (RAW_IMAGE, "jpeg-q75", "jpeg-q90", "jpeg-full-q75")


def is_exact(codec_name: str) -> bool:
    """Whether a codec's size depends on tensor shapes only (no compression, not JPEG)."""
    return codec_name == RAW_IMAGE or has_exact_size(codec_name)


def is_image_codec(codec_name: str) -> bool:
    return codec_name == RAW_IMAGE or _is_jpeg(codec_name)


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
    data = read_versioned_yaml(path, SCHEMA, "payload fit", older=(SCHEMA_V1,))
    try:
        if data["schema"] == SCHEMA_V1:
            data = _migrate_v1(data)
        return PayloadFit(data["model"], data["source"], data["complexity_range"],
                          [CutFit(**entry) for entry in data["fits"]], data.get("content_dependence"),
                          data.get("created_utc", ""))
    except (KeyError, TypeError, IndexError) as error:
        raise ProfileError(f"{path}: malformed payload fit ({error})") from None


def _migrate_v1(data: dict) -> dict:
    """A version 1 fit with its camera-size ``jpeg-qN`` renamed ``jpeg-full-qN``, wherever it
    names a codec (the fits, the codecs measured and the codecs requested)."""
    source = dict(data["source"])
    if "codecs" in source:
        source["codecs"] = [full_size_name(name) for name in source["codecs"]]
    if "codecs" in source.get("request", {}):
        source["request"] = {**source["request"], "codecs": [full_size_name(n) for n in source["request"]["codecs"]]}
    fits = [{**entry, "codec": full_size_name(entry["codec"])} for entry in data["fits"]]
    return {**data, "schema": SCHEMA, "source": source, "fits": fits}


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
