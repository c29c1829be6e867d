"""Per-frame costs the model's layers and the link leave out, measured, for the cost model to charge.

The partitioner measures each frame's complexity and decides (on the edge, every frame); the edge
encodes the crossing tensors (or the image) and the next tier decodes them. A file holds what the
benches measured on one machine (:meth:`FrameCosts.save`, from bench/frame_costs.py):

- ``per_frame_ms``: complexity and decision, charged to the edge for every frame;
- ``image_codecs``: encode (edge) and receive (decode and letterbox, next tier) ms per image codec;
- ``tensor_codecs``: encode and decode ms per tensor codec as ``a + b * MB``, MB being the fp32
  size of the crossing tensors: a least-squares line over the cuts the codec bench measured
  (coefficients clipped at 0);
- ``bottleneck_codecs``: encode (encoder + zstd, edge) and decode (zstd + decoder, next tier) ms
  of each shipped learned bottleneck (``bn:NAME``), from the bottleneck bench's rows of the same
  cut, channels and bits.

Codecs a file does not hold (a bottleneck of your own) are charged nothing and named in
:attr:`FrameCosts.uncharged`, so a summary can say what was left out.

The cost model charges them where they run (``CostModel(frame_costs=...)``): the simulator's truth,
the policies it evaluates, and the live partitioner (its ``frame_costs`` parameter).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from l2p_ros.measure.profile import COMMITTED_PROFILES_DIR, ProfileError, read_versioned_yaml, save_yaml

SCHEMA = "l2p-frame-costs/2"
SCHEMA_V1 = "l2p-frame-costs/1"  # no bottleneck_codecs


@dataclass
class FrameCosts:
    model: str
    machine: dict
    sources: dict
    per_frame_ms: dict  # complexity, decision
    image_codecs: dict  # codec -> {encode_ms, receive_ms}
    tensor_codecs: dict  # codec -> {encode: [a_ms, b_ms_per_mb], decode: [a, b]}
    bottleneck_codecs: dict = field(default_factory=dict)  # bn:NAME -> {encode_ms, decode_ms}
    uncharged: set[str] = field(default_factory=set)

    @property
    def edge_per_frame_ms(self) -> float:
        return float(sum(self.per_frame_ms.values()))

    def __post_init__(self):
        for codec in [*self.image_codecs, *self.bottleneck_codecs, *self.tensor_codecs]:
            lines = self.codec_lines(codec)
            if not all(value >= 0 for line in lines for value in line):
                raise ValueError(f"frame costs of codec {codec}: times must be >= 0 ms (and grow with size), "
                                 f"got encode {lines[0]}, decode {lines[1]}")

    def encode_ms(self, codec: str, fp32_bytes: float) -> float:
        intercept, per_mb = self.codec_lines(codec)[0]
        return intercept + per_mb * fp32_bytes / 1e6

    def decode_ms(self, codec: str, fp32_bytes: float) -> float:
        intercept, per_mb = self.codec_lines(codec)[1]
        return intercept + per_mb * fp32_bytes / 1e6

    def codec_lines(self, codec: str) -> tuple[tuple[float, float], tuple[float, float]]:
        """Encoding and decoding ms of ``codec`` as (ms, ms per fp32 MB of the crossing): image and
        bottleneck codecs take fixed times; a codec the file does not hold takes none (and is
        named in :attr:`uncharged`). Lines (never negative), so that DADS's min cut can charge
        them per tensor."""
        if codec in self.image_codecs:
            times = self.image_codecs[codec]
            return (float(times["encode_ms"]), 0.0), (float(times["receive_ms"]), 0.0)
        if codec in self.bottleneck_codecs:
            times = self.bottleneck_codecs[codec]
            return (float(times["encode_ms"]), 0.0), (float(times["decode_ms"]), 0.0)
        if codec in self.tensor_codecs:
            lines = self.tensor_codecs[codec]
            return tuple(float(v) for v in lines["encode"]), tuple(float(v) for v in lines["decode"])
        self.uncharged.add(codec)
        return (0.0, 0.0), (0.0, 0.0)

    def save(self, path: str | Path) -> None:
        save_yaml(path, {"schema": SCHEMA, "model": self.model, "machine": self.machine, "sources": self.sources,
                         "per_frame_ms": self.per_frame_ms, "image_codecs": self.image_codecs,
                         "tensor_codecs": self.tensor_codecs, "bottleneck_codecs": self.bottleneck_codecs})


class FrameCostsError(ProfileError):
    """A frame-costs file that is missing or not one, naming the file (a ProfileError, so callers
    that take any bad measurement file catch it too)."""


def load_frame_costs(path: str | Path) -> FrameCosts:
    try:
        data = read_versioned_yaml(path, SCHEMA, "frame costs", older=(SCHEMA_V1,))
        return FrameCosts(data["model"], data["machine"], data["sources"], data["per_frame_ms"],
                          data["image_codecs"], data["tensor_codecs"], data.get("bottleneck_codecs", {}))
    except ProfileError as error:
        raise FrameCostsError(str(error)) from None
    except (KeyError, TypeError, ValueError) as error:
        raise FrameCostsError(f"{path}: not a frame-costs file ({type(error).__name__}: {error})") from None


def fit_tensor_codecs(rows: list[dict]) -> dict:
    """``rows`` of bench/bench_codec.py (cut, codec, fp32_bytes, encode_ms_median, decode_ms_median):
    per tensor codec, encode and decode ms as a line in the crossing's fp32 MB."""
    by_codec: dict[str, list[dict]] = {}
    for row in rows:
        if row["cut"] != "cloud":  # image rows are the image codecs'
            by_codec.setdefault(row["codec"], []).append(row)
    fitted = {}
    for codec, codec_rows in by_codec.items():
        mb = np.array([row["fp32_bytes"] / 1e6 for row in codec_rows])
        # Clipped at 0: a time never falls with size, nor is negative for a small crossing.
        fitted[codec] = {key: [round(max(0.0, float(v)), 6)
                               for v in np.polyfit(mb, [row[column] for row in codec_rows], 1)[::-1]]
                         for key, column in (("encode", "encode_ms_median"), ("decode", "decode_ms_median"))}
    return fitted


