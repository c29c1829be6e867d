"""Wire format of the tensors that cross a cut and of offloaded images, and its validation.

ROS-free. The edge calls :func:`encode_tensors`; each :class:`TensorRecord` travels field for
field as an ``l2p_msgs/CrossingTensor`` in a FeatureMap, whose codec is one canonical name
(:mod:`l2p_ros.codec_spec`); the next tier calls :func:`decode_tensors`. Nothing here unpickles or
``torch.load``s: every received byte is parsed with ``numpy`` after its sizes, shapes, dtypes and
quantization parameters have been checked against what the model expects at the cut. Anything
malformed raises :class:`PayloadError` and nothing else.

Record ``data`` is the C-order (NCHW) little-endian element array. With compression, two lossless
filters run first (each measured to help, see their docstrings): float elements are split into byte
planes, and int8 elements are stored as ``(q - zero_point) mod 256``; the result is one lz4 or zstd
frame whose header states the decompressed size.
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass

import cv2
import lz4.frame
import numpy as np
import torch
import zstandard

from l2p_ros.codec_spec import CODECS, CONTEXT_CODER, JPEG_TABLES, CodecSpec, PayloadError
from l2p_ros.dnn_jpeg import encode_dnn_jpeg

__all__ = [
    "CODECS",
    "CONTEXT_CODER",
    "DEFAULT_MAX_BYTES",
    "CodecSpec",
    "PayloadError",
    "TensorRecord",
    "decode_image",
    "decode_tensors",
    "encode_image",
    "encode_tensors",
    "payload_size_bytes",
]


ZSTD_LEVEL = 1  # levels 3 and 9 compress quantized activations no better (measured), only slower
DEFAULT_MAX_BYTES = 256 * 1024 * 1024  # YOLOv3-608's largest crossing in fp32 is ~45 MB

_NUMPY_DTYPE = {"float32": np.dtype("<f4"), "float16": np.dtype("<f2"), "int8": np.dtype("i1")}
FP16_MAX = 65504.0
INT8_MIN, INT8_MAX = -128, 127


@dataclass(frozen=True)
class TensorRecord:
    """One encoded tensor; field for field the ROS message ``l2p_msgs/CrossingTensor``.

    ``shape`` is NCHW as produced by the model. For int8, ``real = scale * (q - zero_point)`` with
    one (scale, zero_point) pair per tensor or one per channel (dim 1); both are empty for floats.
    ``data`` is the little-endian C-order element array, filtered and compressed when the spec
    names a compression (module docstring).
    """

    layer_index: int
    shape: tuple[int, ...]
    dtype: str  # "float32" | "float16" | "int8"
    quant_scale: tuple[float, ...]
    quant_zero_point: tuple[int, ...]
    data: bytes


# ---------------------------------------------------------------------------------------------
# Encoding (edge side). Errors here are programming errors: plain ValueError/TypeError.


def encode_tensors(tensors: dict[int, torch.Tensor], spec: CodecSpec) -> list[TensorRecord]:
    """Encode every crossing tensor (any float dtype, any shape, NCHW for per-channel) by layer index.

    Returns the records sorted by layer index. Non-finite values are not filtered here: they reach
    the receiver, whose decoder rejects them, so a broken head costs a counted drop, not a crash.

    The arithmetic is numpy's, single-threaded on purpose: these are a few memory-bound passes
    over ~1 MB, and torch's intra-op threads stall for milliseconds per op when another process
    holds a core (measured here: 8 ms per torch op vs 0.1 ms per numpy op on a busy 2-core machine).
    """
    wire_dtype = spec.wire_dtype
    compress = _compressor(spec.compression)
    records = []
    for layer_index in sorted(tensors):
        tensor = tensors[layer_index].detach().cpu()
        if tensor.dtype != torch.float32:
            tensor = tensor.float()
        x = np.ascontiguousarray(tensor.numpy())  # NCHW, whatever the memory format was
        scale: tuple[float, ...] = ()
        zero_point: tuple[int, ...] = ()
        if wire_dtype == "float32":
            array = x
        elif wire_dtype == "float16":
            # Saturate finite values instead of overflowing to inf: a large activation stays large.
            # A tensor already holding inf/NaN is left so, for the receiver to reject like fp32's.
            if _is_finite(x):
                x = np.clip(x, -FP16_MAX, FP16_MAX)
            with np.errstate(over="ignore"):
                array = x.astype(np.float16)
        else:
            array, scale_array, zero_point_array = _quantize(x, per_channel=spec.dtype == "int8-channel")
            scale, zero_point = tuple(scale_array.tolist()), tuple(zero_point_array.tolist())
            if spec.compression != "none":
                array = _subtract_zero_point(array, zero_point)
        records.append(
            TensorRecord(
                layer_index=int(layer_index),
                shape=tuple(x.shape),
                dtype=wire_dtype,
                quant_scale=scale,
                quant_zero_point=zero_point,
                data=compress(array.astype(array.dtype.newbyteorder("<"), copy=False)),
            )
        )
    return records


def _quantize(x: np.ndarray, per_channel: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Affine int8 quantization of float32 ``x``; returns (q int8 like x, scale f32 [P], zero_point i32 [P]).

    P is x.shape[1] per channel (a tensor of fewer than 2 dims gets one pair), else 1.

    Asymmetric (uint8 range [min, max] shifted to int8 by a zero point) rather than symmetric:
    crossing tensors are mostly leaky-ReLU outputs, whose negatives are 10x smaller than their
    positives, so a symmetric [-|x|max, |x|max] grid would spend almost half its 256 levels on
    values that never occur; asymmetric halves the step and hence the worst-case error. The range is
    widened to include 0 so that the zero point is an int8 and 0 is exact. A channel whose range is
    empty (all zeros) gets scale 1, never 0, so that dequantization stays defined. A channel holding
    inf/NaN gets scale NaN, which the receiver rejects.
    """
    per_channel = per_channel and x.ndim >= 2
    channels = x.shape[1] if per_channel else 1
    if x.size == 0:
        low = high = np.zeros(channels)
    elif per_channel:
        rows = x.reshape(x.shape[0], channels, -1)
        low, high = rows.min(axis=(0, 2)), rows.max(axis=(0, 2))
    else:
        low, high = np.array([x.min()]), np.array([x.max()])
    # float64: (max - min) of two large float32 values may overflow float32.
    low, high = np.minimum(low.astype(np.float64), 0.0), np.maximum(high.astype(np.float64), 0.0)
    span = high - low
    finite = np.isfinite(span)
    if not finite.all():
        x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)  # defined int8 values; scale marks it
        span, low = np.where(finite, span, 0.0), np.where(finite, low, 0.0)
    # The floor: a subnormal span would give a scale that underflows to 0 in float32.
    scale = np.maximum(np.where(span > 0, span / (INT8_MAX - INT8_MIN), 1.0), np.finfo(np.float32).tiny)
    zero_point = np.clip(np.rint(INT8_MIN - low / scale), INT8_MIN, INT8_MAX)
    view = [1] * x.ndim
    if per_channel:
        view[1] = channels
    # round(x / s) + z == round(x / s + z) for integer z; multiplying by 1/s is twice as fast.
    q = x * (1.0 / scale).astype(np.float32).reshape(view)
    q += zero_point.astype(np.float32).reshape(view)
    np.clip(np.rint(q, out=q), INT8_MIN, INT8_MAX, out=q)
    scale = np.where(finite, scale, np.nan).astype(np.float32)
    return q.astype(np.int8), scale, zero_point.astype(np.int32)


