"""Image offload at network resolution against the camera-size image, on real frames, yolov3-tiny.

    python bench/bench_image_offload.py --frames-per-clip 20 --threads 2

For JPEG qualities 30..95 (``jpeg-full-qN``, ``jpeg-qN`` and ``jpeg-dnn-qN``: the network-resolution
image with a detector's quantization tables), on frames of each clip at their own size: bytes on
the wire, the edge's encode ms (network resolution: its resize included), the receiver's ms to
the network input (decode, then the letterbox's placement only, or decode + the whole letterbox), and detections
matched (same class, IoU >= 0.5) against the full model on the camera frame and against the
camera-size offload at the same quality; for each camera-size row also the share of its
detections the exact letterbox (lossless network resolution) reproduces: the most any
network-resolution codec can reach on that measure. Target (issue 9): at q75, network resolution is at most
0.4x today's bytes on vtest with >= 97% of the camera-size offload's detections matched.
Writes bench/results/image_offload_yolov3-tiny_416.json and docs/image_offload.png; with
``--compare FAMILY`` (other encoders of the network-resolution image, comparison only: ``webp``,
``jpeg444``, ``qtables``, ``sensitivity`` (tables from bench_jpeg_sensitivity.py), ``scale`` (the
image sent larger than network resolution, resized again after decoding), ``modern``
(JPEG XL and AVIF; needs ``pip install imagecodecs``) or ``target`` (the default and jpeg-dnn
around q85, for every frame with ``--frames-per-clip 800``)) bench/results/image_offload_FAMILY_yolov3-tiny_416.json.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_jpeg_sensitivity import RESULT as SENSITIVITY_RESULT  # noqa: E402
from common import RESULTS_DIR, save  # noqa: E402

from l2p_ros import codec  # noqa: E402
from l2p_ros.assets import asset_path  # noqa: E402
from l2p_ros.dnn_jpeg import STANDARD_CHROMA, STANDARD_LUMA, encode_dnn_jpeg, encode_jpeg_tables, scaled_table  # noqa: E402
from l2p_ros.model.darknet import load_model  # noqa: E402
from l2p_ros.model.matching import match_detections  # noqa: E402
from l2p_ros.model.postprocess import fitted_size, letterbox_info, load_class_names, place_in_input, resize_to_input  # noqa: E402
from l2p_ros.sources import read_video, video_frame_count  # noqa: E402
from l2p_ros.split import SplitDetector  # noqa: E402

QUALITIES = (30, 40, 50, 60, 75, 85, 95)


def cv2_encoder(extension: str, parameters: tuple):
    """image BGR -> the bytes cv2 encodes it to as ``extension`` with ``parameters``."""
    return lambda image: cv2.imencode(extension, image, list(parameters))[1].tobytes()


def cv2_decode(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


def jpeg_tables_encoder(luma: list[int], chroma: list[int]):
    """image BGR -> 4:4:4 JPEG bytes with these quantization tables (Pillow; as jpeg-dnn-qN's)."""
    return lambda image: encode_jpeg_tables(image, luma, chroma)


# Other encoders of the network-resolution image, for comparison (the jpeg-dnn rows are the
# product's encoder, the others not product codecs), measured against the camera-size JPEG q75
# offload, the target's reference: WebP; JPEG without chroma subsampling (4:4:4: at network resolution 4:2:0 halves the colour detail the network sees,
# where the camera-size image's halved colour is still about the network's size), Huffman tables
# optimized, chroma at its own quality (luma quality minus 15) or the luma's; and 4:4:4 JPEG with
# quantization tables flatter than the standard's (a detector, unlike an eye, uses the fine edges
# of small objects): the standard tables' square root (the product's jpeg-dnn-qN,
# l2p_ros.dnn_jpeg), or one step for every frequency.
_JPEG_444 = (cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444, cv2.IMWRITE_JPEG_OPTIMIZE, 1)
COMPARISONS = {
    "webp": [(f"webp-q{q}", cv2_encoder(".webp", (cv2.IMWRITE_WEBP_QUALITY, q))) for q in (60, 75, 85, 90, 95)],
    "jpeg444": [(f"jpeg-420-q{q}-optimized", cv2_encoder(".jpg", (cv2.IMWRITE_JPEG_QUALITY, q, cv2.IMWRITE_JPEG_OPTIMIZE, 1)))
                for q in (60, 70, 75, 80, 85, 90)]
               + [(f"jpeg-444-q{q}-optimized", cv2_encoder(".jpg", (cv2.IMWRITE_JPEG_QUALITY, q, *_JPEG_444)))
                  for q in (60, 70, 75, 80)]
               + [(f"jpeg-444-luma{q}-chroma{q - 15}-optimized", cv2_encoder(".jpg", (
                   cv2.IMWRITE_JPEG_LUMA_QUALITY, q, cv2.IMWRITE_JPEG_CHROMA_QUALITY, q - 15, *_JPEG_444)))
                  for q in (70, 75, 80, 85)],
    "qtables": [("jpeg-420-q75-optimized", cv2_encoder(".jpg", (cv2.IMWRITE_JPEG_QUALITY, 75, cv2.IMWRITE_JPEG_OPTIMIZE, 1))),
                ("jpeg-444-luma70-chroma55-optimized", cv2_encoder(".jpg", (
                    cv2.IMWRITE_JPEG_LUMA_QUALITY, 70, cv2.IMWRITE_JPEG_CHROMA_QUALITY, 55, *_JPEG_444))),
                ("jpeg-444-standard-tables-luma70-chroma55-pillow", jpeg_tables_encoder(
                    scaled_table(STANDARD_LUMA, 70), scaled_table(STANDARD_CHROMA, 55)))]
               + [(f"jpeg-dnn-q{q} (square-root tables, luma {q}, chroma {q - 15})", lambda image, q=q: encode_dnn_jpeg(image, q))
                  for q in (80, 85, 88)]
               + [(f"jpeg-444-flat-tables-luma{luma}-chroma{chroma}", jpeg_tables_encoder([luma] * 64, [chroma] * 64))
                  for luma, chroma in ((17, 32), (15, 40), (14, 48))]
               + [("jpeg-444-sqrt-luma86-flat-chroma40", jpeg_tables_encoder(scaled_table(STANDARD_LUMA, 86, 0.5), [40] * 64))],
    # The target's measure on as many frames as asked (--frames-per-clip 800: every frame of both
    # clips): today's default and the detector's tables around q85, as the edge encodes them.
    "target": [("jpeg-q75", lambda image: codec.encode_image(image, 75))]
              + [(f"jpeg-dnn-q{q}", lambda image, q=q: encode_dnn_jpeg(image, q)) for q in (82, 85, 88)],
    # Between network resolution and the camera's size (stop 29): the camera-size image's JPEG
    # errors are averaged by the letterbox's downscale; does a smaller downscale on the receiver
    # buy that at fewer bytes? The receiver's second resize is a perturbation of its own.
    "scale": [(f"jpeg{'-dnn' if tables == 'dnn' else ''}-q{q} sent at {scale}x network resolution",
               lambda image, q=q, tables=tables: codec.encode_image(image, q, tables), cv2_decode, scale)
              for tables, qualities in (("standard", (60, 75)), ("dnn", (78, 85)))
              for scale in (1.0, 1.15, 1.3, 1.5) for q in qualities],
}
# With --compare qtables also the product's codecs through the edge and receiver (SplitDetector):
# what each side spends on jpeg-dnn-q85 against the camera-size image and today's default.
PRODUCT_PATHS = {"qtables": ("jpeg-full-q75", "jpeg-q75", "jpeg-dnn-q85")}
CLIPS = ("vtest.avi", "Megamind.avi")


def clip_frames(clip: str, count: int) -> list[np.ndarray]:
    path = asset_path(clip)
    indices = np.unique(np.linspace(1, video_frame_count(path) - 1, count).round().astype(int))
    return [frame for _, frame in read_video(path, indices)]


def median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples), 3)


