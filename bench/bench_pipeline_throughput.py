"""Pipeline throughput against the slowest stage's own rate, on the live node processes.

    python bench/bench_pipeline_throughput.py --frames 150 --cut 9 --rate-hz 30

The edge runs layers 0..cut and the cloud the rest, each in its own process with one torch thread,
so on two cores they work on different frames at once. Throughput is detected frames per second
of capture time in steady state (the first frames, which include start-up, are left out); the
slowest stage's own rate is 1 / max(median edge + encode ms, median decode + cloud ms).
Target: throughput >= 0.9 of that rate.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import save  # noqa: E402

from l2p_ros.nodes.pipeline_run import run_pipeline  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--cut", default="9")
    parser.add_argument("--codec", default="fp32")
    parser.add_argument("--rate-hz", type=float, default=30.0, help="camera rate, above the pipeline's")
    parser.add_argument("--warmup-frames", type=int, default=20)
    args = parser.parse_args()
    os.environ.setdefault("ROS_DOMAIN_ID", str(101 + os.getpid() % 100))
    summary = run_pipeline(frames=args.frames, policy=f"fixed:{args.cut}", rate_hz=args.rate_hz,
                           print_frames=False, extra={("partitioner_node", "codec"): args.codec})
    timeline = [r for r in summary["timeline"] if r["executed_on"] == "edge+cloud"][args.warmup_frames:]
    if len(timeline) < 10:
        raise SystemExit(f"too few split frames in steady state: {summary}")
    edge_ms = statistics.median(r["edge_ms"] + r["encode_ms"] for r in timeline)
    cloud_ms = statistics.median(r["decode_ms"] + r["cloud_ms"] for r in timeline)
    span_s = timeline[-1]["stamp_s"] - timeline[0]["stamp_s"]
    throughput_fps = (len(timeline) - 1) / span_s
    stage_fps = 1000.0 / max(edge_ms, cloud_ms)
    ratio = throughput_fps / stage_fps
    print(f"cut {args.cut} {args.codec}: edge+encode {edge_ms:.1f} ms, decode+cloud {cloud_ms:.1f} ms median")
    print(f"throughput {throughput_fps:.2f} fps, slowest stage alone {stage_fps:.2f} fps, ratio {ratio:.3f} "
          f"(target >= 0.9); end-to-end latency mean {summary['latency_mean_ms']:.1f} ms")
    print(f"frames: {summary['frames_in_edge']} in, {summary['frames_detected']} detected, drops {summary['drops']}")
    save("pipeline_throughput", {"args": vars(args), "edge_stage_ms_median": edge_ms,
                                 "cloud_stage_ms_median": cloud_ms, "throughput_fps": throughput_fps,
                                 "slowest_stage_fps": stage_fps, "ratio": ratio,
                                 "summary": {k: v for k, v in summary.items() if k not in ("timeline", "frame_stamps")}})


if __name__ == "__main__":
    main()