def _is_finite(array: np.ndarray) -> bool:
    """No NaN or inf in a float array; min/max propagate NaN and are ~10x cheaper than isfinite()."""
    return array.size == 0 or bool(np.isfinite(array.min()) and np.isfinite(array.max()))


def _compressor(compression: str):
    """C-contiguous numpy array -> wire bytes. One zstd context per call: contexts are not thread-safe.

    Compressed float data is byte-plane shuffled first (all first bytes, then all second bytes...,
    as in Blosc/HDF5): sign/exponent bytes of neighbouring activations repeat, and grouping them
    lets zstd find it. Measured on yolov3-tiny activations: fp32+zstd 92% -> 83% of raw size (and
    fp32+lz4 100% -> 89%), fp16+zstd 46% -> 43%, for ~0.3 ms per MB each way.
    """
    if compression == "none":
        return lambda array: array.tobytes()
    if compression == "zstd":
        context = zstandard.ZstdCompressor(level=ZSTD_LEVEL)  # writes the content size in the frame
        compress = context.compress
    else:
        compress = lambda data: lz4.frame.compress(data, store_size=True)  # noqa: E731
    return lambda array: compress(_shuffle(array))


def _shuffle(array: np.ndarray) -> np.ndarray:
    """Elements of ``itemsize`` bytes -> byte planes, shape (itemsize, n) uint8; 1-byte data as is."""
    if array.itemsize == 1:
        return array
    elements = array.reshape(-1).view(np.uint8).reshape(-1, array.itemsize)
    return np.ascontiguousarray(elements.T)


