"""Where does "adaptive partitioning is >= 25% below static optimal" hold? A sweep of the edge's speed.

    python bench/bench_claim_region.py [--edge-speed-factors 0.125,0.25,0.5,1,2] [--seeds 0,1,2,3]
                                       [--minutes 30] [--scenario l2p-paper] [--edge-profile FILE]

How much any adaptive policy can gain over a static split depends on how close the edge's compute
time is to the cost of offloading, so this sweeps the edge's speed: profiles derived from the
committed profile measured on the project's VM (labelled derived; the cloud stays derived at 20x
the measured profile), the committed video table and frame costs, today's defaults (images at
network resolution). Per edge and seed: static optimal, the best fixed candidate in hindsight,
greedy (the cost-model policy), the oracle (myopic, with the true state) and the lower bound (no
policy is below it on any frame). Simulated (trace-driven).
Writes bench/results/claim_region_<scenario>.json.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import COMMITTED_EDGE_PROFILE, ROOT, save, use_committed_video_table  # noqa: E402

from l2p_ros.simulation.evaluation import evaluate  # noqa: E402
from l2p_ros.simulation.world import build_world  # noqa: E402

POLICIES = ["static-optimal", "best-fixed", "greedy", "oracle"]


def floats(text: str) -> list[float]:
    return [float(part) for part in text.split(",") if part.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--edge-speed-factors", type=floats, default=floats("0.125,0.25,0.5,1,2"))
    parser.add_argument("--seeds", type=lambda text: [int(s) for s in text.split(",")], default=[0, 1, 2, 3])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--scenario", default="l2p-paper")
    parser.add_argument("--model", default="yolov3-tiny")
    parser.add_argument("--edge-profile", type=Path, default=ROOT / COMMITTED_EDGE_PROFILE,
                        help="the measured profile the edges are derived from (default: the committed one)")
    args = parser.parse_args()
    use_committed_video_table()

    rows = []
    print(f"{'edge x':>7} {'edge ms':>8} {'seed':>4} {'static':>16} {'best-fixed':>16} {'greedy':>8} "
          f"{'oracle':>8} {'bound':>8} {'greedy vs static':>17} {'oracle vs static':>16}")
    for factor in args.edge_speed_factors:
        world = build_world(args.model, edge_profile=args.edge_profile, edge_speed_factor=factor,
                            log=lambda *a: None)
        for seed in args.seeds:
            started = time.perf_counter()
            evaluation = evaluate(args.scenario, args.model, POLICIES, args.minutes, seed, world=world,
                                  progress=False, log=lambda *a: None)
            runs = evaluation.runs

            def mean(name):
                return runs[name].summary["latency_ms"]["mean"]

            def top_cut(name):
                return next(iter(runs[name].summary["cut_histogram"]))

            row = {"edge_speed_factor": factor, "edge_full_pass_ms": round(world.edge_profile.total_ms, 2),
                   "seed": seed, "static_optimal_cut": top_cut("static-optimal"),
                   "best_fixed_cut": top_cut("best-fixed"),
                   **{f"{name}_mean_ms": round(mean(name), 2) for name in POLICIES},
                   **{f"{name}_std_ms": round(runs[name].summary["latency_ms"]["std"], 2) for name in POLICIES},
                   **{f"{name}_improvement_over_static_pct":
                      round(runs[name].summary["improvement_over_static_optimal_pct"], 1)
                      for name in ("best-fixed", "greedy", "oracle")},
                   "lower_bound_mean_ms": round(evaluation.meta["lower_bound"]["mean_ms"], 2),
                   "lower_bound_improvement_over_static_pct":
                       round(100 * (1 - evaluation.meta["lower_bound"]["mean_ms"] / mean("static-optimal")), 1),
                   "frame_costs": evaluation.meta["sources"]["frame_costs"].get("file"),
                   "image_codec": evaluation.meta["scenario"]["image_codec"],
                   "wall_s": round(time.perf_counter() - started, 1)}
            rows.append(row)
            print(f"{factor:>7g} {row['edge_full_pass_ms']:>8.1f} {seed:>4} "
                  f"{row['static-optimal_mean_ms']:>7.1f} ({row['static_optimal_cut']:>6}) "
                  f"{row['best-fixed_mean_ms']:>7.1f} ({row['best_fixed_cut']:>6}) "
                  f"{row['greedy_mean_ms']:>8.1f} {row['oracle_mean_ms']:>8.1f} {row['lower_bound_mean_ms']:>8.1f} "
                  f"{row['greedy_improvement_over_static_pct']:>16.1f}% "
                  f"{row['oracle_improvement_over_static_pct']:>15.1f}%", flush=True)
    save(f"claim_region_{args.scenario}", {
        "simulated": True, "scenario": args.scenario, "model": args.model, "minutes": args.minutes,
        "edge_profile": str(Path(args.edge_profile).resolve().relative_to(ROOT))
        if Path(args.edge_profile).resolve().is_relative_to(ROOT) else str(args.edge_profile),
        "note": "edge profiles derived from the edge profile at each speed factor; cloud derived at 20x that "
                "profile; payload bytes from real frames; committed frame costs charged",
        "command": "python bench/bench_claim_region.py " + " ".join(sys.argv[1:]),
        "rows": rows})


if __name__ == "__main__":
    main()
