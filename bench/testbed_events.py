"""Edge load and cloud failure on the testbed (issue 10, experiments 3 and 6). Needs root (l2p testbed).

    sudo python bench/testbed_events.py hog [--cpu-scopes host,limit] [--rate-mbit 1]
    sudo python bench/testbed_events.py outage [--rate-mbit 40]

hog: the uplink held at ``--rate-mbit``, the edge at ``--edge-cpu-quota`` of a core; from
``--phase-s`` to twice that a busy process runs inside the edge's CPU limit (it takes its share of
the quota from the pipeline, as other work on a vehicle would). Per load-monitor scope: the cut
settled on before, with and after the hog, how soon it moved, the edge load the policy decided on.

outage: the same, but the cloud node is killed (SIGKILL, as a crash) at ``--phase-s`` and started
again at twice that: how soon the edge delivers frames it finished alone, the longest time without
any result, how soon after the restart (and after the cloud said it was ready) frames are finished
in the cloud again, and frames unaccounted.

Writes bench/results/testbed_<experiment>[_<scope>].json and docs/testbed_<experiment>[_<scope>].png.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import require_testbed, save, write_rate_trace  # noqa: E402

from l2p_ros.testbed.analysis import event_phases, outage  # noqa: E402
from l2p_ros.testbed.events import Window  # noqa: E402
from l2p_ros.testbed.live_run import run_on_trace  # noqa: E402
from l2p_ros.testbed.plots import plot_run  # noqa: E402

DOCS = Path(__file__).resolve().parents[1] / "docs"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("experiment", choices=("hog", "outage"))
    parser.add_argument("--policy", default="greedy")
    parser.add_argument("--phase-s", type=float, default=20.0)
    parser.add_argument("--rate-mbit", type=float, default=None, help="uplink rate (default: hog 1, outage 40)")
    parser.add_argument("--edge-cpu-quota", type=float, default=0.3)
    parser.add_argument("--cpu-scopes", default="host,limit", help="hog: the load monitor's cpu_scope, one run each")
    args = parser.parse_args()
    require_testbed()
    rate = args.rate_mbit if args.rate_mbit is not None else (1.0 if args.experiment == "hog" else 40.0)
    work = Path(tempfile.mkdtemp(prefix=f"l2p-testbed-{args.experiment}-"))
    trace = write_rate_trace(work / "constant.csv", [(0, rate)])
    window = Window(args.phase_s, 2 * args.phase_s)
    scopes = [s.strip() for s in args.cpu_scopes.split(",")] if args.experiment == "hog" else ["host"]
    for scope in scopes:
        tag = f"testbed_{args.experiment}" + (f"_{scope}_load" if args.experiment == "hog" else "")
        results = run_on_trace(trace, args.policy, work / tag, edge_cpu_quota=args.edge_cpu_quota,
                               duration_s=3 * args.phase_s, prefix="l2pe",
                               overrides={("load_monitor_node", "cpu_scope"): scope},
                               edge_hog=window if args.experiment == "hog" else None,
                               cloud_outage=window if args.experiment == "outage" else None)
        rows = event_phases(results)
        summary, simulated = results["summary"], results["simulated"]["summary"]
        what = (f"a busy process in the edge's limit {window.start_s:g}-{window.stop_s:g} s, load read on the {scope}"
                if args.experiment == "hog" else f"cloud node killed at {window.start_s:g} s, restarted at {window.stop_s:g} s")
        plot_run(results, DOCS / f"{tag}.png",
                 title=f"{args.policy}, edge at {args.edge_cpu_quota:g} of a core, uplink {rate:g} Mbit/s:\n{what}; "
                       f"{summary['unaccounted']} unaccounted, drops {summary['drops'] or 'none'}")
        for row in rows:
            print(json.dumps(row))
        record = {"command": " ".join(sys.argv), "policy": args.policy, "rate_mbit": rate,
                  "edge_cpu_quota": args.edge_cpu_quota, "cpu_scope": scope, "events": results["events"],
                  "phases": rows, "summary": summary, "simulated_summary": simulated,
                  "results_json": str(work / tag / "results.json")}
        if args.experiment == "outage":
            record["outage"] = outage(results)
            print(json.dumps(record["outage"]))
        print(f"{tag}: unaccounted {summary['unaccounted']}, drops {summary['drops']}, "
              f"executed on {summary['executed_on']}")
        save(tag, record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