def _unshuffle(raw: bytes, dtype: np.dtype) -> np.ndarray:
    """Inverse of :func:`_shuffle` for 2- and 4-byte ``dtype``: a new, writable 1-D array."""
    planes = np.frombuffer(raw, np.uint8).reshape(dtype.itemsize, -1)
    elements = np.empty((planes.shape[1], dtype.itemsize), np.uint8)
    for byte in range(dtype.itemsize):  # plane by plane: 4x faster than one strided transpose
        elements[:, byte] = planes[byte]
    return elements.view(dtype).reshape(-1)


def _channel_view(values, ndim: int, dtype=None) -> np.ndarray:
    """Per-tensor or per-channel parameters shaped to broadcast over an ndim-array's dim 1."""
    shape = [1] * ndim
    if len(values) > 1:
        shape[1] = len(values)
    return np.asarray(values, dtype).reshape(shape)


def _subtract_zero_point(q: np.ndarray, zero_point: tuple[int, ...]) -> np.ndarray:
    """int8 q -> uint8 (q - zero_point) mod 256, a lossless filter applied before compression.

    Each channel's zero point puts its most frequent value (real 0) at a different code; taking it
    out aligns the channels' distributions so that one entropy table fits them all. Measured on
    yolov3-tiny int8-channel crossings: zstd output 21% -> 19.5% of fp32 (no change per tensor).
    """
    offset = _channel_view(zero_point, q.ndim, np.int16)
    return ((q.astype(np.int16) - offset) & 0xFF).astype(np.uint8)


def payload_size_bytes(records: list[TensorRecord]) -> int:
    """Bytes the records put on the wire: data plus quantization parameters (4 B each), no framing."""
    return sum(len(r.data) + 4 * (len(r.quant_scale) + len(r.quant_zero_point)) for r in records)


# ---------------------------------------------------------------------------------------------
# Decoding (receiving side). Everything received is checked before use; failures: PayloadError.