def measure(detector: SplitDetector, frames: list[np.ndarray], references: list, name: str,
            full_offload: list | None) -> tuple[dict, list]:
    spec = codec.CodecSpec.parse(name)
    sizes, encode_ms, receive_ms, matched, matched_full, detections = [], [], [], 0, 0, []
    for i, frame in enumerate(frames):
        sent = detector.edge(frame, "cloud", spec)
        start = time.perf_counter()
        detector._receive(sent)  # what the receiver does before the network runs
        receive_ms.append((time.perf_counter() - start) * 1e3)
        found = detector.cloud(sent).detections
        sizes.append(sent.payload_bytes)
        encode_ms.append(sent.encode_ms)
        matched += match_detections(references[i], found)
        if full_offload is not None:
            matched_full += match_detections(full_offload[i], found)
        detections.append(found)
    row = {"codec": name, "bytes_mean": round(float(np.mean(sizes)), 1), "encode_ms_median": median_ms(encode_ms),
           "receive_ms_median": median_ms(receive_ms),
           "matched_of_full_model": round(matched / max(1, sum(map(len, references))), 4)}
    if full_offload is not None:
        row["matched_of_full_size_offload"] = round(matched_full / max(1, sum(map(len, full_offload))), 4)
    return row, detections


def measure_other(detector: SplitDetector, frames: list[np.ndarray], full_q75: list, full_q75_bytes: float,
                  name: str, encode, decode=cv2_decode, sent_scale: float = 1.0) -> dict:
    """The network-resolution image (what ``jpeg-qN`` resizes) through ``encode`` (image BGR ->
    bytes) and ``decode`` (bytes -> image BGR), placed as the receiver places a network-resolution
    JPEG: bytes, the median encode and decode ms, and detections against the camera-size q75 offload.
    ``sent_scale`` > 1 sends the image that much larger (bilinear, as the letterbox) and the
    receiver resizes it to network resolution after decoding (its ms included in the decode's)."""
    sizes, matched, encode_ms, decode_ms = [], 0, [], []
    for frame, reference in zip(frames, full_q75):
        info = letterbox_info(frame.shape[1], frame.shape[0], detector.model.input_size)
        fitted = fitted_size(frame.shape[1], frame.shape[0], detector.model.input_size)
        if sent_scale == 1.0:
            resized = resize_to_input(frame, detector.model.input_size)
        else:
            resized = cv2.resize(frame, tuple(min(round(n * sent_scale), camera) for n, camera in
                                              zip(fitted, (frame.shape[1], frame.shape[0]))), interpolation=cv2.INTER_LINEAR)
        start = time.perf_counter()
        data = encode(resized)
        encoded = time.perf_counter()
        image = decode(data)
        if sent_scale != 1.0:
            image = cv2.resize(image, fitted, interpolation=cv2.INTER_LINEAR)
        encode_ms.append((encoded - start) * 1e3)
        decode_ms.append((time.perf_counter() - encoded) * 1e3)
        found = detector._postprocess(detector.model(place_in_input(image, info)), info)
        sizes.append(len(data))
        matched += match_detections(reference, found)
    return {"codec": name, "bytes_mean": round(float(np.mean(sizes)), 1),
            "bytes_vs_full_size_q75": round(float(np.mean(sizes)) / full_q75_bytes, 4),
            "matched_of_full_size_q75_offload": round(matched / max(1, sum(map(len, full_q75))), 4),
            "encode_ms_median": median_ms(encode_ms), "decode_ms_median": median_ms(decode_ms)}


