"""Codec table on real frames of the sample video with pretrained YOLOv3-tiny.

    python bench/bench_codec.py --frames 20 --threads 2

For every cut worth using (its fp32 crossing is smaller than every earlier cut's, plus image
offload) and every codec: bytes on the wire (mean over frames, and as a share of fp32), encode and
decode ms (median), and detection agreement with the fp32 full model (same class, IoU >= 0.5).
Target: int8+zstd at <= 15% of fp32 bytes with >= 97% of detections matched.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import sample_frames, save  # noqa: E402

from l2p_ros import codec  # noqa: E402
from l2p_ros.model.darknet import load_model  # noqa: E402
from l2p_ros.model.graph import INPUT, crossing_bytes  # noqa: E402
from l2p_ros.model.matching import match_detections  # noqa: E402
from l2p_ros.model.postprocess import load_class_names  # noqa: E402
from l2p_ros.split import SplitDetector  # noqa: E402


def cuts_worth_using(detector: SplitDetector) -> list:
    """Image offload, then each cut whose crossing is smaller than every earlier cut's."""
    runner = detector.runner
    chosen, smallest = [], float("inf")
    for cut in runner.graph.chain_cuts():
        size = crossing_bytes(cut, runner.model.output_shapes, runner.input_shape)
        if cut.after_layer == INPUT or size < smallest:
            chosen.append(cut)
        smallest = min(smallest, size) if cut.after_layer != INPUT else smallest
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--stride", type=int, default=37, help="take every N-th video frame")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=416)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    detector = SplitDetector(load_model("yolov3-tiny", input_size=args.size), load_class_names(),
                             f"yolov3-tiny-{args.size}")
    frames = sample_frames(args.frames, stride=args.stride)
    references = [detector.detect(f) for f in frames]
    total_reference = sum(len(r) for r in references)
    rows = []
    print(f"{len(frames)} frames, {total_reference} reference detections (fp32 full model)")
    print(f"{'cut':>6} {'codec':>18} {'bytes':>10} {'of fp32':>8} {'enc ms':>7} {'dec ms':>7} {'matched':>8}")
    for cut in cuts_worth_using(detector):
        fp32_bytes = crossing_bytes(cut, detector.model.output_shapes, detector.runner.input_shape)
        for name in codec.CODECS:
            spec = codec.CodecSpec.parse(name)
            if (spec.dtype == "jpeg") != (cut.after_layer == INPUT):
                continue
            sizes, encode_ms, decode_ms, matched = [], [], [], 0
            for frame, reference in zip(frames, references):
                encoded = detector.edge(frame, cut, spec)
                result = detector.cloud(encoded)
                sizes.append(encoded.payload_bytes)
                encode_ms.append(encoded.encode_ms)
                decode_ms.append(result.decode_ms)
                matched += match_detections(reference, result.detections)
            row = {"cut": cut.name(detector.num_layers), "codec": name, "bytes_mean": statistics.mean(sizes),
                   "fp32_bytes": fp32_bytes, "share_of_fp32": statistics.mean(sizes) / fp32_bytes,
                   "encode_ms_median": statistics.median(encode_ms),
                   "decode_ms_median": statistics.median(decode_ms),
                   "matched": matched / total_reference if total_reference else 1.0}
            rows.append(row)
            print(f"{row['cut']:>6} {name:>18} {row['bytes_mean']:>10,.0f} {row['share_of_fp32']:>8.1%} "
                  f"{row['encode_ms_median']:>7.2f} {row['decode_ms_median']:>7.2f} {row['matched']:>8.1%}")
    int8 = [r for r in rows if r["codec"] == "int8-channel+zstd"]
    if int8:
        print(f"int8-channel+zstd: worst share {max(r['share_of_fp32'] for r in int8):.1%} of fp32, "
              f"worst agreement {min(r['matched'] for r in int8):.1%} (targets <= 15%, >= 97%)")
    save(f"codec_yolov3-tiny_{args.size}", {"args": vars(args), "reference_detections": total_reference,
                                            "rows": rows})


if __name__ == "__main__":
    main()
