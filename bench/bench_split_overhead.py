"""Split overhead: head + tail at a cut vs the full forward pass, interleaved in one run.

    python bench/bench_split_overhead.py --model yolov3-tiny --threads 2

Target: head + tail within 3% of the full pass. Runs are interleaved (full, split, full,
split, ...) so drift in machine load affects both sides alike; the ratio is the median over the
back-to-back pairs.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import sample_frames, save  # noqa: E402

from l2p_ros.measure.models import load_measured_model  # noqa: E402
from l2p_ros.model.postprocess import letterbox  # noqa: E402
from l2p_ros.model.runner import SplitRunner  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="yolov3-tiny")
    parser.add_argument("--size", type=int, default=416)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--cuts", default=None, help="comma-separated cuts (default: a spread over the network)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_measured_model(args.model, args.size)
    runner = SplitRunner(model)
    image, _ = letterbox(sample_frames(1, start=30)[0], args.size)
    n = runner.graph.num_layers
    cuts = [int(c) for c in args.cuts.split(",")] if args.cuts else sorted({n // 8, n // 4, n // 2, 3 * n // 4, n - 2})

    def full():
        with torch.inference_mode():
            model(image)

    rows = []
    print(f"{args.model} {args.size} threads={args.threads} repeats={args.repeats}")
    print(f"{'cut':>5} {'full ms':>9} {'head+tail ms':>13} {'ratio':>7}")
    for cut in cuts:
        def split(cut=cut):
            runner.tail(runner.head(image, cut), cut)
        for fn in (full, split, full, split):  # warm-up
            fn()
        full_ms, split_ms = [], []
        for _ in range(args.repeats):
            for fn, samples in ((full, full_ms), (split, split_ms)):
                start = time.perf_counter()
                fn()
                samples.append((time.perf_counter() - start) * 1e3)
        # The median of back-to-back pair ratios: a load spike hits one pair, not the statistic.
        row = {"cut": cut, "full_ms_median": statistics.median(full_ms),
               "split_ms_median": statistics.median(split_ms),
               "ratio": statistics.median(s / f for s, f in zip(split_ms, full_ms))}
        rows.append(row)
        print(f"{cut:>5} {row['full_ms_median']:>9.2f} {row['split_ms_median']:>13.2f} {row['ratio']:>7.3f}")
    worst = max(r["ratio"] for r in rows)
    print(f"worst ratio {worst:.3f} (target <= 1.03)")
    save(f"split_overhead_{args.model}_{args.size}", {"args": vars(args), "rows": rows, "worst_ratio": worst})


if __name__ == "__main__":
    main()
