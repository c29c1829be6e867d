"""What a learned bottleneck costs the edge and the receiver, against the layers beside it.

    python bench/bench_bottleneck_compute.py --threads 2 [--bottlenecks sample-scenes,sample-scenes-wide]
    python bench/frame_costs.py --bottlenecks-only    # then price them for the simulator and policies

Issue 9's budget: the encoder at most 10% of the edge head's time at its cut, the decoder at most
10% of the tail's. Each shipped bottleneck runs as deployed (edge stage, wire format, cloud stage;
``bottleneck_training.measure_frames``) on the held-out sets of bench_bottleneck.py, with its
decoder three ways in the same run, one after the other on the same frames:

- ``nn.Conv2d``: PyTorch's plain convolutions, what the bottleneck ran before it took the Darknet
  layers' CPU path (for comparison only; reproduced here by calling the decoder's layers);
- ``packed fp32``: oneDNN with packed weights and Winograd (``l2p_ros.model.cpu_conv``), the
  default on a CPU without native bfloat16;
- ``packed bf16``: the same in bfloat16, the default where the CPU has AMX or AVX512-BF16
  (skipped elsewhere).

Each row: detections of the full model matched, bytes per frame, median ms of the head, encoder
(with zstd), decoder (with validation and zstd) and tail, and the two ratios. The encoder is the
same in every row (fp32 packed: the codes sent do not depend on the receiver).

By default every bottleneck in models/bottleneck/. The file records which decoder row is the
deployed one on this CPU (``deployed``): bench/frame_costs.py prices each bottleneck from it.
Writes bench/results/bottleneck_compute_yolov3-tiny_416.json.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_bottleneck import add_shipped_bottleneck_args, held_out_sets, shipped_bottleneck_detector  # noqa: E402
from common import save  # noqa: E402

from l2p_ros.bottleneck_file import BUNDLED_DIR, EXTENSION  # noqa: E402
from l2p_ros.bottleneck_training import measure_frames, summarize_frames  # noqa: E402
from l2p_ros.model.cpu_conv import NATIVE_BF16  # noqa: E402
from l2p_ros.split import SplitDetector  # noqa: E402

SETS = ("in-domain (vtest, later)", "Megamind.avi", "bag (Megamind, CompressedImage)", "photos")


class PlainDecoder:
    """A bottleneck's ``decode`` through its ``nn.Conv2d`` layers, as before the packed path."""

    def __init__(self, bottleneck):
        self.bottleneck = bottleneck

    def __call__(self, codes: torch.Tensor) -> torch.Tensor:
        return self.bottleneck.decoder(codes.to(torch.float32) / self.bottleneck.info.levels)


def measure(detector: SplitDetector, frames: list, references: list, spec) -> dict:
    bottleneck = detector.bottleneck(spec)
    summary = summarize_frames(measure_frames(detector, frames, references, bottleneck.info.cut_after_layer, spec))
    return {"matched_share": round(summary["matched_share"], 4), "bytes_mean": round(summary["bytes_mean"], 1),
            **{stage: round(summary[stage], 3) for stage in ("head_ms", "encode_ms", "decode_ms", "tail_ms")},
            "encode_share_of_head": round(summary["encode_ms"] / summary["head_ms"], 4),
            "decode_share_of_tail": round(summary["decode_ms"] / summary["tail_ms"], 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_shipped_bottleneck_args(parser, ",".join(sorted(path.stem for path in BUNDLED_DIR.glob(f"*{EXTENSION}"))))
    args = parser.parse_args()
    detector, specs = shipped_bottleneck_detector(args)
    _, sets = held_out_sets(args.frames_per_clip, photos=True)
    decoders = ["nn.Conv2d", "packed fp32"] + (["packed bf16"] if NATIVE_BF16 else [])
    results = {}
    for setting in SETS:
        frames = sets[setting]
        with torch.inference_mode():
            references = [detector.detect(frame) for frame in frames]
        print(f"\n{setting}: {len(frames)} frames, {sum(map(len, references))} detections of the full model", flush=True)
        results[setting] = {"frames": len(frames), "reference_detections": sum(map(len, references))}
        for name, spec in specs.items():
            bottleneck = detector.bottleneck(spec)
            rows = {}
            for decoder in decoders:
                bottleneck.set_decoder_bfloat16(decoder == "packed bf16")
                if decoder == "nn.Conv2d":
                    bottleneck.decode = PlainDecoder(bottleneck)  # an instance attribute shadows the method
                try:
                    rows[decoder] = measure(detector, frames, references, spec)
                finally:
                    bottleneck.__dict__.pop("decode", None)
                row = rows[decoder]
                print(f"  {name:20s} {decoder:12s} kept {row['matched_share']:.1%} at {row['bytes_mean'] / 1000:.1f} KB; "
                      f"encoder {row['encode_ms']:.2f} / head {row['head_ms']:.2f} ms = {row['encode_share_of_head']:.1%}; "
                      f"decoder {row['decode_ms']:.2f} / tail {row['tail_ms']:.2f} ms = {row['decode_share_of_tail']:.1%}",
                      flush=True)
            bottleneck.set_decoder_bfloat16(NATIVE_BF16)
            results[setting][name] = rows
    save("bottleneck_compute_yolov3-tiny_416", {"command": " ".join(["python", *sys.argv]),
                                                "native_bf16": NATIVE_BF16, "deployed": decoders[-1],
                                                "torch_threads": args.threads,
                                                "results": results})


if __name__ == "__main__":
    main()