def decode_tensors(
    records: list[TensorRecord],
    spec: CodecSpec,
    expected: dict[int, tuple[int, ...]],
    max_bytes: int = DEFAULT_MAX_BYTES,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> dict[int, torch.Tensor]:
    """Decode records into tensors ``{layer_index: tensor of shape expected[layer_index]}``.

    ``expected`` (trusted: from the model's cut graph) names every layer that must cross and its
    shape; it bounds every decompressed size. ``max_bytes`` bounds the record data received and the
    data decompressed, each summed over the records. Tensors are checked on the CPU (int8 codes
    are dequantized on the device), and land on ``device`` (default: the CPU) as ``dtype`` (float32
    or float16: the receiving model's).
    """
    if not isinstance(spec, CodecSpec):
        raise PayloadError(f"spec must be a CodecSpec, got {type(spec).__name__}")
    wire_dtype = spec.wire_dtype
    try:
        records = list(records)
    except TypeError as error:
        raise PayloadError(f"records must be a sequence of TensorRecord: {error}") from None
    fields = [record_fields(record, position) for position, record in enumerate(records)]
    layers = [f[0] for f in fields]
    if sorted(layers) != sorted(expected):  # before any decompression work
        duplicates = sorted({layer for layer in layers if layers.count(layer) > 1})
        extra = sorted(set(layers) - set(expected))
        missing = sorted(set(expected) - set(layers))
        raise PayloadError(
            f"tensors for layers {sorted(expected)} expected; "
            f"missing {missing}, not crossing this cut {extra}, sent twice {duplicates}"
        )
    numpy_dtype = _NUMPY_DTYPE[wire_dtype]
    received_bytes = decoded_bytes = 0
    decoded = {}
    for layer_index, shape, record_dtype, scale, zero_point, data in fields:
        where = f"tensor for layer {layer_index}"
        expected_shape = tuple(expected[layer_index])
        if shape != expected_shape:
            raise PayloadError(f"{where}: shape {_fmt(expected_shape)} expected, got {_fmt(shape)}")
        if not all(0 <= size <= max_bytes for size in shape):  # no overflow in the size products
            raise PayloadError(f"{where}: shape {_fmt(shape)} has a dimension outside 0..{max_bytes}")
        if record_dtype != wire_dtype:
            raise PayloadError(f"{where}: dtype {wire_dtype!r} expected for codec {spec}, got {record_dtype!r}")
        _check_quant_params(where, spec, shape, scale, zero_point)
        size_bytes = math.prod(shape) * numpy_dtype.itemsize
        received_bytes += len(data)
        decoded_bytes += size_bytes
        if max(received_bytes, decoded_bytes) > max_bytes:
            raise PayloadError(f"{where}: records exceed the {max_bytes} B limit")
        raw = decompress_exact(where, spec.compression, data, size_bytes)
        tensor = _dequantize(where, raw, spec.compression, numpy_dtype, shape, scale, zero_point, device)
        decoded[layer_index] = tensor.to(dtype=dtype)  # no copy in float32
    return decoded


def record_fields(record, position: int):
    """Normalize one received record's fields to Python types, or raise PayloadError."""
    try:
        layer_index = _as_int(record.layer_index)
        shape = tuple(_as_int(s) for s in record.shape)
        scale = tuple(float(s) for s in record.quant_scale)
        zero_point = tuple(_as_int(z) for z in record.quant_zero_point)
        if not isinstance(record.dtype, str):
            raise TypeError(f"dtype is {type(record.dtype).__name__}")
        data = memoryview(record.data).cast("B")  # bytes, bytearray, array('B'), numpy uint8
    except (AttributeError, TypeError, ValueError, OverflowError) as error:
        raise PayloadError(f"record {position}: malformed fields ({error})") from None
    return layer_index, shape, record.dtype, scale, zero_point, data


def _as_int(value) -> int:
    if type(value) is bool or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{value!r} is not an integer")
    return int(value)


def _fmt(shape: tuple[int, ...]) -> str:
    return "(" + ",".join(str(s) for s in shape) + ")"


def _check_quant_params(where, spec, shape, scale, zero_point) -> None:
    if spec.dtype in ("fp32", "fp16"):
        if scale or zero_point:
            raise PayloadError(f"{where}: quantization parameters sent for float codec {spec}")
        return
    count = shape[1] if spec.dtype == "int8-channel" and len(shape) >= 2 else 1
    if len(scale) != count or len(zero_point) != count:
        raise PayloadError(
            f"{where}: {count} scale/zero point pairs expected for {spec.dtype}, "
            f"got {len(scale)} scales and {len(zero_point)} zero points"
        )
    for channel, (s, z) in enumerate(zip(scale, zero_point)):
        if not (math.isfinite(s) and s > 0):
            raise PayloadError(f"{where}: channel {channel} scale {s} is not a positive finite number")
        if not INT8_MIN <= z <= INT8_MAX:
            raise PayloadError(f"{where}: channel {channel} zero point {z} outside {INT8_MIN}..{INT8_MAX}")
    # Every dequantized value finite, so the data needs no scan: 255 steps of each scale must be.
    with np.errstate(over="ignore"):
        largest = np.asarray(scale, np.float32) * np.float32(INT8_MAX - INT8_MIN)
    if not np.isfinite(largest).all():
        channel = int(np.argmin(np.isfinite(largest)))
        raise PayloadError(f"{where}: channel {channel} scale {scale[channel]} too large: a code "
                           f"{INT8_MAX - INT8_MIN} steps from its zero point overflows float32")


def decompress_exact(where: str, compression: str, data: memoryview, size_bytes: int) -> memoryview | bytes:
    """Exactly ``size_bytes`` decompressed bytes; never allocates more than that (bomb-safe)."""
    if compression == "none":
        if len(data) != size_bytes:
            raise PayloadError(f"{where}: {size_bytes} B expected, got {len(data)} B")
        return data
    try:
        if compression == "zstd":
            # decompress() allocates the frame header's content size: check it before decompressing.
            declared = zstandard.frame_content_size(data)
            if declared != size_bytes:
                raise PayloadError(f"{where}: zstd frame declares {declared} B, {size_bytes} B expected")
            raw = zstandard.ZstdDecompressor().decompress(
                data, max_output_size=size_bytes, allow_extra_data=False
            )
        else:
            decompressor = lz4.frame.LZ4FrameDecompressor()
            raw = decompressor.decompress(data, max_length=size_bytes)
            if not decompressor.eof or decompressor.unused_data:
                raise PayloadError(f"{where}: lz4 frame does not end after {size_bytes} B of output")
    except (zstandard.ZstdError, RuntimeError, ValueError, OverflowError, MemoryError) as error:
        if isinstance(error, PayloadError):
            raise
        raise PayloadError(f"{where}: {compression} data corrupt ({error})") from None
    if len(raw) != size_bytes:
        raise PayloadError(f"{where}: {size_bytes} B expected after {compression}, got {len(raw)} B")
    return raw


def _dequantize(where, raw, compression, numpy_dtype, shape, scale, zero_point, device) -> torch.Tensor:
    """Float32 tensor of ``shape`` on ``device`` from the decompressed wire bytes; must be finite.

    int8 codes travel to the device as they are (a quarter of the float bytes) and are
    dequantized there, with the same float32 arithmetic as on the CPU; they need no scan for NaN
    or infinity, since :func:`_check_quant_params` bounds every scale. The result never aliases
    ``raw`` (the received message).
    """
    if numpy_dtype.kind == "i":
        stored = np.frombuffer(raw, np.int8 if compression == "none" else np.uint8).copy()
        codes = torch.from_numpy(stored).to(device=device).view(shape).to(torch.int16)
        offset = torch.from_numpy(_channel_view(zero_point, len(shape), np.int16)).to(device=device)
        if compression == "none":
            q_minus_zp = codes - offset
        else:  # undo _subtract_zero_point: q is the one int8 congruent to stored + zp (mod 256)
            q_minus_zp = ((codes + offset - INT8_MIN) & 0xFF) + INT8_MIN - offset
        scale_view = torch.from_numpy(_channel_view(scale, len(shape), np.float32)).to(device=device)
        return q_minus_zp.to(torch.float32) * scale_view
    if compression == "none":
        values = np.frombuffer(raw, numpy_dtype).reshape(shape).astype(np.float32)  # always a copy
    else:
        values = _unshuffle(raw, numpy_dtype).reshape(shape).astype(np.float32, copy=False)
    if not _is_finite(values):
        raise PayloadError(f"{where}: contains NaN or infinite values")
    return torch.from_numpy(values).to(device=device)


_JPEG_SOI = b"\xff\xd8\xff"
_JPEG_EOI = b"\xff\xd9"
# Start-of-frame markers (baseline, progressive, lossless, arithmetic); not DHT C4, JPG C8, DAC CC.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_STANDALONE = frozenset(range(0xD0, 0xD8)) | {0x01}  # RSTn, TEM: no length field


def encode_image(image_bgr: np.ndarray, quality: int, tables: str = "standard") -> bytes:
    """JPEG bytes of an ``HxWx3`` uint8 BGR image at ``quality`` (1..100), with the standard
    quantization tables (OpenCV, 4:2:0) or ``tables="dnn"``'s (``l2p_ros.dnn_jpeg``, 4:4:4)."""
    if not (isinstance(image_bgr, np.ndarray) and image_bgr.dtype == np.uint8
            and image_bgr.ndim == 3 and image_bgr.shape[2] == 3):
        raise ValueError(f"HxWx3 uint8 BGR image expected, got {getattr(image_bgr, 'shape', None)} "
                         f"{getattr(image_bgr, 'dtype', type(image_bgr).__name__)}")
    if type(quality) is not int or not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality {quality!r} invalid; allowed: integers 1..100")
    if tables == "dnn":
        return encode_dnn_jpeg(image_bgr, quality)
    if tables != "standard":
        raise ValueError(f"JPEG tables {tables!r} unknown; allowed: {', '.join(JPEG_TABLES)}")
    ok, encoded = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"cv2.imencode failed for a {image_bgr.shape} image")
    return encoded.tobytes()


