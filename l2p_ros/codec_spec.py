"""Codec names and their parsing: what a partition, a profile or a message says about encoding.

No torch, cv2 or compression libraries: policies, the cost model and measurement files name codecs
without loading the wire code (``l2p_ros.codec``), which re-exports everything here.
"""
from __future__ import annotations

from dataclasses import dataclass

class PayloadError(ValueError):
    """Received bytes (or a received codec name) that do not decode to what the cut expects."""


DTYPES = ("fp32", "fp16", "int8-tensor", "int8-channel", "jpeg")
COMPRESSIONS = ("none", "lz4", "zstd")
DEFAULT_JPEG_QUALITY = 75

# Element type on the wire per codec dtype; "jpeg" carries an image, never tensors.
WIRE_DTYPE = {"fp32": "float32", "fp16": "float16", "int8-tensor": "int8", "int8-channel": "int8"}


@dataclass(frozen=True)
class CodecSpec:
    """How crossing tensors are encoded: element dtype, lossless compression, JPEG quality.

    Names: ``fp32``, ``fp16+lz4``, ``int8-channel+zstd``, ``jpeg-q75``. ``quality`` applies to
    ``jpeg`` only; JPEG is already compressed, so ``jpeg`` takes no further compression.
    Invalid values raise :class:`PayloadError` (a ``ValueError``) so a codec named in a received
    message is rejected like any other malformed payload.
    """

    dtype: str = "fp32"
    compression: str = "none"
    quality: int = DEFAULT_JPEG_QUALITY

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise PayloadError(f"codec dtype {self.dtype!r} unknown; allowed: {', '.join(DTYPES)}")
        if self.compression not in COMPRESSIONS:
            raise PayloadError(
                f"compression {self.compression!r} unknown; allowed: {', '.join(COMPRESSIONS)}"
            )
        if type(self.quality) is not int or not 1 <= self.quality <= 100:
            raise PayloadError(f"JPEG quality {self.quality!r} invalid; allowed: integers 1..100")
        if self.dtype == "jpeg" and self.compression != "none":
            raise PayloadError(f"codec jpeg takes no compression (got {self.compression!r}); allowed: none")
        if self.dtype != "jpeg" and self.quality != DEFAULT_JPEG_QUALITY:
            raise PayloadError(f"quality={self.quality} applies to jpeg only, not to {self.dtype!r}")

    @classmethod
    def parse(cls, name: str) -> CodecSpec:
        """``"int8-channel+zstd"`` -> ``CodecSpec("int8-channel", "zstd")``; ``"jpeg-q90"`` -> quality 90."""
        if not isinstance(name, str):
            raise PayloadError(f"codec name must be a string, got {type(name).__name__}")
        dtype, _, compression = name.strip().partition("+")
        quality = DEFAULT_JPEG_QUALITY
        head, sep, tail = dtype.rpartition("-q")
        if sep and head == "jpeg":
            if not tail.isdigit():
                raise PayloadError(f"codec {name!r}: quality {tail!r} is not an integer 1..100")
            dtype, quality = head, int(tail)
        return cls(dtype, compression or "none", quality)

    def __str__(self) -> str:
        if self.dtype == "jpeg":
            return f"jpeg-q{self.quality}"
        return self.dtype if self.compression == "none" else f"{self.dtype}+{self.compression}"

    @property
    def wire_dtype(self) -> str:
        """Element type of the encoded tensors: "float32", "float16" or "int8"."""
        if self.dtype == "jpeg":
            raise PayloadError("codec jpeg carries an image, not tensors")
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
)
TENSOR_CODECS = tuple(name for name in CODECS if not name.startswith("jpeg"))
IMAGE_CODECS = tuple(name for name in CODECS if name.startswith("jpeg"))


def is_image_codec(name: str) -> bool:
    """Whether ``name`` encodes the image (``jpeg-qN``) rather than crossing tensors."""
    return CodecSpec.parse(name).dtype == "jpeg"


def has_exact_size(name: str) -> bool:
    """Whether a tensor codec's bytes depend on tensor shapes only (no compression, not JPEG)."""
    spec = CodecSpec.parse(name)
    return spec.dtype != "jpeg" and spec.compression == "none"