def sensitivity_encoders() -> list[tuple]:
    """4:4:4 JPEG with tables from the detector's own measured sensitivity (bench_jpeg_sensitivity.py's
    result) at several qualities, beside the square-root tables (jpeg-dnn-qN) at the same ones."""
    path = RESULTS_DIR / f"{SENSITIVITY_RESULT}.json"
    if not path.is_file():
        raise SystemExit(f"{path} is missing: run `python bench/bench_jpeg_sensitivity.py` first")
    shapes = json.loads(path.read_text())
    luma, chroma = np.array(shapes["luma_step_shape"]), np.array(shapes["chroma_step_shape"])
    return ([(f"sensitivity-tables-q{q}", jpeg_tables_encoder(scaled_table(luma, q), scaled_table(chroma, q)))
             for q in (78, 80, 82, 84, 86)]
            + [(f"jpeg-dnn-q{q}", lambda image, q=q: encode_dnn_jpeg(image, q)) for q in (80, 82, 85, 88)])


def modern_encoders() -> list[tuple]:
    """Image codecs newer than JPEG at network resolution, through imagecodecs (comparison only, not
    a dependency of the package): JPEG XL (libjxl; distance 1.0 is about JPEG q90) and AVIF (libavif,
    AV1 intra), one thread each as an edge would give them, beside jpeg-dnn-q85."""
    try:
        import imagecodecs
    except ImportError:
        raise SystemExit("--compare modern needs imagecodecs (comparison only): pip install imagecodecs") from None

    def rgb(image: np.ndarray) -> np.ndarray:  # BGR <-> RGB
        return np.ascontiguousarray(image[:, :, ::-1])

    jxl = [(f"jxl-d{distance}-e3", lambda image, d=distance: imagecodecs.jpegxl_encode(
        rgb(image), distance=d, effort=3, numthreads=1), lambda data: rgb(imagecodecs.jpegxl_decode(data)))
        for distance in (2.5, 2.0, 1.5, 1.25)]
    avif = [(f"avif-q{level}-s{speed}", lambda image, q=level, s=speed: imagecodecs.avif_encode(
        rgb(image), level=q, speed=s, numthreads=1), lambda data: rgb(imagecodecs.avif_decode(data)))
        for level, speed in ((60, 8), (65, 8), (70, 8), (65, 10), (70, 10))]
    return [("jpeg-dnn-q85", lambda image: encode_dnn_jpeg(image, 85))] + jxl + avif


