"""Decision cost: median/p95 of each policy's ``decide()`` and of the frame complexity, per model.

    python bench/bench_decision.py [--models yolov3-tiny,yolov3] [--states 400] [--frames 200]

Target: deciding a frame, complexity included, takes <= 1 ms median on this CPU.
Profiles are this host's (``ensure_profile``, 1 thread; yolov3 with random weights), the cloud
and fog profiles are derived from them (x20, x4, labelled derived), payload bytes come from the
fit on real frames (``ensure_payload_fit``). States are random but plausible (1-100 Mbit/s,
5-50 ms RTT, load 0-0.9, queue 0-3) with the complexity of real frames. ``per frame`` is the
complexity of a real frame plus the decision for it, timed together. ``score`` is timed
re-evaluating every frame (its worst case) and with its default period.
Writes bench/results/decision_cost.json.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import sample_frames, save  # noqa: E402

from l2p_ros.complexity import ComplexityMeter  # noqa: E402
from l2p_ros.model.cfg import bundled_cfg, parse_cfg  # noqa: E402
from l2p_ros.model.graph import LayerGraph  # noqa: E402
from l2p_ros.measure.profile import derive_profile  # noqa: E402
from l2p_ros.policies.cost_model import CostModel  # noqa: E402
from l2p_ros.policies.dads import DadsPolicy  # noqa: E402
from l2p_ros.measure.cache import ensure_payload_fit  # noqa: E402
from l2p_ros.measure.payload_fit import load_payload_fit  # noqa: E402
from l2p_ros.policies.registry import make_policy  # noqa: E402
from l2p_ros.policies.types import SystemState  # noqa: E402
from l2p_ros.measure.cache import ensure_profile  # noqa: E402
from l2p_ros.measure.profile import load_profile  # noqa: E402

CODEC, IMAGE_CODEC = "int8-channel+zstd", "jpeg-q75"
FRAME_INTERVAL_MS = 100.0  # 10 fps camera
TARGET_MS = 1.0


def timed_us(fn, inputs, warmup: int = 20) -> list[float]:
    for value in inputs[:warmup]:
        fn(value)
    samples = []
    for value in inputs:
        start = time.perf_counter_ns()
        fn(value)
        samples.append((time.perf_counter_ns() - start) / 1e3)
    return samples


def summary(samples: list[float]) -> dict:
    return {"median_us": round(statistics.median(samples), 2), "p95_us": round(float(np.percentile(samples, 95)), 2),
            "n": len(samples)}


def cost_models(model_name: str, fit_frames: int) -> tuple[CostModel, CostModel, dict]:
    edge_path = ensure_profile(model_name, 416, threads=1)
    fit_path = ensure_payload_fit(model_name, 416, frames_per_clip=fit_frames, codecs=(CODEC, "fp32", IMAGE_CODEC))
    edge, fit = load_profile(edge_path), load_payload_fit(fit_path)
    graph = LayerGraph(parse_cfg(bundled_cfg(model_name)))
    cloud = derive_profile(edge, 20.0, "cloud: this host x20")
    fog = derive_profile(edge, 4.0, "fog: this host x4")
    two = CostModel(graph, edge, cloud, payload_bytes_fn=fit)
    three = CostModel(graph, edge, cloud, payload_bytes_fn=fit, fog_profile=fog, fog_codec=CODEC)
    return two, three, {"edge_profile": str(edge_path), "payload_fit": str(fit_path),
                        "edge_full_pass_ms": edge.measurement.get("full_pass_ms_median"),
                        "weights": fit.model.get("weights")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="yolov3-tiny,yolov3")
    parser.add_argument("--states", type=int, default=400)
    parser.add_argument("--frames", type=int, default=200, help="real frames for the complexity timing")
    parser.add_argument("--fit-frames", type=int, default=12, help="real frames per payload fit (if not cached)")
    args = parser.parse_args()

    frames = sample_frames(args.frames)
    meter = ComplexityMeter()
    complexity_samples = timed_us(meter.measure, frames, warmup=5)
    meter.reset()
    complexities = [meter.measure(frame).complexity for frame in frames]
    rng = np.random.default_rng(0)
    states = [SystemState(bandwidth_mbps=float(10 ** rng.uniform(0, 2)), rtt_ms=float(rng.uniform(5, 50)),
                          edge_load=float(rng.uniform(0, 0.9)), edge_queue_length=int(rng.integers(0, 4)),
                          frame_complexity=complexities[i % len(complexities)]) for i in range(args.states)]
    results = {"target_median_ms": TARGET_MS, "codec": CODEC, "image_codec": IMAGE_CODEC,
               "load_average_1min_at_start": round(os.getloadavg()[0], 2),  # a shared machine inflates p95
               "complexity_us": summary(complexity_samples), "models": {}}
    print(f"ComplexityMeter.measure on {len(frames)} real {frames[0].shape[1]}x{frames[0].shape[0]} frames: "
          f"median {results['complexity_us']['median_us']:.0f} us, p95 {results['complexity_us']['p95_us']:.0f} us")

    for model_name in args.models.split(","):
        two, three, info = cost_models(model_name, args.fit_frames)
        settings = {"codec": CODEC, "image_codec": IMAGE_CODEC, "frame_interval_ms": FRAME_INTERVAL_MS}
        policies = {name: make_policy(name, two, **settings)
                    for name in ("greedy", "dnnsplit", "dads", "heuristic", "score")}
        policies["dads (networkx min-cut reference)"] = DadsPolicy(two, FRAME_INTERVAL_MS, "auto", CODEC, IMAGE_CODEC,
                                                                   method="min-cut")
        policies["score, re-evaluating every frame"] = make_policy("score", two, **settings, period_frames=1)
        policies["score three-tier, every frame"] = make_policy("score", three, **settings, period_frames=1)
        rows = {}
        print(f"\n{model_name} ({info['weights']} weights, {two.num_layers} layers)")
        print(f"{'policy':36} {'decide median us':>17} {'p95 us':>9} {'+ complexity median us':>23} {'p95 us':>9}")
        for name, policy in policies.items():
            policy.reset()
            decide = summary(timed_us(policy.decide, states))

            def per_frame(i, policy=policy):
                policy.decide(replace(states[i], frame_complexity=meter.measure(frames[i % len(frames)]).complexity))
            policy.reset()
            meter.reset()
            frame = summary(timed_us(per_frame, list(range(min(len(states), len(frames))))))
            rows[name] = {"decide": decide, "per_frame_with_complexity": frame}
            print(f"{name:36} {decide['median_us']:17.1f} {decide['p95_us']:9.1f} "
                  f"{frame['median_us']:23.1f} {frame['p95_us']:9.1f}")
        results["models"][model_name] = {**info, "policies": rows}
    results["load_average_1min_at_end"] = round(os.getloadavg()[0], 2)
    print(f"\nload average (1 min) {results['load_average_1min_at_start']} at start, "
          f"{results['load_average_1min_at_end']} at end, on {os.cpu_count()} cores")
    save("decision_cost", results)


if __name__ == "__main__":
    main()
