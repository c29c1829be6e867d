"""Codec names and their parsing: what a partition, a profile or a message says about encoding.

No torch, cv2 or compression libraries: policies, the cost model and measurement files name codecs
without loading the wire code (``l2p_ros.codec``), which re-exports everything here.
"""
from __future__ import annotations

import re
from dataclasses import dataclass


class PayloadError(ValueError):
    """Received bytes (or a received codec name) that do not decode to what the cut expects."""


DTYPES = ("fp32", "fp16", "int8-tensor", "int8-channel", "jpeg", "bn")
COMPRESSIONS = ("none", "lz4", "zstd")
# A bottleneck's codes go zstd'd ("bn:NAME", compression "none") or through the context model its
# file carries ("bn:NAME+ctx", l2p_ros.context_coder): fewer bytes, more milliseconds.
CONTEXT_CODER = "ctx"
DEFAULT_JPEG_QUALITY = 75
# JPEG quantization tables: the standard's (jpeg-qN, jpeg-full-qN), or flatter ones for a detector
# at network resolution in 4:4:4 (jpeg-dnn-qN, l2p_ros.dnn_jpeg).
JPEG_TABLES = ("standard", "dnn")

# A learned bottleneck's name: a file models/bottleneck/NAME.safetensors (l2p_ros.bottleneck).
BOTTLENECK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")

# Element type on the wire per codec dtype; "jpeg" carries an image, never tensors; "bn" its codes.
WIRE_DTYPE = {"fp32": "float32", "fp16": "float16", "int8-tensor": "int8", "int8-channel": "int8"}


@dataclass(frozen=True)
class CodecSpec:
    """How crossing tensors are encoded: element dtype, lossless compression, JPEG quality.

    Names: ``fp32``, ``fp16+lz4``, ``int8-channel+zstd``, ``jpeg-q75``, ``jpeg-full-q75``,
    ``jpeg-dnn-q85``, ``bn:NAME`` (a learned bottleneck at its own cut, ``l2p_ros.bottleneck``, its
    codes zstd'd) and ``bn:NAME+ctx`` (the same codes range-coded with the file's context model).
    ``quality``, ``full_size`` and ``tables`` apply to ``jpeg`` only; JPEG is already compressed,
    so ``jpeg`` takes no further compression. ``jpeg-qN`` sends the image at network resolution
    (resized as the letterbox will resize it: the network never sees more pixels); ``jpeg-full-qN``
    sends it at the camera's size; ``jpeg-dnn-qN`` at network resolution with quantization tables
    for a detector (``tables="dnn"``, l2p_ros.dnn_jpeg). Invalid values raise
    :class:`PayloadError` (a ``ValueError``) so a codec named in a received message is rejected
    like any other malformed payload.
    """

    dtype: str = "fp32"
    compression: str = "none"
    quality: int = DEFAULT_JPEG_QUALITY
    full_size: bool = False
    bottleneck: str = ""
    tables: str = "standard"

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise PayloadError(f"codec dtype {self.dtype!r} unknown; allowed: {', '.join(DTYPES)}")
        if (self.dtype == "bn") != bool(self.bottleneck):
            raise PayloadError("a bottleneck name goes with codec bn, and codec bn needs one")
        if self.dtype == "bn" and not (isinstance(self.bottleneck, str) and BOTTLENECK_NAME.fullmatch(self.bottleneck)):
            raise PayloadError(f"bottleneck name {self.bottleneck!r} invalid: letters, digits, '_', '.', '-' "
                               "(1..64, no path)")
        if self.dtype == "bn" and self.compression not in ("none", CONTEXT_CODER):
            raise PayloadError(f"codec bn takes no compression but {CONTEXT_CODER!r} (got {self.compression!r}): "
                               "its codes are zstd'd, or range-coded with +ctx")
        if self.compression == CONTEXT_CODER and self.dtype != "bn":
            raise PayloadError(f"compression {CONTEXT_CODER!r} applies to bottleneck codes (bn:NAME+ctx) only, "
                               f"not to {self.dtype!r}")
        if self.compression not in (*COMPRESSIONS, CONTEXT_CODER):
            raise PayloadError(
                f"compression {self.compression!r} unknown; allowed: {', '.join(COMPRESSIONS)}"
            )
        if type(self.quality) is not int or not 1 <= self.quality <= 100:
            raise PayloadError(f"JPEG quality {self.quality!r} invalid; allowed: integers 1..100")
        if self.dtype == "jpeg" and self.compression != "none":
            raise PayloadError(f"codec jpeg takes no compression (got {self.compression!r}); allowed: none")
        if self.dtype != "jpeg" and self.quality != DEFAULT_JPEG_QUALITY:
            raise PayloadError(f"quality={self.quality} applies to jpeg only, not to {self.dtype!r}")
        if self.dtype != "jpeg" and self.full_size:
            raise PayloadError(f"full_size applies to jpeg only, not to {self.dtype!r}")
        if self.tables not in JPEG_TABLES:
            raise PayloadError(f"JPEG tables {self.tables!r} unknown; allowed: {', '.join(JPEG_TABLES)}")
        if self.tables != "standard" and (self.dtype != "jpeg" or self.full_size):
            raise PayloadError(f"tables={self.tables!r} applies to jpeg at network resolution only (jpeg-dnn-qN)")

    @classmethod
    def parse(cls, name: str) -> CodecSpec:
        """``"int8-channel+zstd"`` -> ``CodecSpec("int8-channel", "zstd")``; ``"jpeg-q90"`` -> quality
        90 at network resolution; ``"jpeg-full-q90"`` -> the same at the camera's size."""
        if not isinstance(name, str):
            raise PayloadError(f"codec name must be a string, got {type(name).__name__}")
        if name.startswith("bn:"):
            bottleneck, plus, coder = name[3:].partition("+")
            if plus and coder != CONTEXT_CODER:
                raise PayloadError(f"codec {name!r}: a bottleneck's codes take +{CONTEXT_CODER} or nothing, "
                                   f"not +{coder}")
            return cls("bn", CONTEXT_CODER if plus else "none", bottleneck=bottleneck)
        dtype, _, compression = name.strip().partition("+")
        quality, full_size = DEFAULT_JPEG_QUALITY, False
        head, sep, tail = dtype.rpartition("-q")
        if sep and head in ("jpeg", "jpeg-full", "jpeg-dnn"):
            if not tail.isdigit():
                raise PayloadError(f"codec {name!r}: quality {tail!r} is not an integer 1..100")
            tables = "dnn" if head == "jpeg-dnn" else "standard"
            return cls("jpeg", compression or "none", int(tail), head == "jpeg-full", tables=tables)
        if dtype == "jpeg-full":
            dtype, full_size = "jpeg", True
        return cls(dtype, compression or "none", quality, full_size)

    def __str__(self) -> str:
        if self.dtype == "bn":
            return f"bn:{self.bottleneck}" + (f"+{CONTEXT_CODER}" if self.compression == CONTEXT_CODER else "")
        if self.dtype == "jpeg":
            if self.tables == "dnn":
                return f"jpeg-dnn-q{self.quality}"
            return f"jpeg-full-q{self.quality}" if self.full_size else f"jpeg-q{self.quality}"
        return self.dtype if self.compression == "none" else f"{self.dtype}+{self.compression}"

    @property
    def wire_dtype(self) -> str:
        """Element type of the encoded tensors: "float32", "float16" or "int8"."""
        if self.dtype in ("jpeg", "bn"):
            raise PayloadError(f"codec {self} carries {'an image' if self.dtype == 'jpeg' else 'bottleneck codes'}, "
                               "not tensors")
        return WIRE_DTYPE[self.dtype]


