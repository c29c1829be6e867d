"""``l2p demo``: split detection on the sample video with pretrained YOLOv3-tiny, in one process.

Each frame is run through a different cut (rotating over image offload, inner cuts and edge-only)
with a compressed int8 codec, and its detections are compared with the full forward pass on the
same frame. This is the split engine the ROS pipeline runs, shown without ROS.
"""
from __future__ import annotations

import statistics
import time
from collections import defaultdict
from pathlib import Path

import cv2

from l2p_ros.assets import SAMPLE_VIDEO, asset_path
from l2p_ros.codec import CodecSpec
from l2p_ros.model.darknet import load_model
from l2p_ros.model.matching import match_detections
from l2p_ros.model.postprocess import load_class_names
from l2p_ros.visualize import draw_detections
from l2p_ros.split import SplitDetector

# (cut, codec): image offload as JPEG, two inner cuts (after the 4th and 5th maxpool), edge only.
DEMO_PLAN = (("cloud", "jpeg-q75"), ("7", "int8-channel+zstd"), ("9", "int8-channel+zstd"),
             ("edge", "fp32"))


def run_demo(frames: int = 60, out_dir: Path = Path("out/demo"), model_name: str = "yolov3-tiny",
             size: int = 416) -> int:
    out_dir.mkdir(parents=True, exist_ok=True)
    detector = SplitDetector(load_model(model_name, input_size=size), load_class_names(), f"{model_name}-{size}")
    capture = cv2.VideoCapture(str(asset_path(SAMPLE_VIDEO)))
    per_cut: dict[str, list[dict]] = defaultdict(list)
    print(f"{'frame':>5} {'cut':>6} {'codec':>18} {'bytes':>9} {'edge ms':>8} {'enc ms':>7} "
          f"{'cloud ms':>8} {'dets':>4} {'same':>5}  labels")
    annotated_written = False
    for index in range(frames):
        ok, image = capture.read()
        if not ok:
            break
        cut_name, codec_name = DEMO_PLAN[index % len(DEMO_PLAN)]
        reference = detector.detect(image)
        start = time.perf_counter()
        frame = detector.edge(image, cut_name, CodecSpec.parse(codec_name))
        result = detector.cloud(frame)
        total_ms = (time.perf_counter() - start) * 1e3
        matched = match_detections(reference, result.detections)
        row = {"bytes": frame.payload_bytes, "edge_ms": frame.edge_ms, "encode_ms": frame.encode_ms,
               "cloud_ms": result.cloud_ms, "total_ms": total_ms, "detections": len(result.detections),
               "reference": len(reference), "matched": matched}
        per_cut[f"{cut_name} {codec_name}"].append(row)
        labels = ", ".join(sorted({d.label for d in result.detections}))
        print(f"{index:>5} {cut_name:>6} {codec_name:>18} {frame.payload_bytes:>9,} {frame.edge_ms:>8.1f} "
              f"{frame.encode_ms:>7.2f} {result.cloud_ms:>8.1f} {len(result.detections):>4} "
              f"{matched:>2}/{len(reference):<2}  {labels}")
        if not annotated_written and result.detections:
            cv2.imwrite(str(out_dir / "annotated.png"), draw_detections(image, result.detections))
            annotated_written = True
    capture.release()
    if not per_cut:
        raise SystemExit(f"no frames could be read from {asset_path(SAMPLE_VIDEO)}")

    print(f"\n{'cut + codec':>26} {'frames':>6} {'bytes/frame':>12} {'edge ms':>8} {'cloud ms':>9} "
          f"{'total ms':>9} {'agreement':>9}")
    for key, rows in per_cut.items():
        reference = sum(r["reference"] for r in rows)
        agreement = sum(r["matched"] for r in rows) / reference if reference else 1.0
        print(f"{key:>26} {len(rows):>6} {statistics.mean(r['bytes'] for r in rows):>12,.0f} "
              f"{statistics.mean(r['edge_ms'] for r in rows):>8.1f} "
              f"{statistics.mean(r['cloud_ms'] for r in rows):>9.1f} "
              f"{statistics.mean(r['total_ms'] for r in rows):>9.1f} {agreement:>9.1%}")
    if annotated_written:
        print(f"\nannotated frame: {out_dir / 'annotated.png'}")
    return 0
