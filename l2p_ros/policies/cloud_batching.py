"""How long the cloud takes when several vehicles share it and it batches their frames.

A cloud node serving a fleet finishes up to ``max_batch`` frames that share a cut in one pass
(``l2p_ros/fleet.py``). A batch of b frames takes longer than one frame, but less than b of them:
:class:`BatchCurve` holds that ratio, measured (``bench/bench_fleet.py``'s capacity runs: the time
of a batch of b is ``b / frames_per_s(b)``, so ``factor(b) = b * frames_per_s(1) / frames_per_s(b)``),
one curve for tensor cuts and one for image offload (whose JPEG decoding does not batch).

:class:`CloudShare` is what the cost model knows of the fleet: ``vehicles`` sending frames at
``frames_per_s`` each to one cloud batching up to ``max_batch``. It predicts a frame's time at the
cloud by a fluid model: the fleet offers ``vehicles * frames_per_s`` frames a second of the same
partition (the other vehicles, under the same conditions and policy, choose alike); the cloud keeps
up with the smallest batch whose throughput covers that, b*; a frame then takes its batch's time
and, on average, waits half a batch behind one of the other vehicles' for the share of time the
cloud is busy with theirs: ``s(b*) * (1 + u (V - 1) / V / 2)``, ``u`` the cloud's busy share. Where no batch up to ``max_batch`` keeps up, the queue grows
without bound: infinite, so a policy sends that partition elsewhere. The simulator plays the fleet
frame by frame instead (:mod:`l2p_ros.simulation.fleet_cloud`).

Hand-written: a two-point-per-batch fluid model of this project's batcher; no library has it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from l2p_ros.measure.profile import COMMITTED_PROFILES_DIR

SCHEMA = "l2p-cloud-batching/1"
# The committed curves (bench/cloud_batching.py): the lent H200's, and this VM's CPU cloud's.
H200_CURVES = COMMITTED_PROFILES_DIR / "cloud-batching-yolov3-tiny-416-cuda-h200.yaml"
CPU_CURVES = COMMITTED_PROFILES_DIR / "cloud-batching-yolov3-tiny-416-cpu-vm-2core.yaml"
KINDS = ("tensor", "image")  # a cut's tensors; image offload (per-frame JPEG decoding)


@dataclass(frozen=True)
class BatchCurve:
    """``factor(b)``: the time of a batch of b frames over one frame's, at the measured batch sizes;
    linear between them, and beyond the largest as many batches of it as needed."""

    sizes: tuple[int, ...]
    factors: tuple[float, ...]

    def __post_init__(self):
        if not self.sizes or self.sizes[0] != 1 or list(self.sizes) != sorted(set(self.sizes)):
            raise ValueError(f"batch sizes must start at 1 and increase, got {self.sizes}")
        if len(self.factors) != len(self.sizes) or abs(self.factors[0] - 1.0) > 1e-9:
            raise ValueError(f"one factor per size, 1 at batch 1, got {self.factors}")
        if any(not 1.0 <= f <= b + 1e-9 for b, f in zip(self.sizes, self.factors)):
            raise ValueError(f"a batch of b takes between 1 and b frames' time, got {dict(zip(self.sizes, self.factors))}")

    @classmethod
    def from_capacity(cls, frames_per_s: dict[int, float]) -> BatchCurve:
        """From the throughput measured at each batch size (frames/s); a larger batch slower than a
        smaller one's whole (noise, or a cache falling over) is held at the smaller one's rate."""
        sizes = sorted(frames_per_s)
        base = frames_per_s[1]
        factors, best = [], 0.0
        for b in sizes:
            best = max(best, frames_per_s[b])  # a batcher never does worse than smaller batches
            factors.append(min(float(b), b * base / best))
        return cls(tuple(sizes), tuple(factors))

    def factor(self, batch: int) -> float:
        if batch < 1:
            raise ValueError(f"batch size must be >= 1, got {batch}")
        largest = self.sizes[-1]
        if batch <= largest:
            return float(np.interp(batch, self.sizes, self.factors))
        whole, rest = divmod(batch, largest)
        return whole * self.factors[-1] + (self.factor(rest) if rest else 0.0)

    def to_dict(self) -> dict:
        return {"sizes": list(self.sizes), "factors": [round(f, 4) for f in self.factors]}


@dataclass(frozen=True)
class CloudBatching:
    """The committed measurement: a curve per payload kind, and where it was measured."""

    curves: dict[str, BatchCurve]
    machine: str
    source: str

    def curve(self, image: bool) -> BatchCurve:
        return self.curves["image" if image else "tensor"]

    @classmethod
    def load(cls, path: str | Path) -> CloudBatching:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"cloud batching file not found: {path}")
        data = yaml.safe_load(path.read_text()) or {}
        if data.get("schema") != SCHEMA:
            raise ValueError(f"{path}: schema {data.get('schema')!r} is not {SCHEMA!r}")
        try:
            curves = {kind: BatchCurve(tuple(data["curves"][kind]["sizes"]), tuple(data["curves"][kind]["factors"]))
                      for kind in KINDS}
        except (KeyError, TypeError) as error:
            raise ValueError(f"{path}: needs curves for {', '.join(KINDS)} ({error})") from None
        return cls(curves, str(data.get("machine", "")), str(data.get("source", "")))

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump({"schema": SCHEMA, "machine": self.machine, "source": self.source,
                                        "curves": {kind: curve.to_dict() for kind, curve in self.curves.items()}},
                                       sort_keys=False))
        return path


@dataclass(frozen=True)
class CloudShare:
    """``vehicles`` (this one included) at ``frames_per_s`` each, on one cloud batching up to
    ``max_batch`` frames that share a cut (module docstring)."""

    vehicles: int
    frames_per_s: float
    max_batch: int
    batching: CloudBatching
    queue_depth: int = 4  # frames of one vehicle the cloud holds (the fleet cloud node's queue_depth)

    def __post_init__(self):
        if self.vehicles < 1 or self.max_batch < 1 or not self.frames_per_s > 0 or self.queue_depth < 1:
            raise ValueError(f"need vehicles >= 1, max_batch >= 1, frames_per_s > 0, queue_depth >= 1: {self}")

    def batch(self, single_ms: float, image: bool) -> tuple[int, float]:
        """(b*, the cloud's busy share u) for frames whose one-frame cloud time is ``single_ms``;
        (max_batch, inf) where no batch keeps up."""
        offered_per_ms = self.vehicles * self.frames_per_s / 1e3
        curve = self.batching.curve(image)
        for b in range(1, self.max_batch + 1):
            batch_ms = single_ms * curve.factor(b)
            if b / batch_ms >= offered_per_ms or single_ms <= 0:
                return b, (offered_per_ms * batch_ms / b) if single_ms > 0 else 0.0
        return self.max_batch, math.inf

    def frame_ms(self, single_ms: float, image: bool) -> float:
        """A frame's expected time at the shared cloud: its batch's, and half a batch behind one of
        the other vehicles' in service; infinite where the cloud cannot keep up. One vehicle alone
        gets ``single_ms``: its own frames' queue is the cost model's and the simulator's as ever."""
        b, busy = self.batch(single_ms, image)
        if math.isinf(busy):
            return math.inf
        others_busy = busy * (self.vehicles - 1) / self.vehicles
        return single_ms * self.batching.curve(image).factor(b) * (1.0 + others_busy / 2.0)
