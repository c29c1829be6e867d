"""JPEG for a detector rather than an eye: ``jpeg-dnn-qN``, the image at network resolution in
4:4:4 with quantization tables flatter than the standard's.

The standard tables (ITU-T T.81 Annex K, which every JPEG quality setting scales) follow human
contrast sensitivity: the highest luma frequencies of an 8x8 block are quantized up to 12x more
coarsely than the lowest. A detector looking at the image at its own input size uses exactly the
fine edges of small objects, so these tables are the standard ones' square root at the same mean
step (the idea of DeepN-JPEG, Liu et al. 2018: tables shaped by what the network is sensitive
to; this is its simplest form: tables derived from yolov3-tiny's own measured sensitivity,
bench/bench_jpeg_sensitivity.py, did no better), in 4:4:4 (4:2:0 would halve the colour
detail the network sees), chroma 15 quality steps below luma, Huffman tables optimized.
Measured (docs/benchmarks.md, "Quantization tables for a detector"): at q85 on vtest 96.3% of
the camera-size q75 offload's detections at 0.39x its bytes, where the standard 4:2:0 q75 keeps
92.3% at 0.36x. Any JPEG decoder reads the tables from the file: only the edge differs.

Pillow encodes it because OpenCV cannot set quantization tables.
"""
from __future__ import annotations

import io

import numpy as np

# ITU-T T.81 Annex K, tables K.1 (luminance) and K.2 (chrominance), row by row.
STANDARD_LUMA = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99], dtype=float)
STANDARD_CHROMA = np.array([
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99] + [99] * 32, dtype=float)
CHROMA_QUALITY_BELOW_LUMA = 15
SHAPE_EXPONENT = 0.5  # the square root of the standard tables


def scaled_table(table: np.ndarray, quality: int, exponent: float = 1.0) -> list[int]:
    """``table`` raised to ``exponent`` at the same mean step (below 1: flatter, the high
    frequencies kept relatively finer and the lowest coarser), then scaled to ``quality`` (1..100)
    as libjpeg scales its tables; steps 1..255."""
    shaped = table ** exponent * (table.mean() / (table ** exponent).mean())
    scale = 5000 / quality if quality < 50 else 200 - 2 * quality
    return np.clip(np.floor((shaped * scale + 50) / 100), 1, 255).astype(int).tolist()


def dnn_tables(quality: int) -> tuple[list[int], list[int]]:
    """The luma and chroma quantization tables of ``jpeg-dnn-q{quality}``."""
    return (scaled_table(STANDARD_LUMA, quality, SHAPE_EXPONENT),
            scaled_table(STANDARD_CHROMA, max(1, quality - CHROMA_QUALITY_BELOW_LUMA), SHAPE_EXPONENT))


def encode_jpeg_tables(image_bgr: np.ndarray, luma: list[int], chroma: list[int]) -> bytes:
    """4:4:4 JPEG bytes of an ``HxWx3`` uint8 BGR image with these 64-step quantization tables
    (natural order) and optimized Huffman tables."""
    from PIL import Image  # only an edge that sends jpeg-dnn needs Pillow loaded

    height, width = image_bgr.shape[:2]
    # Pillow swaps BGR to RGB while reading the buffer: a third faster than a numpy copy first.
    image = Image.frombuffer("RGB", (width, height), np.ascontiguousarray(image_bgr), "raw", "BGR", 0, 1)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", qtables=[luma, chroma], subsampling=0, optimize=True)
    return buffer.getvalue()


def encode_dnn_jpeg(image_bgr: np.ndarray, quality: int) -> bytes:
    """``jpeg-dnn-q{quality}``: :func:`encode_jpeg_tables` with :func:`dnn_tables`."""
    return encode_jpeg_tables(image_bgr, *dnn_tables(quality))