# Families whose encoders need something first (a result file, an optional library).
LAZY_COMPARISONS = {"sensitivity": sensitivity_encoders, "modern": modern_encoders}


def plot(results: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(1, len(results), figsize=(5.5 * len(results), 4), squeeze=False)
    for axis, (clip, rows) in zip(axes[0], results.items()):
        for full_size, tables, label in ((True, "standard", "camera size (jpeg-full-qN)"),
                                         (False, "standard", "network resolution (jpeg-qN)"),
                                         (False, "dnn", "network resolution, a detector's tables (jpeg-dnn-qN)")):
            chosen = [r for r in rows if (codec.CodecSpec.parse(r["codec"]).full_size,
                                          codec.CodecSpec.parse(r["codec"]).tables) == (full_size, tables)]
            axis.plot([r["bytes_mean"] / 1e3 for r in chosen], [100 * r["matched_of_full_model"] for r in chosen],
                      "o-", label=label)
            for r in chosen:
                axis.annotate(f"q{codec.CodecSpec.parse(r['codec']).quality}",
                              (r["bytes_mean"] / 1e3, 100 * r["matched_of_full_model"]), fontsize=7)
        axis.set(title=clip, xlabel="KB per frame", ylabel="% of the full model's detections matched")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    print(f"saved {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames-per-clip", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--compare", choices=sorted(COMPARISONS | LAZY_COMPARISONS),
                        help="only this family of other encoders at network resolution against the camera-size "
                             "q75 offload (its own JSON)")
    parser.add_argument("--webp", action="store_const", const="webp", dest="compare", help="the same as --compare webp")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    detector = SplitDetector(load_model("yolov3-tiny"), load_class_names(), "yolov3-tiny-416")
    if args.compare:
        return compare_others(detector, args)
    results, summary = {}, {}
    for clip in CLIPS:
        frames = clip_frames(clip, args.frames_per_clip)
        references = [detector.detect(frame) for frame in frames]
        height, width = frames[0].shape[:2]
        print(f"{clip}: {len(frames)} frames of {width}x{height}, {sum(map(len, references))} detections of the full model")
        print(f"{'codec':>14} {'KB':>7} {'enc ms':>7} {'recv ms':>8} {'of model':>9} {'of full-size':>12} "
              f"{'lossless of it':>14}")
        rows = []
        for quality in QUALITIES:
            full_row, full_detections = measure(detector, frames, references, f"jpeg-full-q{quality}", None)
            net_row, _ = measure(detector, frames, references, f"jpeg-q{quality}", full_detections)
            dnn_row, _ = measure(detector, frames, references, f"jpeg-dnn-q{quality}", full_detections)
            for row in (net_row, dnn_row):
                row["bytes_vs_full_size"] = round(row["bytes_mean"] / full_row["bytes_mean"], 4)
            # The ceiling of any network-resolution codec on this measure: the exact letterbox
            # (lossless, what the full model itself sees) against the camera-size offload.
            full_row["lossless_network_resolution_of_it"] = round(
                sum(map(match_detections, full_detections, references)) / max(1, sum(map(len, full_detections))), 4)
            for row in (full_row, net_row, dnn_row):
                print(f"{row['codec']:>14} {row['bytes_mean'] / 1e3:7.1f} {row['encode_ms_median']:7.2f} "
                      f"{row['receive_ms_median']:8.2f} {row['matched_of_full_model']:9.1%} "
                      f"{row.get('matched_of_full_size_offload', float('nan')):12.1%} "
                      f"{row.get('lossless_network_resolution_of_it', float('nan')):14.1%}")
            rows += [full_row, net_row, dnn_row]
        results[clip] = rows
        q75 = next(r for r in rows if r["codec"] == "jpeg-q75")
        summary[clip] = {"frame_size": [width, height], "q75_bytes_vs_full_size": q75["bytes_vs_full_size"],
                         "q75_matched_of_full_size_offload": q75["matched_of_full_size_offload"]}
        print(f"  q75: network resolution is {q75['bytes_vs_full_size']:.2f}x the bytes, "
              f"{q75['matched_of_full_size_offload']:.1%} of the camera-size offload's detections matched")
    save("image_offload_yolov3-tiny_416", {"command": " ".join(["python", *sys.argv]),
                                           "frames_per_clip": args.frames_per_clip, "summary": summary,
                                           "results": results})
    plot(results, Path(__file__).resolve().parents[1] / "docs" / "image_offload.png")


def compare_others(detector: SplitDetector, args) -> None:
    """``--compare FAMILY``: other encoders at network resolution against the camera-size JPEG q75 offload."""
    results, product, frame_counts = {}, {}, {}
    encoders = LAZY_COMPARISONS[args.compare]() if args.compare in LAZY_COMPARISONS else COMPARISONS[args.compare]
    full_q75 = codec.CodecSpec.parse("jpeg-full-q75")
    for clip in CLIPS:
        frames = clip_frames(clip, args.frames_per_clip)
        frame_counts[clip] = len(frames)
        sent = [detector.edge(frame, "cloud", full_q75) for frame in frames]
        reference = [detector.cloud(frame).detections for frame in sent]
        reference_bytes = float(np.mean([frame.payload_bytes for frame in sent]))
        print(f"{clip}: camera-size jpeg-full-q75 {reference_bytes / 1e3:.1f} KB, "
              f"{sum(map(len, reference))} detections")
        results[clip] = [measure_other(detector, frames, reference, reference_bytes, *encoder)
                         for encoder in encoders]
        for row in results[clip]:
            print(f"  {row['codec']:>66} {row['bytes_mean'] / 1e3:6.1f} KB, {row['bytes_vs_full_size_q75']:.2f}x, "
                  f"{row['matched_of_full_size_q75_offload']:.1%} of its detections; encode {row['encode_ms_median']:.1f} ms, "
                  f"decode {row['decode_ms_median']:.1f} ms")
        product_paths = PRODUCT_PATHS.get(args.compare, ())
        models = [detector.detect(frame) for frame in frames] if product_paths else []
        for name in product_paths:
            # The product codec as the edge and the receiver run it: their ms beside today's default.
            row, _ = measure(detector, frames, models, name, reference)
            product.setdefault(clip, []).append(row)
            print(f"  {name:>66} {row['bytes_mean'] / 1e3:6.1f} KB as sent; edge {row['encode_ms_median']:.2f} ms, "
                  f"receiver {row['receive_ms_median']:.2f} ms; {row['matched_of_full_model']:.1%} of the full model's")
    save(f"image_offload_{args.compare}_yolov3-tiny_416", {"command": " ".join(["python", *sys.argv]),
                                                          "frames_per_clip": args.frames_per_clip, "frames": frame_counts,
                                                          "results": results, "product_paths": product})


if __name__ == "__main__":
    main()
