"""The learned policy's observation: a normalised vector built from a :class:`SystemState`.

Shared by the gymnasium environment (training) and whatever runs a trained policy (deciding), so
both build exactly the same vector; it needs neither gymnasium nor stable-baselines3.

Features, each mapped into 0..1 (values past the scale saturate at 1):

- ``edge_load``: as is (fraction of the edge taken by other work);
- ``edge_queue``: frames ahead on the vehicle / ``queue_scale``;
- ``bandwidth``: log(1 + Mbit/s) / log(1 + ``bandwidth_max_mbps``), so 5 and 50 Mbit/s are far apart;
- ``rtt``: ms / ``rtt_max_ms``;
- ``complexity``: the frame's complexity 0..1, as is.

Ablations (the learning-to-partition paper's) keep a subset: ``resource-only`` drops complexity,
``no-network`` drops bandwidth and RTT, ``complexity-only`` keeps complexity alone.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from l2p_ros.policies.types import SystemState

FEATURES = ("edge_load", "edge_queue", "bandwidth", "rtt", "complexity")
ABLATIONS: dict[str, tuple[str, ...]] = {
    "full": FEATURES,
    "resource-only": ("edge_load", "edge_queue", "bandwidth", "rtt"),
    "no-network": ("edge_load", "edge_queue", "complexity"),
    "complexity-only": ("complexity",),
}


@dataclass(frozen=True)
class ObservationSpec:
    """Which features, in which order, and the scales that normalise them."""

    features: tuple[str, ...] = FEATURES
    bandwidth_max_mbps: float = 100.0
    rtt_max_ms: float = 200.0
    queue_scale: float = 4.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "features", tuple(self.features))
        unknown = [f for f in self.features if f not in FEATURES]
        if unknown or not self.features or len(set(self.features)) != len(self.features):
            raise ValueError(f"features must be distinct names from {FEATURES}, got {self.features}")
        if min(self.bandwidth_max_mbps, self.rtt_max_ms, self.queue_scale) <= 0:
            raise ValueError(f"scales must be > 0: {self}")

    @classmethod
    def ablation(cls, name: str, **scales) -> ObservationSpec:
        """The spec of an ablation named in :data:`ABLATIONS`."""
        if name not in ABLATIONS:
            raise ValueError(f"unknown ablation {name!r}; known: {', '.join(ABLATIONS)}")
        return cls(ABLATIONS[name], **scales)

    @property
    def size(self) -> int:
        return len(self.features)

    def encode(self, state: SystemState) -> np.ndarray:
        """The observation of ``state``: float32 (size,), every entry in 0..1."""
        values = {
            "edge_load": state.edge_load,
            "edge_queue": state.edge_queue_length / self.queue_scale,
            "bandwidth": math.log1p(state.bandwidth_mbps) / math.log1p(self.bandwidth_max_mbps),
            "rtt": state.rtt_ms / self.rtt_max_ms,
            "complexity": state.frame_complexity,
        }
        return np.clip(np.array([values[f] for f in self.features], dtype=np.float32), 0.0, 1.0)

    def to_dict(self) -> dict:
        """For a trained policy's file: what its input vector means."""
        return {**asdict(self), "features": list(self.features)}

    @classmethod
    def from_dict(cls, data: dict) -> ObservationSpec:
        return cls(**{**data, "features": tuple(data["features"])})
