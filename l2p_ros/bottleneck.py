"""A learned bottleneck codec: a small encoder after a cut on the edge, its decoder on the next tier.

Supervised compression (BottleNet++, Matsubara et al.'s sc2bench): the tensor crossing a cut is
squeezed by a trained encoder into ``channels`` maps of ``bits``-bit codes, sent zstd-compressed,
and expanded back by a decoder into what the frozen rest of the network expects. The original
layers never change; the teacher is the unmodified model (``bottleneck_training``), so no labels
are needed.

File (``schema: l2p-bottleneck/1``): a safetensors file (weights only, nothing unpickled) whose
metadata key ``l2p`` holds a JSON object: the model id, the weights fingerprint it was distilled
from, the cut, the crossing tensor's shape, channels, bits, hidden width, the training record
(sources, frames, held-out results) and the sha256 of the tensors. Loading it against another
model, other weights or another cut, or with tensors that do not hash to what it says, raises
:class:`BottleneckError` naming the file and the mismatch.

On the wire (codec ``bn:NAME``): one :class:`codec.TensorRecord` for the cut's layer with shape
(N, channels, H, W), dtype ``uint8`` and zstd data; every code must be below ``2**bits``.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import zstandard
from torch import nn

from l2p_ros.codec import ZSTD_LEVEL, TensorRecord, decompress_exact, record_fields
from l2p_ros.codec_spec import BOTTLENECK_NAME, PayloadError

SCHEMA = "l2p-bottleneck/1"
EXTENSION = ".safetensors"
# In a source checkout, models/bottleneck/ beside the package; installed (colcon, pip), the copy
# setup.py puts in <prefix>/share/l2p_ros/ (the package itself is in <prefix>/lib/pythonX.Y/site-packages).
def _bundled_dir() -> Path:
    here = Path(__file__).resolve().parent
    source = here.parent / "models" / "bottleneck"
    if source.is_dir() or len(here.parents) < 4:
        return source
    installed = here.parents[3] / "share" / "l2p_ros" / "models" / "bottleneck"
    return installed if installed.is_dir() else source


BUNDLED_DIR = _bundled_dir()
MAX_BITS = 8


class BottleneckError(ValueError):
    """A bottleneck file that is missing, malformed, tampered with, or made for another model or cut."""


@dataclass(frozen=True)
class BottleneckInfo:
    """What a bottleneck fits and how it is built; ``training`` is free-form provenance."""

    model_id: str  # e.g. "yolov3-tiny-416"
    weights_fingerprint: str  # Darknet.weights_fingerprint of the teacher
    cut_after_layer: int
    crossing_shape: tuple[int, int, int]  # (C, H, W) of the one tensor crossing the cut
    channels: int
    bits: int
    hidden: int
    training: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 1 <= self.bits <= MAX_BITS:
            raise BottleneckError(f"bits must be 1..{MAX_BITS}, got {self.bits}")
        if not 1 <= self.channels <= self.crossing_shape[0]:
            raise BottleneckError(f"channels must be 1..{self.crossing_shape[0]} (the crossing tensor's), "
                                  f"got {self.channels}")
        if self.hidden < 1:
            raise BottleneckError(f"hidden must be >= 1, got {self.hidden}")

    @property
    def levels(self) -> int:
        return 2 ** self.bits - 1

    @property
    def code_shape(self) -> tuple[int, int, int]:
        return (self.channels, *self.crossing_shape[1:])


class Bottleneck(nn.Module):
    """Encoder (crossing tensor -> ``bits``-bit codes) and decoder (codes -> crossing tensor).

    Sized to cost the edge little: a 1x1 then a 3x3 convolution down to ``channels``; the decoder
    (on the tier with the larger budget) two 3x3 convolutions and a 1x1 back to the crossing width.
    Codes are ``round(sigmoid(encoder(x)) * (2**bits - 1))``; training passes gradients through the
    rounding unchanged (straight-through).
    """

    def __init__(self, info: BottleneckInfo):
        super().__init__()
        self.info = info
        width, hidden, channels = info.crossing_shape[0], info.hidden, info.channels
        self.encoder = nn.Sequential(nn.Conv2d(width, hidden, 1), nn.LeakyReLU(0.1),
                                     nn.Conv2d(hidden, channels, 3, padding=1))
        self.decoder = nn.Sequential(nn.Conv2d(channels, 2 * hidden, 3, padding=1), nn.LeakyReLU(0.1),
                                     nn.Conv2d(2 * hidden, 2 * hidden, 3, padding=1), nn.LeakyReLU(0.1),
                                     nn.Conv2d(2 * hidden, width, 1))

    def encode(self, crossing: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) crossing tensor -> (N, channels, H, W) uint8 codes."""
        levels = self.info.levels
        return torch.round(torch.sigmoid(self.encoder(crossing)) * levels).to(torch.uint8)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """uint8 codes -> the crossing tensor the rest of the network takes, in the decoder's dtype."""
        weight = self.decoder[0].weight
        return self.decoder(codes.to(device=weight.device, dtype=weight.dtype) / self.info.levels)

    def forward(self, crossing: torch.Tensor) -> torch.Tensor:
        """Training path: encode, quantize with a straight-through gradient, decode."""
        soft = torch.sigmoid(self.encoder(crossing))
        levels = self.info.levels
        hard = torch.round(soft * levels) / levels
        return self.decoder(soft + (hard - soft).detach())

    # ---- file format -------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        from safetensors.torch import save_file

        path = Path(path)
        if path.suffix != EXTENSION:
            raise BottleneckError(f"{path}: a bottleneck file ends in {EXTENSION}")
        tensors = {name: value.detach().float().cpu().contiguous() for name, value in self.state_dict().items()}
        meta = {"schema": SCHEMA, **asdict(self.info), "tensors_sha256": tensors_sha256(tensors)}
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file(tensors, str(path), metadata={"l2p": json.dumps(meta)})
        return path


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 over the tensors' names, shapes and float32 bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        array = tensors[name].detach().float().cpu().contiguous().numpy()
        digest.update(f"{name}:{list(array.shape)};".encode())
        digest.update(array.astype("<f4", copy=False).tobytes())
    return digest.hexdigest()