# Named codecs worth benchmarking (parse with CodecSpec.parse). lz4 appears once: it finds almost
# nothing in fp16 or int8 activations (measured: 49.7% and 25.4% of fp32, same as uncompressed).
CODECS = (
    "fp32",
    "fp32+lz4",
    "fp32+zstd",
    "fp16",
    "fp16+zstd",
    "int8-tensor+zstd",
    "int8-channel",
    "int8-channel+zstd",
    "jpeg-q75",
    "jpeg-q90",
    "jpeg-full-q75",
    "jpeg-dnn-q85",  # the network-resolution image with a detector's quantization tables (dnn_jpeg)
)
TENSOR_CODECS = tuple(name for name in CODECS if not name.startswith("jpeg"))
IMAGE_CODECS = tuple(name for name in CODECS if name.startswith("jpeg"))


def is_image_codec(name: str) -> bool:
    """Whether ``name`` encodes the image (``jpeg-qN``, ``jpeg-full-qN``, ``jpeg-dnn-qN``) rather than
    crossing tensors."""
    return CodecSpec.parse(name).dtype == "jpeg"


def full_size_name(name: str) -> str:
    """What a measurement file written before network-resolution offload meant by ``name``:
    its ``jpeg-qN`` was the camera-size image, ``jpeg-full-qN`` today; other names are unchanged."""
    if not name.startswith("jpeg"):
        return name
    spec = CodecSpec.parse(name)
    return str(CodecSpec("jpeg", quality=spec.quality, full_size=True))


def has_exact_size(name: str) -> bool:
    """Whether a tensor codec's bytes depend on tensor shapes only (no compression, not JPEG)."""
    spec = CodecSpec.parse(name)
    return spec.dtype not in ("jpeg", "bn") and spec.compression == "none"


def is_bottleneck_codec(name: str) -> bool:
    """Whether ``name`` is a learned bottleneck (``bn:NAME``, ``bn:NAME+ctx``)."""
    return CodecSpec.parse(name).dtype == "bn"


def bottleneck_source(name: str) -> tuple[str, str]:
    """``bn:NAME_OR_PATH[+ctx]`` (the command line's form: a path allowed) -> (the name or path, the
    codes' compression: "none" for zstd, "ctx")."""
    if not name.startswith("bn:"):
        raise PayloadError(f"codec {name!r} is not a bottleneck (bn:NAME)")
    text = name[3:]
    head, plus, coder = text.rpartition("+")
    if plus and coder in COMPRESSIONS:
        raise PayloadError(f"codec {name!r}: a bottleneck's codes take +{CONTEXT_CODER} or nothing, not +{coder}")
    return (head, CONTEXT_CODER) if plus and coder == CONTEXT_CODER else (text, "none")
