"""Tests of l2p_ros.codec: round trips, error bounds, and rejection of every malformed payload."""
from __future__ import annotations

import array
import dataclasses
import io
import math
import struct

import cv2
import lz4.frame
import numpy as np
import pytest
import torch
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from l2p_ros.assets import AssetError, asset_path
from l2p_ros.codec import (
    CODECS,
    CodecSpec,
    PayloadError,
    TensorRecord,
    decode_image,
    decode_tensors,
    encode_image,
    encode_tensors,
    payload_size_bytes,
)

MODEL_ID = "yolov3-tiny-416"
CUT = 8
TENSOR_CODECS = [name for name in CODECS if not name.startswith("jpeg")]
ALL_TENSOR_SPECS = [
    CodecSpec(dtype, compression)
    for dtype in ("fp32", "fp16", "int8-tensor", "int8-channel")
    for compression in ("none", "lz4", "zstd")
]


def leaky_activations(shape, seed=0) -> torch.Tensor:
    """Post-leaky-ReLU-like values: positives up to ~10, negatives 10x smaller, spatially smooth."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=generator) * 3
    x = x + torch.roll(x, 1, dims=-1)  # some spatial correlation, as in real feature maps
    return torch.where(x > 0, x, 0.1 * x)


def crossing(seed=0) -> dict[int, torch.Tensor]:
    """Two small crossing tensors, as at a cut with a skip connection."""
    return {8: leaky_activations((1, 16, 6, 6), seed), 4: leaky_activations((1, 8, 12, 12), seed + 1)}


def shapes(tensors: dict[int, torch.Tensor]) -> dict[int, tuple[int, ...]]:
    return {layer: tuple(t.shape) for layer, t in tensors.items()}


def round_trip(tensors, spec):
    return decode_tensors(encode_tensors(tensors, spec), spec, shapes(tensors))


def replace(record: TensorRecord, **changes) -> TensorRecord:
    return TensorRecord(**{**record.__dict__, **changes})


# --- CodecSpec -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CODECS) + ["fp16+lz4", "int8-tensor", "jpeg-q1", "jpeg-q100", "jpeg-dnn-q50"])
def test_spec_name_round_trip(name):
    assert str(CodecSpec.parse(name)) == name


def test_spec_parse_fields_and_defaults():
    assert CodecSpec.parse("int8-channel+zstd") == CodecSpec("int8-channel", "zstd")
    assert CodecSpec.parse("jpeg") == CodecSpec("jpeg", "none", 75)
    assert CodecSpec.parse("jpeg-q90").quality == 90
    assert CodecSpec.parse("fp32+none") == CodecSpec()
    assert CodecSpec.parse("jpeg-dnn-q85") == CodecSpec("jpeg", quality=85, tables="dnn")
    assert CodecSpec.parse("jpeg-q85").tables == "standard"


@pytest.mark.parametrize(
    "name, words",
    [
        ("fp8", ["'fp8'", "fp32", "int8-channel"]),
        ("fp16+gzip", ["'gzip'", "lz4", "zstd"]),
        ("jpeg+zstd", ["jpeg", "'zstd'"]),
        ("jpeg-q0", ["quality 0", "1..100"]),
        ("jpeg-q101", ["quality 101"]),
        ("jpeg-qx", ["'x'"]),
        ("jpeg-dnn-q0", ["quality 0", "1..100"]),
        ("jpeg-full-dnn-q85", ["'jpeg-full-dnn-q85'", "jpeg"]),
        ("jpeg-dnn", ["'jpeg-dnn'"]),
        ("", ["''"]),
    ],
)
def test_spec_invalid_names_say_what_is_allowed(name, words):
    with pytest.raises(PayloadError) as error:
        CodecSpec.parse(name)
    for word in words:
        assert word in str(error.value)


def test_spec_quality_only_for_jpeg():
    with pytest.raises(PayloadError, match="jpeg only"):
        CodecSpec("fp16", quality=90)


def test_spec_detector_tables_only_for_jpeg_at_network_resolution():
    for changes in ({"dtype": "fp16"}, {"dtype": "jpeg", "full_size": True}):
        with pytest.raises(PayloadError, match="network resolution only"):
            CodecSpec(**changes, tables="dnn")
    with pytest.raises(PayloadError, match="'huffman' unknown; allowed: standard, dnn"):
        CodecSpec("jpeg", tables="huffman")


# --- Round trips and error bounds ------------------------------------------------------------


@pytest.mark.parametrize("compression", ["none", "lz4", "zstd"])
def test_fp32_round_trip_is_bit_exact(compression):
    x = leaky_activations((1, 32, 13, 13))
    x[0, 0, 0, :4] = torch.tensor([-0.0, 1e-45, 3.4e38, -3.4e38])  # signed zero, subnormal, extremes
    tensors = {3: x, 7: leaky_activations((1, 4, 26, 26), 1)}
    decoded = round_trip(tensors, CodecSpec("fp32", compression))
    for layer, tensor in tensors.items():
        assert decoded[layer].dtype == torch.float32
        assert decoded[layer].numpy().tobytes() == tensor.numpy().tobytes()


@pytest.mark.parametrize("spec", ALL_TENSOR_SPECS, ids=str)
def test_every_codec_decodes_to_expected_float32_shapes(spec):
    tensors = crossing()
    decoded = round_trip(tensors, spec)
    assert sorted(decoded) == sorted(tensors)
    for layer, tensor in tensors.items():
        assert decoded[layer].dtype == torch.float32
        assert decoded[layer].shape == tensor.shape


@pytest.mark.parametrize("compression", ["none", "zstd"])
def test_fp16_error_is_within_half_precision(compression):
    x = leaky_activations((1, 32, 13, 13))
    decoded = round_trip({0: x}, CodecSpec("fp16", compression))[0]
    # fp16 keeps 11 significant bits: relative error <= 2^-11, plus the subnormal step near 0.
    assert torch.all((decoded - x).abs() <= x.abs() * 2**-11 + 2**-25)


def test_fp16_saturates_beyond_its_range():
    x = torch.tensor([[1e6, -1e6, 70000.0, 1.0]])
    decoded = round_trip({0: x}, CodecSpec("fp16"))[0]
    assert decoded.tolist() == [[65504.0, -65504.0, 65504.0, 1.0]]


def int8_step(x: torch.Tensor) -> float:
    """Quantization step of the asymmetric grid over [min(x, 0), max(x, 0)]."""
    return (max(x.max().item(), 0.0) - min(x.min().item(), 0.0)) / 255


@pytest.mark.parametrize("dtype", ["int8-tensor", "int8-channel"])
@pytest.mark.parametrize("compression", ["none", "lz4", "zstd"])
def test_int8_error_is_at_most_half_a_step(dtype, compression):
    x = leaky_activations((1, 16, 13, 13))
    decoded = round_trip({0: x}, CodecSpec(dtype, compression))[0]
    if dtype == "int8-tensor":
        assert (decoded - x).abs().max().item() <= 0.5 * int8_step(x) * (1 + 1e-4)
    else:
        for channel in range(x.shape[1]):
            error = (decoded[:, channel] - x[:, channel]).abs().max().item()
            assert error <= 0.5 * int8_step(x[:, channel]) * (1 + 1e-4)


@pytest.mark.parametrize("dtype", ["fp16", "int8-tensor", "int8-channel"])
def test_compression_is_lossless_on_top_of_the_dtype(dtype):
    """The pre-compression filters (byte planes, zero-point offsets) invert exactly."""
    x = leaky_activations((2, 16, 7, 5)) * torch.logspace(-2, 2, 16).view(1, 16, 1, 1)
    plain = round_trip({0: x}, CodecSpec(dtype))[0]
    for compression in ("lz4", "zstd"):
        assert torch.equal(round_trip({0: x}, CodecSpec(dtype, compression))[0], plain)


@pytest.mark.parametrize("dtype", ["int8-tensor", "int8-channel"])
def test_int8_decodes_to_its_codes_times_scale_rounded_once(dtype):
    """The receiver computes (q - zero point) * scale in float32, whatever device it runs it on."""
    x = leaky_activations((2, 16, 7, 5)) * torch.logspace(-2, 2, 16).view(1, 16, 1, 1)
    (record,) = encode_tensors({0: x}, CodecSpec(dtype))
    view = (1, -1, 1, 1)
    codes = np.frombuffer(record.data, np.int8).reshape(x.shape).astype(np.int32)
    zero_point = np.array(record.quant_zero_point).reshape(view)
    want = (codes - zero_point).astype(np.float32) * np.array(record.quant_scale, np.float32).reshape(view)
    got = decode_tensors([record], CodecSpec(dtype), {0: tuple(x.shape)})[0]
    assert got.dtype == torch.float32 and np.array_equal(got.numpy(), want)


def test_int8_records_carry_one_or_per_channel_parameters():
    x = leaky_activations((1, 16, 4, 4))
    (per_tensor,) = encode_tensors({0: x}, CodecSpec("int8-tensor"))
    (per_channel,) = encode_tensors({0: x}, CodecSpec("int8-channel"))
    assert len(per_tensor.quant_scale) == len(per_tensor.quant_zero_point) == 1
    assert len(per_channel.quant_scale) == len(per_channel.quant_zero_point) == 16
    assert per_channel.dtype == per_tensor.dtype == "int8"
    assert len(per_channel.data) == x.numel()


def test_per_channel_beats_per_tensor_on_channels_of_very_different_range():
    x = leaky_activations((1, 8, 13, 13))
    x = x * torch.logspace(-3, 2, 8).view(1, 8, 1, 1)  # channel ranges from ~0.01 to ~1000
    per_tensor = round_trip({0: x}, CodecSpec("int8-tensor"))[0]
    per_channel = round_trip({0: x}, CodecSpec("int8-channel"))[0]
    for channel in range(8):
        e_tensor = (per_tensor[:, channel] - x[:, channel]).abs().max()
        e_channel = (per_channel[:, channel] - x[:, channel]).abs().max()
        assert e_channel <= e_tensor
    assert ((per_channel - x) ** 2).mean() < ((per_tensor - x) ** 2).mean()
    # The smallest channel is lost to per-tensor rounding but kept per channel.
    small = x[:, 0]
    assert (per_channel[:, 0] - small).abs().max() < 0.01 * small.abs().max()


@pytest.mark.parametrize("spec", ALL_TENSOR_SPECS, ids=str)
@pytest.mark.parametrize("value", [0.0, 2.5, -7.0])
def test_constant_and_all_zero_tensors(spec, value):
    x = torch.full((1, 4, 5, 5), value)
    x[0, 1] = 0.0  # an all-zero channel next to constant ones
    records = encode_tensors({0: x}, spec)
    assert all(math.isfinite(s) and s > 0 for s in records[0].quant_scale)
    decoded = decode_tensors(records, spec, {0: (1, 4, 5, 5)})[0]
    assert torch.equal(decoded[0, 1], torch.zeros(5, 5))  # zero is exact in every codec
    assert torch.allclose(decoded, x, rtol=1e-3, atol=0)


def test_encode_accepts_other_float_dtypes_and_layouts():
    x = leaky_activations((1, 8, 6, 6))
    channels_last = x.to(memory_format=torch.channels_last)
    decoded = round_trip({0: channels_last, 1: x.double()}, CodecSpec("fp32", "zstd"))
    assert torch.equal(decoded[0], x) and torch.equal(decoded[1], x)


def test_records_are_sorted_and_sizes_accounted():
    tensors = crossing()
    records = encode_tensors(tensors, CodecSpec("int8-channel", "zstd"))
    assert [r.layer_index for r in records] == [4, 8]
    data_bytes = sum(len(r.data) for r in records)
    assert payload_size_bytes(records) == data_bytes + 8 * (8 + 16)


def test_int8_zstd_is_much_smaller_than_fp32():
    tensors = {0: leaky_activations((1, 64, 26, 26))}
    fp32 = payload_size_bytes(encode_tensors(tensors, CodecSpec("fp32")))
    int8 = payload_size_bytes(encode_tensors(tensors, CodecSpec("int8-tensor", "zstd")))
    assert int8 <= 0.25 * fp32  # < 1/4 from int8 alone, zstd adds the rest (real data: ~15%)


def test_encoding_jpeg_spec_as_tensors_is_refused():
    with pytest.raises(PayloadError, match="image"):
        encode_tensors(crossing(), CodecSpec("jpeg"))


def test_records_with_ros_field_types_decode():
    """Fields copied from an rclpy CrossingTensor arrive as array.array, not tuples/bytes."""
    tensors = crossing()
    records = encode_tensors(tensors, CodecSpec("int8-channel", "lz4"))
    as_ros = [
        TensorRecord(np.int32(r.layer_index), array.array("I", r.shape), r.dtype, array.array("f", r.quant_scale),
                     array.array("i", r.quant_zero_point), array.array("B", r.data))
        for r in records
    ]
    decoded = decode_tensors(as_ros, CodecSpec("int8-channel", "lz4"), shapes(tensors))
    expected = decode_tensors(records, CodecSpec("int8-channel", "lz4"), shapes(tensors))
    assert all(torch.equal(decoded[layer], expected[layer]) for layer in tensors)


@pytest.mark.parametrize("spec", [CodecSpec("fp32"), CodecSpec("fp16"), CodecSpec("int8-tensor")], ids=str)
def test_decoded_tensors_do_not_alias_the_received_buffer(spec):
    x = leaky_activations((1, 2, 3, 3))
    (record,) = encode_tensors({0: x}, spec)
    buffer = bytearray(record.data)
    decoded = decode_tensors([replace(record, data=buffer)], spec, {0: (1, 2, 3, 3)})[0]
    before = decoded.clone()
    buffer[:] = bytes(len(buffer))
    assert torch.equal(decoded, before)
    decoded.add_(1.0)  # writable: the tail may work in place


# --- Rejection of malformed records ----------------------------------------------------------


def int8_records():
    tensors = crossing()
    return encode_tensors(tensors, CodecSpec("int8-channel", "zstd")), shapes(tensors)


def test_shape_mismatch_names_layer_and_shapes():
    records, expected = int8_records()
    expected[8] = (1, 16, 6, 5)
    with pytest.raises(PayloadError, match=r"tensor for layer 8: shape \(1,16,6,5\) expected, got \(1,16,6,6\)"):
        decode_tensors(records, CodecSpec("int8-channel", "zstd"), expected)


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda rs: rs[:1], r"missing \[8\]"),
        (lambda rs: rs + [replace(rs[0], layer_index=9)], r"not crossing this cut \[9\]"),
        (lambda rs: rs + rs[:1], r"sent twice \[4\]"),
        (lambda rs: [], r"missing \[4, 8\]"),
    ],
    ids=["missing", "extra", "duplicate", "empty"],
)
def test_layer_set_must_match_the_cut(mutate, match):
    records, expected = int8_records()
    with pytest.raises(PayloadError, match=match):
        decode_tensors(mutate(records), CodecSpec("int8-channel", "zstd"), expected)


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"dtype": "float32"}, "dtype 'int8' expected"),
        ({"quant_scale": (0.1,)}, "16 scale/zero point pairs expected"),
        ({"quant_zero_point": (0,) * 15}, "16 scale/zero point pairs expected"),
        ({"quant_scale": (float("nan"),) * 16}, "scale nan"),
        ({"quant_scale": (float("inf"),) * 16}, "scale inf"),
        ({"quant_scale": (0.0,) * 16}, "scale 0.0"),
        ({"quant_scale": (-0.1,) * 16}, "scale -0.1"),
        ({"quant_scale": (3e38,) * 16}, "scale 3e\\+38 too large"),  # finite, but 255 steps overflow
        ({"quant_scale": (1e39,) * 16}, "scale 1e\\+39 too large"),  # finite, but not as float32
        ({"quant_zero_point": (128,) * 16}, "zero point 128 outside"),
        ({"quant_zero_point": (-129,) * 16}, "zero point -129 outside"),
        ({"data": b""}, "zstd data corrupt"),
        ({"data": b"\x00" * 100}, "zstd data corrupt"),
        ({"layer_index": "8"}, "record 1: malformed"),
        ({"shape": (1, 16, 6.0, 6)}, "record 1: malformed"),
        ({"data": 42}, "record 1: malformed"),
    ],
)
def test_bad_record_fields_are_rejected(changes, match):
    records, expected = int8_records()
    records[1] = replace(records[1], **changes)
    with pytest.raises(PayloadError, match=match):
        decode_tensors(records, CodecSpec("int8-channel", "zstd"), expected)


def test_float_codecs_reject_quantization_parameters():
    tensors = crossing()
    records = encode_tensors(tensors, CodecSpec("fp16"))
    records[0] = replace(records[0], quant_scale=(1.0,), quant_zero_point=(0,))
    with pytest.raises(PayloadError, match="quantization parameters sent for float codec"):
        decode_tensors(records, CodecSpec("fp16"), shapes(tensors))


@pytest.mark.parametrize("delta", [-1, 1, -4])
def test_uncompressed_data_length_must_match_shape(delta):
    tensors = crossing()
    records = encode_tensors(tensors, CodecSpec("fp32"))
    data = records[0].data
    records[0] = replace(records[0], data=data[:delta] if delta < 0 else data + b"\x00" * delta)
    with pytest.raises(PayloadError, match=r"tensor for layer 4: 4608 B expected, got"):
        decode_tensors(records, CodecSpec("fp32"), shapes(tensors))


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_values_are_rejected_at_the_receiver(value):
    x = leaky_activations((1, 4, 3, 3))
    x[0, 2, 1, 1] = value
    for spec in (CodecSpec("fp32"), CodecSpec("fp16", "lz4"), CodecSpec("int8-channel")):
        with pytest.raises(PayloadError, match="layer 0"):
            round_trip({0: x}, spec)


def test_decoding_with_the_jpeg_codec_is_rejected():
    records, expected = int8_records()
    with pytest.raises(PayloadError, match="image, not tensors"):
        decode_tensors(records, CodecSpec("jpeg"), expected)


def test_max_bytes_caps_the_received_data():
    tensors = crossing()
    records = encode_tensors(tensors, CodecSpec("fp32"))
    with pytest.raises(PayloadError, match="1000 B limit"):
        decode_tensors(records, CodecSpec("fp32"), shapes(tensors), max_bytes=1000)


# --- Decompression bombs ---------------------------------------------------------------------

EXPECTED_SMALL = {0: (1, 4, 8, 8)}  # 256 int8 bytes


def zstd_stream(size_bytes: int) -> bytes:
    """A zstd frame of ``size_bytes`` zeros that does not state its size (tiny on the wire)."""
    compressor = zstandard.ZstdCompressor(level=1).compressobj()
    chunk = b"\x00" * (1 << 20)
    parts = [compressor.compress(chunk) for _ in range(size_bytes // len(chunk))]
    return b"".join(parts) + compressor.flush()


def zstd_with_declared_size(payload: bytes, declared: int) -> bytes:
    """A zstd frame of ``payload`` whose header claims ``declared`` bytes (4-byte size field)."""
    frame = bytearray(zstandard.ZstdCompressor(level=1).compress(payload))
    descriptor = frame[4]
    assert descriptor >> 6 == 2, "payload size must give a 4-byte content size field"
    offset = 5 + (0 if descriptor & 0x20 else 1)  # window descriptor unless single segment
    struct.pack_into("<I", frame, offset, declared)
    return bytes(frame)


def bomb_record(data: bytes) -> list[TensorRecord]:
    return [TensorRecord(0, (1, 4, 8, 8), "int8", (0.1,), (0,), data)]


@pytest.mark.parametrize(
    "compression, data, match",
    [
        ("zstd", zstd_stream(64 << 20), "declares -1 B"),  # 64 MiB of zeros in ~2 KB, size unstated
        ("zstd", zstandard.ZstdCompressor().compress(b"\x00" * (1 << 20)), "declares 1048576 B"),
        ("zstd", zstd_with_declared_size(b"\x01" * 70_000, 256), "zstd data corrupt"),  # lies
        ("zstd", zstd_with_declared_size(b"\x01" * 70_000, 0xFFFFFFFF), "declares 4294967295 B"),
        ("lz4", lz4.frame.compress(b"\x00" * (16 << 20)), "does not end after 256 B"),
        ("lz4", lz4.frame.compress(b"\x00" * (16 << 20), store_size=False), "does not end after 256 B"),
        ("lz4", lz4.frame.compress(b"\x00" * 255), "256 B expected after lz4, got 255 B"),
        ("lz4", lz4.frame.compress(b"\x00" * 256) + b"junk", "does not end"),
    ],
    ids=["zstd-unsized", "zstd-1MiB", "zstd-lying-header", "zstd-4GiB-claim", "lz4-16MiB",
         "lz4-unsized", "lz4-short", "lz4-trailing"],
)
def test_decompression_bombs_and_lies_are_rejected(compression, data, match):
    assert len(data) < 200_000
    with pytest.raises(PayloadError, match=match):
        decode_tensors(bomb_record(data), CodecSpec("int8-tensor", compression), EXPECTED_SMALL)


# --- Fuzzing ---------------------------------------------------------------------------------

FUZZ_TENSORS = {8: leaky_activations((1, 6, 5, 5)), 4: leaky_activations((1, 3, 10, 10), 1)}
FUZZ_EXPECTED = shapes(FUZZ_TENSORS)
FUZZ_SPECS = [CodecSpec(*pair) for pair in [("fp32", "none"), ("fp16", "lz4"), ("int8-channel", "zstd"),
                                            ("int8-tensor", "lz4"), ("fp32", "zstd"), ("int8-channel", "none")]]
FUZZ_RECORDS = [(encode_tensors(FUZZ_TENSORS, spec), spec) for spec in FUZZ_SPECS]


def decode_records(records: list[TensorRecord], spec: CodecSpec) -> None:
    """Decode possibly corrupted records: the expected tensors or PayloadError, nothing else."""
    try:
        decoded = decode_tensors(records, spec, FUZZ_EXPECTED)
    except PayloadError:
        return
    assert {layer: tuple(t.shape) for layer, t in decoded.items()} == FUZZ_EXPECTED
    assert all(t.dtype == torch.float32 and torch.isfinite(t).all() for t in decoded.values())


def mutate_bytes(draw, data: bytes) -> bytes:
    data = bytearray(data)
    randoms = draw(st.randoms(use_true_random=False))  # uniform positions over the data
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        position = randoms.randrange(max(len(data), 1))
        if kind == "flip" and data:
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and data:
            data[position] = draw(st.sampled_from([0x00, 0xFF, 0x7F, 0x80, draw(st.integers(0, 255))]))
        elif kind == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[position : position + draw(st.integers(1, 8))]
        else:
            del data[position:]
    return bytes(data)


@st.composite
def mutated_records(draw):
    """Valid records of one codec with one record's data, quantization parameters or shape corrupted,
    as a received FeatureMap could carry them."""
    records, spec = draw(st.sampled_from(FUZZ_RECORDS))
    records = list(records)
    i = draw(st.integers(0, len(records) - 1))
    record = records[i]
    part = draw(st.sampled_from(["data", "data", "data", "scale", "zero_point", "shape"]))
    if part == "data":
        record = dataclasses.replace(record, data=mutate_bytes(draw, record.data))
    elif part == "scale" and record.quant_scale:
        scale = list(record.quant_scale)
        scale[draw(st.integers(0, len(scale) - 1))] = draw(st.floats(width=32))
        record = dataclasses.replace(record, quant_scale=tuple(scale))
    elif part == "zero_point" and record.quant_zero_point:
        zero_point = list(record.quant_zero_point)
        zero_point[draw(st.integers(0, len(zero_point) - 1))] = draw(st.integers(-2**31, 2**31 - 1))
        record = dataclasses.replace(record, quant_zero_point=tuple(zero_point))
    else:
        shape = list(record.shape)
        shape[draw(st.integers(0, len(shape) - 1))] = draw(st.integers(0, 64))
        record = dataclasses.replace(record, shape=tuple(shape))
    records[i] = record
    return records, spec


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_records())
def test_fuzz_mutated_payloads_decode_or_raise_payload_error(case):
    decode_records(*case)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64), st.sampled_from(FUZZ_RECORDS), st.integers(0, 16))
def test_fuzz_garbage_after_a_valid_data_prefix(tail, case, prefix_bytes):
    records, spec = case
    garbled = [dataclasses.replace(records[0], data=records[0].data[:prefix_bytes] + tail), *records[1:]]
    decode_records(garbled, spec)


@settings(max_examples=200, deadline=None)
@given(
    layer=st.integers(-2**31, 2**31 - 1),
    shape=st.lists(st.integers(0, 2**32 - 1), max_size=5).map(tuple),
    dtype=st.sampled_from(["float32", "float16", "int8", "", "int16"]),
    scale=st.lists(st.floats(width=32), max_size=4).map(tuple),
    zero_point=st.lists(st.integers(-2**31, 2**31 - 1), max_size=4).map(tuple),
    data=st.binary(max_size=64),
    spec=st.sampled_from(ALL_TENSOR_SPECS),
    expected_shape=st.sampled_from(["same", "other", "missing"]),
)
def test_fuzz_arbitrary_records_decode_or_raise_payload_error(
    layer, shape, dtype, scale, zero_point, data, spec, expected_shape
):
    record = TensorRecord(layer, shape, dtype, scale, zero_point, data)
    expected = {layer: shape if expected_shape == "same" else (1, 2, 3, 4)}
    if expected_shape == "missing":
        expected[layer ^ 1] = (1, 2)
    try:
        decoded = decode_tensors([record], spec, expected, max_bytes=1 << 20)
    except PayloadError:
        return
    assert decoded[layer].shape == shape  # only a consistent record (e.g. empty tensor) gets here


# --- Images ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    try:
        path = asset_path("messi5.jpg")
    except AssetError as error:
        pytest.skip(str(error))
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None and image.shape[2] == 3
    return image


def test_image_round_trip_of_a_real_frame(frame):
    data = encode_image(frame, 90)
    assert data[:3] == b"\xff\xd8\xff" and len(data) < frame.nbytes / 5
    decoded = decode_image(data)
    assert decoded.shape == frame.shape and decoded.dtype == np.uint8
    assert np.abs(decoded.astype(np.int16) - frame).mean() < 3.0
    assert len(encode_image(frame, 30)) < len(data)


def test_detector_tables_are_in_the_file_and_any_decoder_reads_them(frame):
    """jpeg-dnn: 4:4:4 with the standard tables' square root (l2p_ros.dnn_jpeg), which the file
    carries; cv2 decodes it like any JPEG."""
    from PIL import Image

    from l2p_ros.dnn_jpeg import STANDARD_LUMA, dnn_tables

    data = encode_image(frame, 85, "dnn")
    with Image.open(io.BytesIO(data)) as image:
        assert [(h, v) for _, h, v, _ in image.layer] == [(1, 1)] * 3  # 4:4:4: no chroma subsampling
        luma, chroma = dnn_tables(85)
        assert sorted(image.quantization[0]) == sorted(luma) and sorted(image.quantization[1]) == sorted(chroma)
    # Flatter than the standard table: its steps span far less than the standard's 12x.
    assert max(luma) / min(luma) < 0.5 * STANDARD_LUMA.max() / STANDARD_LUMA.min()
    decoded = decode_image(data)
    assert decoded.shape == frame.shape and np.abs(decoded.astype(np.int16) - frame).mean() < 3.0
    assert len(encode_image(frame, 70, "dnn")) < len(data)
    with pytest.raises(ValueError, match="'flat' unknown"):
        encode_image(frame, 85, "flat")


def test_image_rejects_non_jpeg_bytes(frame):
    png = cv2.imencode(".png", frame)[1].tobytes()
    for data in (png, b"", b"\xff\xd8", b"hello world", bytes(1000)):
        with pytest.raises(PayloadError):
            decode_image(data)


def test_image_rejects_truncated_jpeg(frame):
    data = encode_image(frame, 75)
    for length in (len(data) // 2, len(data) - 1, 200, 4):
        with pytest.raises(PayloadError):
            decode_image(data[:length])


def sof_offset(data: bytes) -> int:
    offset = 2
    while data[offset + 1] not in (0xC0, 0xC2):
        offset += 2 + struct.unpack_from(">H", data, offset + 2)[0]
    return offset


@pytest.mark.parametrize(
    "height, width, max_pixels, match",
    [(65535, 65535, 4096 * 4096, "65535x65535"), (0, 640, 4096 * 4096, "640x0"), (480, 640, 1000, "1..1000")],
)
def test_image_checks_declared_size_before_decoding(frame, height, width, max_pixels, match):
    data = bytearray(encode_image(frame, 75))
    struct.pack_into(">HH", data, sof_offset(data) + 5, height, width)
    with pytest.raises(PayloadError, match=match):
        decode_image(bytes(data), max_pixels=max_pixels)


SMALL_JPEG = encode_image(np.random.default_rng(0).integers(0, 255, (24, 32, 3), dtype=np.uint8), 75)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(SMALL_JPEG) - 1), st.integers(0, 255)), min_size=1, max_size=4))
def test_fuzz_mutated_jpeg_decodes_or_raises_payload_error(changes):
    data = bytearray(SMALL_JPEG)
    for position, value in changes:
        data[position] = value
    try:
        image = decode_image(bytes(data))
    except PayloadError:
        return
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3


@pytest.mark.parametrize(
    "image, quality",
    [(np.zeros((4, 4), np.uint8), 75), (np.zeros((4, 4, 3), np.float32), 75), (np.zeros((4, 4, 3), np.uint8), 0)],
)
def test_encode_image_rejects_bad_input(image, quality):
    with pytest.raises(ValueError):
        encode_image(image, quality)