def resolve_path(name_or_path: str | Path) -> Path:
    """``NAME`` -> ``models/bottleneck/NAME.safetensors``; anything with a suffix or a slash is a path."""
    text = str(name_or_path)
    if BOTTLENECK_NAME.fullmatch(text) and not text.endswith(EXTENSION):
        return BUNDLED_DIR / f"{text}{EXTENSION}"
    return Path(text).expanduser()


def load_bottleneck(name_or_path: str | Path, *, model_id: str | None = None,
                    weights_fingerprint: str | None = None) -> Bottleneck:
    """A bottleneck from its file, checked whole: schema, fields, tensor names, shapes and hash;
    with ``model_id``/``weights_fingerprint``, that it was made for that model and those weights."""
    from safetensors import SafetensorError, safe_open

    path = resolve_path(name_or_path)
    if not path.is_file():
        bundled = sorted(p.stem for p in BUNDLED_DIR.glob(f"*{EXTENSION}"))
        raise BottleneckError(f"bottleneck not found: {path} (bundled: {', '.join(bundled) or 'none'})")
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = json.loads((handle.metadata() or {}).get("l2p", "null"))
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except (SafetensorError, OSError, ValueError) as error:
        raise BottleneckError(f"{path}: not a readable bottleneck file ({error})") from None
    if not isinstance(meta, dict) or meta.get("schema") != SCHEMA:
        found = meta.get("schema") if isinstance(meta, dict) else meta
        raise BottleneckError(f"{path}: schema {found!r} is not {SCHEMA!r}")
    try:
        info = BottleneckInfo(str(meta["model_id"]), str(meta["weights_fingerprint"]), int(meta["cut_after_layer"]),
                              tuple(int(v) for v in meta["crossing_shape"]), int(meta["channels"]),
                              int(meta["bits"]), int(meta["hidden"]), dict(meta.get("training") or {}))
        expected_hash = str(meta["tensors_sha256"])
    except (KeyError, TypeError, ValueError) as error:
        raise BottleneckError(f"{path}: malformed metadata ({type(error).__name__}: {error})") from None
    if len(info.crossing_shape) != 3:
        raise BottleneckError(f"{path}: crossing_shape must be (C, H, W), got {info.crossing_shape}")
    if tensors_sha256(tensors) != expected_hash:
        raise BottleneckError(f"{path}: its tensors do not match the sha256 it records: the file was "
                              "altered or damaged")
    if model_id is not None and info.model_id != model_id:
        raise BottleneckError(f"{path}: made for model {info.model_id!r}, not {model_id!r}")
    if weights_fingerprint is not None and info.weights_fingerprint != weights_fingerprint:
        raise BottleneckError(f"{path}: distilled from weights {info.weights_fingerprint}, this model has "
                              f"{weights_fingerprint}")
    bottleneck = Bottleneck(info)
    try:
        bottleneck.load_state_dict(tensors, strict=True)
    except RuntimeError as error:
        raise BottleneckError(f"{path}: tensors do not fit the architecture it records ({error})") from None
    if not all(torch.isfinite(t).all() for t in tensors.values()):
        raise BottleneckError(f"{path}: weights hold NaN or infinity")
    bottleneck.eval()
    bottleneck.requires_grad_(False)
    return bottleneck


# ---- wire --------------------------------------------------------------------------------------


def encode_codes(layer_index: int, codes: torch.Tensor) -> list[TensorRecord]:
    """The codes of one frame (or batch) as the single record a ``bn:`` FeatureMap carries."""
    array = np.ascontiguousarray(codes.detach().cpu().numpy().astype(np.uint8, copy=False))
    data = zstandard.ZstdCompressor(level=ZSTD_LEVEL).compress(array.tobytes())
    return [TensorRecord(int(layer_index), tuple(array.shape), "uint8", (), (), data)]


def decode_codes(records: list[TensorRecord], info: BottleneckInfo, batch: int = 1) -> torch.Tensor:
    """Received records -> uint8 codes (batch, channels, H, W); PayloadError for anything else."""
    try:
        records = list(records)
    except TypeError as error:
        raise PayloadError(f"records must be a sequence of TensorRecord: {error}") from None
    if len(records) != 1:
        raise PayloadError(f"a bottleneck payload is one record, got {len(records)}")
    layer_index, shape, dtype, scale, zero_point, data = record_fields(records[0], 0)
    expected = (batch, *info.code_shape)
    where = f"bottleneck codes for layer {layer_index}"
    if layer_index != info.cut_after_layer:
        raise PayloadError(f"bottleneck codes for layer {info.cut_after_layer} expected, got layer {layer_index}")
    if shape != expected or dtype != "uint8" or scale or zero_point:
        raise PayloadError(f"{where}: uint8 {expected} without quantization parameters expected, got "
                           f"{dtype} {shape} with {len(scale)} scales")
    raw = decompress_exact(where, "zstd", data, math.prod(expected))
    codes = np.frombuffer(raw, dtype=np.uint8).reshape(expected)
    if int(codes.max(initial=0)) > info.levels:
        raise PayloadError(f"{where}: a code above {info.levels}, the largest {info.bits}-bit code")
    return torch.from_numpy(codes.copy())
