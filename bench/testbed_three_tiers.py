"""Three tiers on the testbed (issue 10, experiment 4): score's two-cut decisions against fixed pairs.
Needs root (l2p testbed).

    sudo python bench/testbed_three_tiers.py [--policies score,fixed:cloud,fixed:cloud:last,fixed:edge]

Edge, fog and cloud in namespaces of their own; the edge held to ``--edge-cpu-quota`` of a core,
the fog to ``--fog-cpu-quota`` (a roadside unit: faster than the vehicle, slower than the cloud);
the edge -> fog link at ``--uplink-mbit``, the fog -> cloud backhaul stepping fast -> slow -> fast
(``--phase-s`` each). The partitioner decides on both links as measured (a second network monitor
on the fog probes the backhaul) and on the fog's profile measured inside its limit. Per policy: the
pair of cuts settled on in each backhaul phase, how soon it moved, latency per phase and overall,
frames unaccounted. Writes bench/results/testbed_three_tiers.json and docs/testbed_three_tiers_<policy>.png.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import require_testbed, save, write_rate_trace  # noqa: E402

from l2p_ros.testbed.analysis import phases  # noqa: E402
from l2p_ros.testbed.live_run import run_on_trace  # noqa: E402
from l2p_ros.testbed.plots import plot_run  # noqa: E402

DOCS = Path(__file__).resolve().parents[1] / "docs"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--policies", default="score,fixed:cloud,fixed:cloud:last,fixed:edge")
    parser.add_argument("--phase-s", type=float, default=20.0)
    parser.add_argument("--uplink-mbit", type=float, default=40.0)
    parser.add_argument("--fast-mbit", type=float, default=20.0, help="backhaul, first and last phase")
    parser.add_argument("--slow-mbit", type=float, default=1.0, help="backhaul, middle phase")
    parser.add_argument("--edge-cpu-quota", type=float, default=0.3)
    parser.add_argument("--fog-cpu-quota", type=float, default=0.6)
    args = parser.parse_args()
    require_testbed()
    work = Path(tempfile.mkdtemp(prefix="l2p-testbed-3tiers-"))
    uplink = write_rate_trace(work / "uplink.csv", [(0, args.uplink_mbit)])
    backhaul = write_rate_trace(work / "backhaul.csv", [(0, args.fast_mbit), (args.phase_s, args.slow_mbit),
                                                        (2 * args.phase_s, args.fast_mbit)])
    table = []
    for policy in [name.strip() for name in args.policies.split(",") if name.strip()]:
        tag = policy.replace(":", "-")
        results = run_on_trace(uplink, policy, work / tag, edge_cpu_quota=args.edge_cpu_quota, duration_s=3 * args.phase_s,
                               prefix="l2p3", fog=True, fog_cpu_quota=args.fog_cpu_quota, backhaul_trace=backhaul)
        rows = phases(results, link="backhaul")
        summary = results["summary"]
        plot_run(results, DOCS / f"testbed_three_tiers_{tag}.png",
                 title=f"{policy}: edge {args.edge_cpu_quota:g} core, fog {args.fog_cpu_quota:g} core;\nedge -> fog "
                       f"{args.uplink_mbit:g} Mbit/s, backhaul {args.fast_mbit:g} -> {args.slow_mbit:g} -> "
                       f"{args.fast_mbit:g}; {summary['unaccounted']} unaccounted")
        for row in rows:
            print(json.dumps(row))
        table.append({"policy": policy, "latency_mean_ms": summary["latency_mean_ms"],
                      "latency_p95_ms": summary["latency_p95_ms"], "detected": summary["frames_detected"],
                      "dropped": summary["frames_dropped"], "drops": summary["drops"],
                      "unaccounted": summary["unaccounted"], "executed_on": summary["executed_on"],
                      "phases": rows, "uplink_bytes": results["uplink_bytes"], "backhaul_bytes": results["backhaul_bytes"],
                      "profiles": {key: results["testbed"][key] for key in ("edge_profile", "fog_profile", "cloud_profile")},
                      "results_json": str(work / tag / "results.json")})
        print(f"{policy}: mean {summary['latency_mean_ms']} ms, unaccounted {summary['unaccounted']}, "
              f"executed on {summary['executed_on']}")
    save("testbed_three_tiers", {"command": " ".join(sys.argv), "edge_cpu_quota": args.edge_cpu_quota,
                                 "fog_cpu_quota": args.fog_cpu_quota, "uplink_mbit": args.uplink_mbit,
                                 "backhaul_mbit": [args.fast_mbit, args.slow_mbit, args.fast_mbit],
                                 "phase_s": args.phase_s, "policies": table})
    return 0


if __name__ == "__main__":
    sys.exit(main())
