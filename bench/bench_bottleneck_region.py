"""Where are interior cuts chosen? A sweep of the link's bandwidth and the edge's speed, with and
without a learned bottleneck, in the simulator.

    python bench/bench_bottleneck_region.py [--bandwidths 0.5,1,2,5,10,20,50] [--edge-speed-factors 0.25,1]
                                            [--minutes 5] [--bottleneck vtest-street[,sample-scenes+ctx,...]]
                                            [--policies greedy,oracle] [--link-rtt own-queue] [--calibrate-edge]
                                            [--link-arrivals measured] [--link-backlog decided]

The link is held constant (RTT 20 ms, no edge load) so each row answers one question: at this
bandwidth, on this edge, which partitions do greedy and the oracle choose, and what does the
bottleneck change in mean latency and edge energy. Everything else is the l2p-paper world: the
committed CPU profile (derived for the edge speed, labelled derived), the cloud derived at 20x,
the paper's alternating scenes of real frames (the committed video table), network-resolution JPEG
q75 for image offload and int8-channel+zstd for tensor cuts, the committed frame costs (the
bottleneck's encoder and decoder included). Simulated (trace-driven). Several bottlenecks (comma
separated; ``NAME+ctx``: its codes range-coded) are each run alone beside no bottleneck, then all
together, the policies choosing among them. ``--link-rtt``, ``--calibrate-edge``, ``--link-arrivals``
and ``--link-backlog`` give the policies the partitioner's view of the link and the edge of those
names (the live defaults are ``own-queue``, calibrated, measured arrivals and no backlog; without them, the
simulator's as every row in docs/ before stop 34);
``--live-edge`` plays the vehicle as the live edge node schedules frames (the latest frame wins)
instead of a FIFO of up to three frames.
Writes bench/results/bottleneck_region_yolov3-tiny.json (other ``--bottleneck``: ..._<names joined
by _>.json; a view other than the simulator's default adds _<link-rtt>[_calibrated][_arrivals-measured]
[_backlog-decided],
and --live-edge _live-edge, --tag _TAG).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import COMMITTED_EDGE_PROFILE, ROOT, interior_share, save, use_committed_video_table  # noqa: E402

from l2p_ros.monitoring.link_arrivals import LINK_ARRIVAL_MODES  # noqa: E402
from l2p_ros.monitoring.link_backlog import LINK_BACKLOG_MODES  # noqa: E402
from l2p_ros.monitoring.uplink_rtt import LINK_RTT_MODES  # noqa: E402
from l2p_ros.simulation.evaluation import evaluate  # noqa: E402
from l2p_ros.simulation.scenarios import trace_scenario  # noqa: E402
from l2p_ros.simulation.world import build_world  # noqa: E402

EDGE_PROFILE = ROOT / COMMITTED_EDGE_PROFILE
POLICIES = "greedy,oracle"


def floats(text: str) -> list[float]:
    return [float(part) for part in text.split(",") if part.strip()]


def constant_trace(directory: Path, bandwidth_mbps: float, minutes: float) -> Path:
    path = directory / f"constant-{bandwidth_mbps:g}mbps.csv"
    path.write_text(f"time_s,bandwidth_mbps,rtt_ms,edge_load\n0,{bandwidth_mbps},20,0\n"
                    f"{minutes * 60},{bandwidth_mbps},20,0\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bandwidths", type=floats, default=floats("0.5,1,2,5,10,20,50"))
    parser.add_argument("--edge-speed-factors", type=floats, default=floats("0.25,1"))
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--bottleneck", default="vtest-street", help="names, comma separated")
    parser.add_argument("--policies", default=POLICIES, help=f"comma separated (default {POLICIES})")
    parser.add_argument("--link-rtt", choices=LINK_RTT_MODES, default="smoothed")
    parser.add_argument("--calibrate-edge", action="store_true")
    parser.add_argument("--link-arrivals", choices=LINK_ARRIVAL_MODES, default="poisson",
                        help="with --link-rtt own-queue: 'measured' (the live default) charges Kingman's wait with "
                             "the measured arrivals")
    parser.add_argument("--link-backlog", choices=LINK_BACKLOG_MODES, default="off",
                        help="with --link-rtt own-queue: 'decided' caps each option's own queue at the backlog the "
                             "partitioner's decisions leave on the link now")
    parser.add_argument("--tag", default="", help="appended to the results' name (keeps another run's file)")
    parser.add_argument("--live-edge", action="store_true",
                        help="the vehicle as the live edge node schedules frames (latest frame wins), not a FIFO")
    args = parser.parse_args()
    policies = [name.strip() for name in args.policies.split(",") if name.strip()]
    view = {"link_rtt": args.link_rtt, "calibrate_edge": args.calibrate_edge, "live_edge": args.live_edge,
            "link_arrivals": args.link_arrivals, "link_backlog": args.link_backlog}
    use_committed_video_table()
    traces = tempfile.TemporaryDirectory(prefix="l2p-region-")  # removed when the bench ends
    directory = Path(traces.name)
    rows = []
    print(f"{'edge x':>6} {'Mbit/s':>7} {'bn':>3} | " + " | ".join(
        f"{name[:9] + ' ms':>12} {'J':>6} {'interior %':>10} {'frames':>6}" for name in policies))
    names = [name.strip() for name in args.bottleneck.split(",") if name.strip()]
    choices = [(), *((name,) for name in names), *([tuple(names)] if len(names) > 1 else [])]
    for factor in args.edge_speed_factors:
        for bottlenecks in choices:
            with_bottleneck = bool(bottlenecks)
            world = build_world("yolov3-tiny", edge_profile=EDGE_PROFILE, edge_speed_factor=factor,
                                bottlenecks=bottlenecks, log=lambda *a: None)
            for bandwidth in args.bandwidths:
                scenario = trace_scenario(constant_trace(directory, bandwidth, args.minutes))
                evaluation = evaluate(scenario, "yolov3-tiny", policies, args.minutes, 0, world=world,
                                      simulation_options=view, progress=False, log=lambda *a: None)
                row = {"edge_speed_factor": factor, "bandwidth_mbps": bandwidth, "bottleneck": with_bottleneck,
                       "bottlenecks": list(bottlenecks)}
                for name in policies:
                    summary = evaluation.runs[name].summary
                    cuts = summary["cut_histogram"]
                    row[name] = {"latency_ms_mean": round(summary["latency_ms"]["mean"], 2),
                                 "edge_energy_j": round(summary["edge_energy_j_per_frame"], 4),
                                 "interior_share": round(interior_share(cuts), 4), "cuts": cuts,
                                 "codecs": summary["codec_histogram"], "processed_frames": summary["processed_frames"]}
                rows.append(row)
                print(f"{factor:6g} {bandwidth:7g} {'+'.join(bottlenecks) or 'no':>3} | " + " | ".join(
                    f"{row[name]['latency_ms_mean']:12.1f} {row[name]['edge_energy_j']:6.3f} "
                    f"{100 * row[name]['interior_share']:9.1f}% {row[name]['processed_frames']:6d}" for name in policies),
                    flush=True)
    suffix = "" if names == ["vtest-street"] else "_" + "_".join(names)
    if args.link_rtt != "smoothed" or args.calibrate_edge:
        suffix += f"_{args.link_rtt}" + ("_calibrated" if args.calibrate_edge else "")
    suffix += "_arrivals-measured" if args.link_arrivals == "measured" else ""
    suffix += "_backlog-decided" if args.link_backlog == "decided" else ""
    suffix += ("_live-edge" if args.live_edge else "") + (f"_{args.tag}" if args.tag else "")
    save(f"bottleneck_region_yolov3-tiny{suffix}", {"command": " ".join(["python", *sys.argv]), "rows": rows,
                                           "simulated": True, "partitioner_view": view})


if __name__ == "__main__":
    main()
