"""Full-model latency of l2p_ros's Darknet vs OpenCV DNN on the same CPU, threads and input.

Both run the same cfg and weights on the same letterboxed real image (messi5.jpg). For YOLOv3, which
has no pretrained weights offline, our seeded random weights are written to a temporary Darknet
.weights file for OpenCV. Runs alternate (ours, OpenCV, ours, ...) after a warm-up so that load from
other processes hits both alike. Results: a table on stdout and
``bench/results/model_speed_<model>_<size>.json``.

    python bench/bench_model_speed.py --model yolov3-tiny --size 416 --threads 2 --repeats 30
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from l2p_ros.assets import asset_path
from l2p_ros.model.cfg import bundled_cfg
from l2p_ros.model.darknet import load_model
from l2p_ros.model.postprocess import letterbox

RESULTS_DIR = Path(__file__).with_name("results")
PAUSE_S = 0.02  # lets the other runtime's worker threads stop spinning before a timed run


def timed_ms(run) -> float:
    start = time.perf_counter()
    run()
    return (time.perf_counter() - start) * 1e3


def warm_up(run, min_runs: int = 5, min_s: float = 3.0) -> None:
    # Fresh memory on this VM is slow for the first seconds: warm up by time, not only by count.
    start = time.perf_counter()
    runs = 0
    while runs < min_runs or time.perf_counter() - start < min_s:
        run()
        runs += 1


def busy_cpu_s() -> tuple[float, float]:
    """(CPU seconds the whole machine has been busy, CPU seconds this process used) so far; Linux."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK"), usage.ru_utime + usage.ru_stime


def opencv_net(cfg: Path, weights: Path) -> cv2.dnn.Net:
    net = cv2.dnn.readNetFromDarknet(str(cfg), str(weights))
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    return net


def summary(samples_ms: list[float]) -> dict:
    return {
        "median_ms": statistics.median(samples_ms),
        "p10_ms": float(np.percentile(samples_ms, 10)),
        "p90_ms": float(np.percentile(samples_ms, 90)),
        "samples_ms": samples_ms,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("yolov3-tiny", "yolov3"), default="yolov3-tiny")
    parser.add_argument("--size", type=int, default=416, help="network input size in pixels")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    pretrained = args.model == "yolov3-tiny"
    model = load_model(args.model, args.size, random_weights=not pretrained)
    blob, _ = letterbox(cv2.imread(str(asset_path("messi5.jpg"))), args.size)

    with tempfile.TemporaryDirectory(prefix="l2p-bench-") as tmp:
        weights = asset_path("yolov3-tiny.weights") if pretrained else Path(tmp) / f"{args.model}-random.weights"
        if not pretrained:
            model.save_darknet_weights(weights)
        net = opencv_net(bundled_cfg(args.model), weights)
    out_names = net.getUnconnectedOutLayersNames()
    blob_np = blob.numpy()

    def run_ours():
        return model(blob)

    def run_opencv():
        net.setInput(blob_np)
        return net.forward(out_names)

    warm_up(run_ours)
    warm_up(run_opencv)
    ours_ms, opencv_ms = [], []
    (machine_start, own_start), wall_start = busy_cpu_s(), time.perf_counter()
    for _ in range(args.repeats):
        time.sleep(PAUSE_S)
        ours_ms.append(timed_ms(run_ours))
        time.sleep(PAUSE_S)
        opencv_ms.append(timed_ms(run_opencv))
    (machine_end, own_end), wall_s = busy_cpu_s(), time.perf_counter() - wall_start
    # Cores other processes kept busy while we measured: both sides slow down when it is well above 0.
    other_cores = max(0.0, (machine_end - machine_start) - (own_end - own_start)) / wall_s
    # Same computation? Objectness of every box (OpenCV rows are in our row order).
    objectness_diff = max(
        float(np.abs(o[0, :, 4].numpy() - c[:, 4]).max()) for o, c in zip(run_ours(), run_opencv())
    )

    result = {
        "model": args.model,
        "weights": "pretrained COCO" if pretrained else "random (seed 0)",
        "input_size": args.size,
        "threads": args.threads,
        "repeats": args.repeats,
        "ours": summary(ours_ms),
        "opencv": summary(opencv_ms),
        "ratio_ours_over_opencv": statistics.median(ours_ms) / statistics.median(opencv_ms),
        "max_objectness_diff": objectness_diff,
        "versions": {"torch": torch.__version__, "opencv": cv2.__version__, "python": platform.python_version()},
        "cpu": platform.processor() or platform.machine(),
        "other_processes_cores": other_cores,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    print(f"{args.model} @ {args.size}px, {args.threads} threads, {args.repeats} alternating runs")
    print(f"{'':<10}{'median ms':>10}{'p10 ms':>10}{'p90 ms':>10}")
    for name in ("ours", "opencv"):
        s = result[name]
        print(f"{name:<10}{s['median_ms']:>10.1f}{s['p10_ms']:>10.1f}{s['p90_ms']:>10.1f}")
    print(f"ratio ours/opencv: {result['ratio_ours_over_opencv']:.3f}   max objectness diff: {objectness_diff:.2e}")
    print(f"other processes used {other_cores:.2f} of {os.cpu_count()} cores meanwhile (well above 0: noisy)")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"model_speed_{args.model}_{args.size}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"saved {path}")


if __name__ == "__main__":
    main()
