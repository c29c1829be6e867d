"""Adaptation on a real shaped link (issue 10, experiment 1). Needs root (l2p testbed).

    sudo python bench/testbed_step.py [--policies greedy] [--phase-s 20] [--edge-cpu-quota 0.3] \
        [--slow-mbit 1] [--bottlenecks sample-scenes] [--no-calibrate-edge] [--link-rtt smoothed|floor] [--link-arrivals measured] [--tag TAG]

The uplink steps 40 -> 1 -> 40 Mbit/s (``--phase-s`` each) while the pipeline runs across the
testbed on the sample video at 10 frames/s, the edge held to ``--edge-cpu-quota`` of a core (at 0.3
its full pass takes ~150 ms against the cloud's ~45 ms: offloading wins on the fast link, the edge
on the slow one). Per policy: time to adapt after each step (change to the first frame decided for
the new phase's cut), frames unaccounted and dropped with their reasons, latency per phase, and the
simulator's prediction for the same trace. ``--bottlenecks`` offers learned bottlenecks beside the
cuts (interior splits a slow link can favour; the prediction offers them too). Writes
bench/results/testbed_step_<policy>[_bn-NAME][_TAG].json and docs/testbed_step_<policy>[...].png;
with edge-only and cloud-only among the policies also bench/results/<name>_prediction.json
(bench/testbed_prediction.py: the prediction calibrated on them).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import require_testbed, save, write_rate_trace  # noqa: E402
from testbed_prediction import calibrated_table, load_runs  # noqa: E402

from l2p_ros.monitoring.edge_speed import DEFAULT_CALIBRATE_EDGE  # noqa: E402
from l2p_ros.monitoring.link_arrivals import DEFAULT_LINK_ARRIVALS, LINK_ARRIVAL_MODES  # noqa: E402
from l2p_ros.monitoring.link_backlog import DEFAULT_LINK_BACKLOG, LINK_BACKLOG_MODES  # noqa: E402
from l2p_ros.monitoring.uplink_rtt import DEFAULT_LINK_RTT, LINK_RTT_MODES  # noqa: E402
from l2p_ros.testbed.analysis import phases  # noqa: E402
from l2p_ros.testbed.live_run import run_on_trace  # noqa: E402
from l2p_ros.testbed.plots import plot_run  # noqa: E402

DOCS = Path(__file__).resolve().parents[1] / "docs"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--policies", default="greedy")
    parser.add_argument("--phase-s", type=float, default=20.0)
    parser.add_argument("--fast-mbit", type=float, default=40.0)
    parser.add_argument("--slow-mbit", type=float, default=1.0)
    parser.add_argument("--edge-cpu-quota", type=float, default=0.3)
    parser.add_argument("--cpu-scope", choices=("host", "limit"), default="host",
                        help="the load monitor's cpu_scope: 'limit' reads the edge's load against its quota")
    parser.add_argument("--name", default="testbed_policies", help="result name of a multi-policy run")
    parser.add_argument("--tag", default="", help="appended to each run's result and plot names (keeps earlier runs')")
    parser.add_argument("--calibrate-edge", action=argparse.BooleanOptionalAction, default=DEFAULT_CALIBRATE_EDGE,
                        help="the partitioner's calibrate_edge (default on, as the pipeline's): its edge "
                             "predictions scaled by the edge's measured times (docs/testbed.md, experiment 8)")
    parser.add_argument("--link-rtt", choices=LINK_RTT_MODES, default=DEFAULT_LINK_RTT,
                        help="the partitioner's link_rtt (default own-queue, as the pipeline's): 'floor' charges "
                             "the lowest RTT of the last 10 s, without the queue the pipeline's own frames build; "
                             "'own-queue' the floor and each option the queue its own frames would build; "
                             "'smoothed' the monitor's RTT (experiments 1-8 ran so, and uncalibrated)")
    parser.add_argument("--link-arrivals", choices=LINK_ARRIVAL_MODES, default=DEFAULT_LINK_ARRIVALS,
                        help="the partitioner's link_arrivals (default measured, as the pipeline's): the own "
                             "queue's wait by Kingman with the offloaded frames' measured intervals; 'poisson' "
                             "charges M/D/1's (experiment 9 ran so)")
    parser.add_argument("--link-backlog", choices=LINK_BACKLOG_MODES, default=DEFAULT_LINK_BACKLOG,
                        help="the partitioner's link_backlog (default off, as the pipeline's): 'decided' caps each "
                             "option's own queue at the backlog the partitioner's decisions leave on the link")
    parser.add_argument("--bottlenecks", default="",
                        help="learned bottlenecks the policies may choose (comma-separated models/bottleneck/ names)")
    args = parser.parse_args()
    bottlenecks = [name.strip() for name in args.bottlenecks.split(",") if name.strip()]
    require_testbed()
    work = Path(tempfile.mkdtemp(prefix="l2p-testbed-step-"))
    trace = write_rate_trace(work / "step.csv", [(0, args.fast_mbit), (args.phase_s, args.slow_mbit),
                                                 (2 * args.phase_s, args.fast_mbit)])
    table = []
    for policy in [name.strip() for name in args.policies.split(",") if name.strip()]:
        tag = policy.replace(":", "-").replace("/", "_").removesuffix(".npz")  # ppo:models/ppo/x.npz
        tag += "" if args.cpu_scope == "host" else f"_{args.cpu_scope}_load"
        tag += "".join(f"_bn-{name}" for name in bottlenecks) + ("_calibrated" if args.calibrate_edge else "")
        tag += {"smoothed": "", "floor": "_rtt-floor", "own-queue": "_own-queue"}[args.link_rtt]
        tag += "" if args.link_arrivals == "poisson" else f"_arrivals-{args.link_arrivals}"
        tag += "" if args.link_backlog == "off" else f"_backlog-{args.link_backlog}"
        tag += f"_{args.tag}" if args.tag else ""
        results = run_on_trace(trace, policy, work / tag, edge_cpu_quota=args.edge_cpu_quota,
                               duration_s=3 * args.phase_s, prefix="l2ps", bottlenecks=bottlenecks,
                               overrides={("load_monitor_node", "cpu_scope"): args.cpu_scope,
                                          ("partitioner_node", "calibrate_edge"): args.calibrate_edge,
                                          ("partitioner_node", "link_rtt"): args.link_rtt,
                                          ("partitioner_node", "link_arrivals"): args.link_arrivals,
                                          ("partitioner_node", "link_backlog"): args.link_backlog})
        rows = phases(results)
        summary, simulated = results["summary"], results["simulated"]["summary"]
        plot_run(results, DOCS / f"testbed_step_{tag}.png",
                 title=f"{' + '.join([policy, *bottlenecks])}, edge at {args.edge_cpu_quota:g} of a core: "
                       f"uplink {args.fast_mbit:g} -> "
                       f"{args.slow_mbit:g} -> {args.fast_mbit:g} Mbit/s; {summary['unaccounted']} unaccounted, "
                       f"drops {summary['drops'] or 'none'}")
        for row in rows:
            print(json.dumps(row))
        print(f"{policy}: live mean {summary['latency_mean_ms']:.1f} ms, simulated "
              f"{simulated['latency_ms']['mean']:.1f} ms; unaccounted {summary['unaccounted']}, drops {summary['drops']}")
        table.append({"policy": policy, "bottlenecks": bottlenecks, "calibrate_edge": args.calibrate_edge,
                      "link_rtt": args.link_rtt, "link_arrivals": args.link_arrivals,
                      "link_backlog": args.link_backlog, "live_mean_ms": summary["latency_mean_ms"],
                      "live_p95_ms": summary["latency_p95_ms"], "simulated_mean_ms": simulated["latency_ms"]["mean"],
                      "simulated_p95_ms": simulated["latency_ms"]["p95"], "detected": summary["frames_detected"],
                      "dropped": summary["frames_dropped"], "unaccounted": summary["unaccounted"],
                      "adapt_s": [row["adapt_s"] for row in rows[1:]],
                      "first_move_s": [row["first_move_s"] for row in rows[1:]],
                      "settled_cuts": [row["settled_cut"] for row in rows]})
        save(f"testbed_step_{tag}", {"command": " ".join(sys.argv), "edge_cpu_quota": args.edge_cpu_quota,
                                     "cpu_scope": args.cpu_scope, "bottlenecks": bottlenecks,
                                     "calibrate_edge": args.calibrate_edge, "link_rtt": args.link_rtt,
                                     "link_arrivals": args.link_arrivals, "link_backlog": args.link_backlog,
                                        "phase_s": args.phase_s, "phases": rows, "summary": summary,
                                        "simulated_summary": simulated, "uplink_bytes": results["uplink_bytes"],
                                        "results_json": str(work / tag / "results.json")})
    if len(table) > 1:
        save(args.name, {"command": " ".join(sys.argv), "edge_cpu_quota": args.edge_cpu_quota, "cpu_scope": args.cpu_scope,
                                  "phase_s": args.phase_s, "policies": table, "work": str(work)})
        for row in table:
            print(json.dumps(row))
    runs = load_runs(work)
    if {"edge-only", "cloud-only"} <= set(runs):  # the prediction calibrated on them, for every policy
        save(f"{args.name}_prediction", {"command": f"python bench/testbed_prediction.py {work}", "work": str(work),
                                         **calibrated_table(runs)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
