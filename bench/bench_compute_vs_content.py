"""Does the forward pass take longer on some frames than on others? Paired timings of real frames
against a reference frame, with a tolerance from the repeat noise of the same run.

    python bench/bench_compute_vs_content.py [--model yolov3-tiny] [--frames 8] [--rounds 15] [--threads 1]

The claim under test (docs/evaluation.md, "What depends on the image content"): the compute time
of a dense CNN does not depend on the image. It needs timings, so it is a benchmark, not a test
(tests make no timed assertions; ``test/test_measure_payload_fit.py`` says so).

Method. ``--frames`` real frames spread over two clips (the street scene and the animation, so
content and complexity differ as much as the project's videos allow), a reference frame (the
first of them), and ``--nulls`` copies of the reference (separate arrays, the same pixels), which
measure what "no content difference" looks like on this machine now. Each round times every item
once in a shuffled order, each right after a timing of the reference, so a drifting machine
(other processes, clock frequency) moves both of a pair alike. Per item, the paired difference
(item ms - the reference's ms just before it) over rounds, and its median.

- noise: the robust std (1.4826 MAD) of the null copies' paired differences, pooled; the standard
  error of a median over R rounds is 1.2533 * noise / sqrt(R).
- tolerance: ``--z`` (default 4) standard errors of the median, and never below the largest
  |median| of the null copies (what identical pixels showed in this run).
- verdict: "no content dependence detected" when every real frame's median paired difference is
  within the tolerance; the relative size of the largest difference and R^2 of the per-frame
  medians against complexity are reported too.

Writes bench/results/compute_vs_content_<model>_<size>.json.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import save  # noqa: E402

from l2p_ros.assets import asset_path  # noqa: E402
from l2p_ros.measure.models import load_measured_model, weights_label  # noqa: E402
from l2p_ros.measure.payloads import clip_frames, spread_indices  # noqa: E402
from l2p_ros.model.postprocess import letterbox  # noqa: E402
from l2p_ros.simulation.video import DEFAULT_CLIPS  # noqa: E402


def robust_std(x: np.ndarray) -> float:
    return float(1.4826 * np.median(np.abs(x - np.median(x))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="yolov3-tiny")
    parser.add_argument("--input-size", type=int, default=416)
    parser.add_argument("--frames", type=int, default=8, help="real frames, spread over the two clips")
    parser.add_argument("--nulls", type=int, default=3, help="copies of the reference frame")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--z", type=float, default=4.0, help="tolerance in standard errors of the median")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    model = load_measured_model(args.model, args.input_size)
    clips = list(DEFAULT_CLIPS)
    per_clip = [args.frames // len(clips) + (i < args.frames % len(clips)) for i in range(len(clips))]
    frames, complexity, labels = [], [], []
    for clip, count in zip(clips, per_clip):
        indices = spread_indices(asset_path(clip), count)
        clip_images, scores = clip_frames(asset_path(clip), indices)
        frames += clip_images
        complexity += list(scores)
        labels += [f"{clip}#{i}" for i in indices]
    tensors = [letterbox(frame, args.input_size)[0] for frame in frames]
    reference = tensors[0]
    items = tensors + [reference.clone() for _ in range(args.nulls)]
    is_null = np.array([False] * len(tensors) + [True] * args.nulls)

    def timed_ms(x: torch.Tensor) -> float:
        start = time.perf_counter()
        model(x)
        return (time.perf_counter() - start) * 1e3

    for x in items[:3]:  # warm-up: lazy initialisation, caches
        timed_ms(x)
    rng = np.random.default_rng(args.seed)
    diffs = np.zeros((args.rounds, len(items)))
    reference_ms = []
    started = time.time()
    for r in range(args.rounds):
        for i in rng.permutation(len(items)):
            ref = timed_ms(reference)
            diffs[r, i] = timed_ms(items[i]) - ref
            reference_ms.append(ref)
    medians = np.median(diffs, axis=0)
    noise_ms = robust_std(diffs[:, is_null].ravel())
    standard_error_ms = 1.2533 * noise_ms / np.sqrt(args.rounds)
    tolerance_ms = max(args.z * standard_error_ms, float(np.abs(medians[is_null]).max()))
    real = medians[~is_null]
    worst = int(np.argmax(np.abs(real)))
    reference_median_ms = float(np.median(reference_ms))
    r2 = float(np.corrcoef(complexity, real)[0, 1] ** 2) if np.ptp(real) > 0 else 0.0
    holds = bool(np.all(np.abs(real) <= tolerance_ms))
    result = {
        "model": args.model, "input_size": args.input_size, "weights": weights_label(args.model),
        "threads": args.threads, "rounds": args.rounds, "z": args.z, "seconds": round(time.time() - started, 1),
        "command": "python bench/bench_compute_vs_content.py " + " ".join(sys.argv[1:]),
        "reference": labels[0], "reference_ms_median": round(reference_median_ms, 3),
        "noise_ms_robust_std": round(noise_ms, 4), "standard_error_of_median_ms": round(standard_error_ms, 4),
        "null_median_diff_ms": [round(float(d), 4) for d in medians[is_null]],
        "tolerance_ms": round(tolerance_ms, 4),
        "frames": [{"frame": label, "complexity": round(float(c), 4), "median_diff_ms": round(float(d), 4)}
                   for label, c, d in zip(labels, complexity, real)],
        "largest_diff_ms": round(float(real[worst]), 4),
        "largest_diff_pct_of_reference": round(100 * abs(float(real[worst])) / reference_median_ms, 2),
        "r2_diff_vs_complexity": round(r2, 4),
        "verdict": "no content dependence detected" if holds else "content dependence detected",
    }
    for row in result["frames"]:
        print(f"{row['frame']:>20}  complexity {row['complexity']:.3f}  {row['median_diff_ms']:+8.3f} ms")
    print(f"reference {reference_median_ms:.2f} ms; noise {noise_ms:.3f} ms; tolerance +-{tolerance_ms:.3f} ms; "
          f"largest {result['largest_diff_ms']:+.3f} ms ({result['largest_diff_pct_of_reference']}%): "
          f"{result['verdict']}")
    save(f"compute_vs_content_{args.model}_{args.input_size}", result)


if __name__ == "__main__":
    main()
