"""A learned bottleneck's file: what it fits, its weights as arrays, and every check on loading.

No torch: the partitioner reads what a bottleneck sends (its cut, its measured bytes per frame)
to weigh its cut against the others without loading the network; ``l2p_ros.bottleneck`` builds
the torch module from the arrays.

File (``schema: l2p-bottleneck/3``): a safetensors file (weights only, nothing unpickled) whose
metadata key ``l2p`` holds a JSON object: the model id, the weights fingerprint it was distilled
from, the cut, the crossing tensor's shape, channels, bits, the encoder's and the decoder's hidden
widths (``/1`` files have no decoder width: theirs is twice the encoder's), the training record
(sources, frames, held-out results) and the sha256 of the tensors. Beside the network's weights
it may hold :data:`CONTEXT_KEY`, the context model of its codes (``l2p_ros.context_coder``;
``/2`` files have none: they take no ``+ctx``). Reading it against another
model or other weights, or with tensors that do not hash to what it says, raises
:class:`BottleneckError` naming the file and the mismatch.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from l2p_ros.codec_spec import BOTTLENECK_NAME

SCHEMA = "l2p-bottleneck/3"
# Read too: /1 recorded one hidden width, its decoder twice it; /2 held no context model. A /3
# file is refused by a /2 reader by its schema, not by an array it would not expect.
READABLE_SCHEMAS = ("l2p-bottleneck/1", "l2p-bottleneck/2", SCHEMA)
CONTEXT_KEY = "context.probabilities"
EXTENSION = ".safetensors"
MAX_BITS = 8


def _bundled_dir() -> Path:
    """models/bottleneck/ beside the package in a source checkout; installed (colcon, pip), the copy
    setup.py puts in <prefix>/share/l2p_ros/ (the package is in <prefix>/lib/pythonX.Y/site-packages)."""
    here = Path(__file__).resolve().parent
    source = here.parent / "models" / "bottleneck"
    if source.is_dir() or len(here.parents) < 4:
        return source
    installed = here.parents[3] / "share" / "l2p_ros" / "models" / "bottleneck"
    return installed if installed.is_dir() else source


BUNDLED_DIR = _bundled_dir()


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
    hidden: int  # the encoder's hidden width
    training: dict = field(default_factory=dict)
    decoder_hidden: int | None = None  # None: twice ``hidden`` (every /1 file)

    def __post_init__(self) -> None:
        if len(self.crossing_shape) != 3:
            raise BottleneckError(f"crossing_shape must be (C, H, W), got {self.crossing_shape}")
        if not 1 <= self.bits <= MAX_BITS:
            raise BottleneckError(f"bits must be 1..{MAX_BITS}, got {self.bits}")
        if not 1 <= self.channels <= self.crossing_shape[0]:
            raise BottleneckError(f"channels must be 1..{self.crossing_shape[0]} (the crossing tensor's), "
                                  f"got {self.channels}")
        if self.hidden < 1:
            raise BottleneckError(f"hidden must be >= 1, got {self.hidden}")
        if self.decoder_hidden is not None and self.decoder_hidden < 1:
            raise BottleneckError(f"decoder_hidden must be >= 1, got {self.decoder_hidden}")

    @property
    def decoder_width(self) -> int:
        return self.decoder_hidden if self.decoder_hidden is not None else 2 * self.hidden

    @property
    def levels(self) -> int:
        return 2 ** self.bits - 1

    @property
    def code_shape(self) -> tuple[int, int, int]:
        return (self.channels, *self.crossing_shape[1:])

    @property
    def held_out_payload_bytes(self) -> float | None:
        """Mean bytes per frame it sent on its held-out frames, when it was evaluated."""
        value = (self.training.get("held_out") or {}).get("payload_bytes_mean")
        return float(value) if value is not None else None

    @property
    def held_out_context_payload_bytes(self) -> float | None:
        """The same through its context model (``bn:NAME+ctx``), when it has one and was evaluated."""
        value = (self.training.get("held_out") or {}).get("context_payload_bytes_mean")
        return float(value) if value is not None else None


def tensors_sha256(arrays: dict[str, np.ndarray]) -> str:
    """sha256 over the arrays' names, shapes and float32 bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name], dtype="<f4")
        digest.update(f"{name}:{list(array.shape)};".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def resolve_path(name_or_path: str | Path) -> Path:
    """``NAME`` -> ``models/bottleneck/NAME.safetensors``; anything with a suffix or a slash is a path."""
    text = str(name_or_path)
    if BOTTLENECK_NAME.fullmatch(text) and not text.endswith(EXTENSION):
        return BUNDLED_DIR / f"{text}{EXTENSION}"
    return Path(text).expanduser()


def write_bottleneck(path: str | Path, info: BottleneckInfo, arrays: dict[str, np.ndarray]) -> Path:
    from safetensors.numpy import save_file

    path = Path(path)
    if path.suffix != EXTENSION:
        raise BottleneckError(f"{path}: a bottleneck file ends in {EXTENSION}")
    arrays = {name: np.ascontiguousarray(value, dtype=np.float32) for name, value in arrays.items()}
    meta = {"schema": SCHEMA, **asdict(info), "tensors_sha256": tensors_sha256(arrays)}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(arrays, str(path), metadata={"l2p": json.dumps(meta)})
    return path


def read_bottleneck(name_or_path: str | Path, *, model_id: str | None = None,
                    weights_fingerprint: str | None = None) -> tuple[BottleneckInfo, dict[str, np.ndarray]]:
    """A bottleneck file's info and float32 arrays, checked whole: schema, fields, hash, finiteness;
    with ``model_id``/``weights_fingerprint``, that it was made for that model and those weights."""
    from safetensors import SafetensorError, safe_open

    path = resolve_path(name_or_path)
    if not path.is_file():
        bundled = sorted(p.stem for p in BUNDLED_DIR.glob(f"*{EXTENSION}"))
        raise BottleneckError(f"bottleneck not found: {path} (bundled: {', '.join(bundled) or 'none'})")
    try:
        with safe_open(str(path), framework="np") as handle:
            meta = json.loads((handle.metadata() or {}).get("l2p", "null"))
            arrays = {key: handle.get_tensor(key) for key in handle.keys()}
    except (SafetensorError, OSError, ValueError) as error:
        raise BottleneckError(f"{path}: not a readable bottleneck file ({error})") from None
    if not isinstance(meta, dict) or meta.get("schema") not in READABLE_SCHEMAS:
        found = meta.get("schema") if isinstance(meta, dict) else meta
        raise BottleneckError(f"{path}: schema {found!r} is not one of {', '.join(map(repr, READABLE_SCHEMAS))}")
    try:
        info = BottleneckInfo(str(meta["model_id"]), str(meta["weights_fingerprint"]), int(meta["cut_after_layer"]),
                              tuple(int(v) for v in meta["crossing_shape"]), int(meta["channels"]),
                              int(meta["bits"]), int(meta["hidden"]), dict(meta.get("training") or {}),
                              None if meta.get("decoder_hidden") is None else int(meta["decoder_hidden"]))
        expected_hash = str(meta["tensors_sha256"])
    except (KeyError, TypeError, ValueError) as error:
        if isinstance(error, BottleneckError):
            raise BottleneckError(f"{path}: {error}") from None
        raise BottleneckError(f"{path}: malformed metadata ({type(error).__name__}: {error})") from None
    if any(array.dtype != np.float32 for array in arrays.values()):
        raise BottleneckError(f"{path}: weights must be float32")
    if tensors_sha256(arrays) != expected_hash:
        raise BottleneckError(f"{path}: its tensors do not match the sha256 it records: the file was "
                              "altered or damaged")
    if not all(np.isfinite(array).all() for array in arrays.values()):
        raise BottleneckError(f"{path}: weights hold NaN or infinity")
    if model_id is not None and info.model_id != model_id:
        raise BottleneckError(f"{path}: made for model {info.model_id!r}, not {model_id!r}")
    if weights_fingerprint is not None and info.weights_fingerprint != weights_fingerprint:
        raise BottleneckError(f"{path}: distilled from weights {info.weights_fingerprint}, this model has "
                              f"{weights_fingerprint}")
    return info, arrays
