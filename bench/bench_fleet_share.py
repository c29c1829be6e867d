"""When a fleet shares one cloud GPU: how the cloud's batching and the number of vehicles move the
policies' choices and latency (simulated; issue 12 item 3).

    python bench/bench_fleet_share.py --vehicles 1,32,64,96,128,192 --batches 1,32 --minutes 1

Every run: the paper's scenario, the committed H200 cloud profile and its measured batch curves
(models/profiles/cloud-batching-yolov3-tiny-416-cuda-h200.yaml), the committed CPU edge profile at
``--edge-speed-factor`` (0.25: Jetson-class), ``fps`` frames a second per vehicle. The simulator
plays the other vehicles as the simulated one's peers (l2p_ros/simulation/fleet_cloud.py) and the
policies' cost model knows the fleet (l2p_ros/policies/cloud_batching.py). Prints a table and
saves bench/results/fleet_share_<frame costs>.json.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from l2p_ros.policies.cloud_batching import CloudBatching, CloudShare  # noqa: E402
from l2p_ros.simulation.evaluation import evaluate  # noqa: E402
from l2p_ros.simulation.world import build_world  # noqa: E402

PROFILES = ROOT / "models" / "profiles"
POLICIES = ["edge-only", "cloud-only", "greedy", "dads", "oracle"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vehicles", default="1,32,64,96,128,192")
    parser.add_argument("--batches", default="1,32")
    parser.add_argument("--minutes", type=float, default=1.0)
    parser.add_argument("--fps", type=float, default=10.0)
    parser.add_argument("--edge-speed-factor", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frame-costs", default="none", metavar="committed|none",
                        help="none (default): the simulator charges what the policies know, so the fleet's effect "
                             "is seen alone; committed: also the measured decode times, which the policies' cost "
                             "model does not know")
    parser.add_argument("--out", type=Path, default=None, help="default bench/results/fleet_share_<frame costs>.json")
    args = parser.parse_args()
    args.out = args.out or ROOT / "bench" / "results" / f"fleet_share_{args.frame_costs}.json"
    batching = CloudBatching.load(PROFILES / "cloud-batching-yolov3-tiny-416-cuda-h200.yaml")
    world = build_world("yolov3-tiny", edge_profile=PROFILES / "yolov3-tiny-416-cpu-t1-vm-2core.yaml",
                        cloud_profile=PROFILES / "yolov3-tiny-416-cuda-h200.yaml",
                        edge_speed_factor=args.edge_speed_factor, log=lambda *a: None)
    rows = []
    print(f"{'vehicles':>8} {'batch':>5} " + " ".join(f"{name:>12}" for name in POLICIES) + "   greedy on cloud")
    for vehicles in map(int, args.vehicles.split(",")):
        for max_batch in map(int, args.batches.split(",")):
            fleet = CloudShare(vehicles, args.fps, max_batch, batching)
            evaluation = evaluate("l2p-paper", policies=POLICIES, minutes=args.minutes, seed=args.seed, world=world,
                                  fps=args.fps, fleet=fleet, hindsight_s=0, progress=False, log=lambda *a: None,
                                  frame_costs=None if args.frame_costs == "none" else args.frame_costs)
            means = {name: evaluation.runs[name].summary["latency_ms"]["mean"] for name in POLICIES}
            greedy = evaluation.runs["greedy"].summary
            on_cloud = 1.0 - greedy["cut_histogram"].get("edge", 0) / max(greedy["processed_frames"], 1)
            rows.append({"vehicles": vehicles, "max_batch": max_batch, "mean_ms": means,
                         "p95_ms": {name: evaluation.runs[name].summary["latency_ms"]["p95"] for name in POLICIES},
                         "skipped": {name: evaluation.runs[name].summary["skipped_frames"] for name in POLICIES},
                         "greedy_cut_histogram": greedy["cut_histogram"], "greedy_offloaded_share": on_cloud})
            print(f"{vehicles:>8} {max_batch:>5} " + " ".join(f"{means[name]:>12.1f}" for name in POLICIES)
                  + f"   {100 * on_cloud:5.1f}%")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"command": " ".join(sys.argv), "fps": args.fps, "minutes": args.minutes,
                                    "frame_costs": args.frame_costs,
                                    "edge_speed_factor": args.edge_speed_factor, "seed": args.seed,
                                    "batching": {"machine": batching.machine, "source": batching.source},
                                    "sources": evaluation.meta["sources"], "rows": rows}, indent=1, default=str))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