def _jpeg_size(data: bytes) -> tuple[int, int]:
    """(height, width) declared by a JPEG's start-of-frame header, read without decoding."""
    view = memoryview(data).cast("B")
    if bytes(view[:3]) != _JPEG_SOI:
        raise PayloadError(f"not a JPEG: starts with {bytes(view[:4])!r}, expected {_JPEG_SOI!r}")
    offset = 2
    while offset + 4 <= len(view):
        if view[offset] != 0xFF:
            raise PayloadError(f"JPEG: marker expected at offset {offset}, got byte {view[offset]:#04x}")
        marker = view[offset + 1]
        if marker == 0xFF:  # fill byte before a marker
            offset += 1
            continue
        if marker in _JPEG_STANDALONE:
            offset += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image or start of scan before any frame header
            break
        (length,) = struct.unpack_from(">H", view, offset + 2)
        if length < 2 or offset + 2 + length > len(view):
            raise PayloadError(f"JPEG: segment {marker:#04x} at offset {offset} has bad length {length}")
        if marker in _JPEG_SOF:
            if length < 8:
                raise PayloadError(f"JPEG: frame header at offset {offset} too short ({length} B)")
            height, width = struct.unpack_from(">HH", view, offset + 5)
            return height, width
        offset += 2 + length
    raise PayloadError("JPEG: no frame header (SOF) before the image data")


def decode_image(data: bytes, max_pixels: int = 4096 * 4096) -> np.ndarray:
    """``HxWx3`` uint8 BGR image from JPEG bytes; size checked from the header before decoding."""
    try:
        view = memoryview(data).cast("B")
    except TypeError as error:
        raise PayloadError(f"image payload is not bytes-like: {error}") from None
    height, width = _jpeg_size(view)
    if height == 0 or width == 0 or height * width > max_pixels:
        raise PayloadError(f"JPEG declares {width}x{height} pixels; allowed 1..{max_pixels} pixels")
    # libjpeg "decodes" a truncated file into a grey-padded image with only a warning.
    if bytes(view[-2:]) != _JPEG_EOI:
        raise PayloadError("JPEG truncated: no end-of-image marker")
    # The pixels as sent: an EXIF orientation tag must not rotate them (nor swap height and width).
    image = cv2.imdecode(np.frombuffer(view, np.uint8), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None:
        raise PayloadError(f"JPEG of {len(view)} B failed to decode")
    if image.shape[:2] != (height, width):
        raise PayloadError(f"JPEG decoded to {image.shape[1]}x{image.shape[0]}, header said {width}x{height}")
    return image