def committed_frame_costs(model: str) -> Path | None:
    """The committed frame-costs file of ``model`` (``frame-costs-<model>-*.yaml``), None when there
    is none (another model, or an installed package without the repository's models/)."""
    found = sorted(COMMITTED_PROFILES_DIR.glob(f"frame-costs-{model}-*.yaml"))
    return found[0] if found else None


def resolve_frame_costs(frame_costs: str | Path | None, model: str) -> tuple[Path | None, FrameCosts | None]:
    """``frame_costs`` as ``l2p evaluate``, ``l2p train-ppo`` and the partitioner take it (a file,
    ``"committed"`` for the repository's file of ``model`` (none where it has none), ``"none"``, ""
    or None): the file and its costs, (None, None) when none; FrameCostsError naming a file that is
    missing or not frame costs."""
    if frame_costs == "committed":
        frame_costs = committed_frame_costs(model)
    if frame_costs is None or frame_costs in ("none", ""):
        return None, None
    return Path(frame_costs), load_frame_costs(frame_costs)


def frame_costs_source(path, costs) -> dict:
    """Where a run's frame costs came from, for its results and a trained policy's metadata."""
    if costs is None:
        return {"charged": False, "note": "encoding, decoding, frame complexity and the decision are not simulated"}
    try:  # the repository's own file by its repository path, so that results do not name this checkout
        path = Path(path).resolve().relative_to(COMMITTED_PROFILES_DIR.parents[1])
    except ValueError:
        pass
    return {"charged": True, "file": str(path), "machine": costs.machine, "sources": costs.sources,
            "per_frame_ms": costs.per_frame_ms,
            "note": "measured; charged to the edge (complexity, decision, encoding) and the receiving tier (decoding)"}
