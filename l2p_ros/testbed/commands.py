"""The ``l2p testbed`` subcommands: up, down, status, shape, run."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from l2p_ros.testbed.layout import PREFIX


def _quota(text: str) -> float:
    value = float(text)
    if not 0.05 <= value <= 64:
        raise argparse.ArgumentTypeError(f"{text}: a share of one core between 0.05 and 64")
    return value


def _rtt(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 10_000:
        raise argparse.ArgumentTypeError(f"{text}: RTT ms must be between 0 and 10000 (0 removes the delay)")
    return value


def _rate(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text}: Mbit/s must be >= 0 (0 takes the link down)")
    return value


def cmd_up(args) -> int:
    from l2p_ros.testbed import network

    if args.fog_cpu_quota is not None and not args.fog:
        raise SystemExit("--fog-cpu-quota needs --fog")
    layout = network.up(fog=args.fog, prefix=args.prefix, edge_cpu_quota=args.edge_cpu_quota,
                        fog_cpu_quota=args.fog_cpu_quota)
    if args.rate_mbit is not None:
        from l2p_ros.testbed.shaping import set_rate

        for link in layout.links:
            set_rate(layout, link.name, args.rate_mbit)
    if args.rtt_ms:
        from l2p_ros.testbed.delay import set_delay

        for link in layout.links:
            set_delay(layout, link.name, args.rtt_ms)
    return 0


def cmd_down(args) -> int:
    from l2p_ros.testbed import network

    network.down(args.prefix)
    return 0


def cmd_status(args) -> int:
    from l2p_ros.testbed import network

    state = network.status(args.prefix)
    if args.json or not state["up"]:
        print(json.dumps(state, indent=1))
        return 0 if state["up"] else 1
    quotas = "; ".join(f"{tier} CPU quota {state[f'{tier}_cpu_quota'] if state[f'{tier}_cpu_quota'] is not None else 'none'}"
                       for tier in ("edge", "fog") if f"{state['prefix']}-{tier}" in state["namespaces"])
    print(f"testbed '{state['prefix']}': {', '.join(state['namespaces'])}; {quotas}")
    for name, ends in state["links"].items():
        for direction, end in ends.items():
            rate = end["rate_mbit"]
            print(f"  {name:<10} {direction:<4} {end['interface']:<9} {end['address']:<12} "
                  f"{'unshaped' if rate is None else f'{rate:g} Mbit/s'}  tx {end['tx_bytes']} B  rx {end['rx_bytes']} B")
        rtt = state["rtt_ms"].get(name)
        print(f"  {name:<10} RTT added: {'none' if rtt is None else f'{rtt:g} ms'}")
    return 0


def cmd_shape(args) -> int:
    from l2p_ros.testbed import network
    from l2p_ros.testbed.shaping import DIRECTIONS, TraceReplay, set_rate

    layout = network.load_layout(args.prefix)
    link = args.link or layout.uplink.name
    if args.rtt_ms is not None:
        from l2p_ros.testbed.delay import set_delay

        set_delay(layout, link, args.rtt_ms)
        if args.rate_mbit is None and args.trace is None and not args.unshaped:
            return 0
    elif args.rate_mbit is None and args.trace is None and not args.unshaped:
        raise SystemExit("shape: give --rate-mbit, --trace, --unshaped or --rtt-ms")
    directions = DIRECTIONS if args.direction == "both" else (args.direction,)
    if args.trace is None:
        set_rate(layout, link, None if args.unshaped else args.rate_mbit, directions)
        return 0
    from l2p_ros.simulation.traces import load_trace

    trace = load_trace(args.trace)
    replay = TraceReplay(layout, link, trace.time_s, trace.bandwidth_mbps, directions).start()
    print(f"replaying {args.trace} on {link} ({', '.join(directions)}): {len(trace)} samples over "
          f"{trace.duration_s:g} s; Ctrl-C stops", file=sys.stderr)
    try:
        while len(replay.applied) < len(trace) and replay.error is None:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        replay.stop()
    if replay.error is not None:
        raise replay.error
    for at_s, rate in replay.applied:
        print(f"{at_s:8.3f} s  {rate:g} Mbit/s")
    return 0


def _window(text: str):
    from l2p_ros.testbed.events import Window

    try:
        return Window.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def cmd_run(args) -> int:
    from l2p_ros.nodes.pipeline_run import print_summary
    from l2p_ros.testbed.live_run import run_on_trace

    if (args.fog_cpu_quota is not None or args.backhaul_trace is not None) and not args.fog:
        raise SystemExit("--fog-cpu-quota and --backhaul-trace need --fog")
    overrides = {("load_monitor_node", "cpu_scope"): args.cpu_scope} if args.cpu_scope else None
    results = run_on_trace(args.trace, args.policy, args.out, source=args.source, edge_cpu_quota=args.edge_cpu_quota,
                           rtt_ms=args.rtt_ms,
                           rate_hz=args.rate_hz, duration_s=args.duration_s, model=args.model, config=args.config,
                           prefix=args.prefix, print_frames=not args.quiet, overrides=overrides,
                           edge_hog=args.edge_hog, cloud_outage=args.cloud_outage, fog=args.fog,
                           fog_cpu_quota=args.fog_cpu_quota, backhaul_trace=args.backhaul_trace,
                           bottlenecks=args.bottlenecks)
    print_summary(results["summary"])
    print(f"wrote {Path(args.out) / 'results.json'}")
    return 0


def add_testbed_parser(sub) -> None:
    p = sub.add_parser("testbed", help="edge, fog and cloud in network namespaces on a kernel-shaped link (root)")
    tsub = p.add_subparsers(dest="testbed_command", required=True)

    def with_prefix(parser):
        parser.add_argument("--prefix", default=PREFIX, help=f"names of the namespaces: PREFIX-edge, ... (default {PREFIX})")
        return parser

    q = with_prefix(tsub.add_parser("up", help="make the namespaces, links, DDS profiles and CPU limit"))
    q.add_argument("--fog", action="store_true", help="three tiers: edge - fog - cloud")
    q.add_argument("--edge-cpu-quota", type=_quota, default=None, help="limit every edge-side process to this share of a core")
    q.add_argument("--fog-cpu-quota", type=_quota, default=None, help="with --fog: limit the fog's processes likewise")
    q.add_argument("--rate-mbit", type=_rate, default=None, help="shape every link, both directions, to this rate")
    q.add_argument("--rtt-ms", type=_rtt, default=None, help="add this round-trip delay on every link (delay lines)")
    q.set_defaults(func=cmd_up)
    q = with_prefix(tsub.add_parser("down", help="remove everything the testbed made (also after a crash)"))
    q.set_defaults(func=cmd_down)
    q = with_prefix(tsub.add_parser("status", help="namespaces, link rates and counters, CPU limit"))
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_status)
    q = with_prefix(tsub.add_parser("shape", help="set a link's rate, or replay a bandwidth trace on it in real time"))
    q.add_argument("--link", default=None, help="e.g. edge-cloud, edge-fog, fog-cloud (default: the edge's uplink)")
    q.add_argument("--direction", choices=("up", "down", "both"), default="up",
                   help="up: towards the cloud (default); down: towards the edge")
    q.add_argument("--rtt-ms", type=_rtt, default=None,
                   help="round-trip delay added on the link, half each way (0 removes it); with or without a rate")
    group = q.add_mutually_exclusive_group()
    group.add_argument("--rate-mbit", type=_rate, help="Mbit/s (0 takes the link down)")
    group.add_argument("--trace", type=Path, help="CSV trace (time_s,bandwidth_mbps,...) played in real time")
    group.add_argument("--unshaped", action="store_true", help="remove the shaping")
    q.set_defaults(func=cmd_shape)
    q = with_prefix(tsub.add_parser("run", help="the pipeline across the testbed on a bandwidth trace"))
    q.add_argument("--trace", type=Path, required=True, help="CSV trace played on the edge -> cloud link")
    q.add_argument("--policy", required=True, help="partitioning policy")
    q.add_argument("--source", default=None, help="video, image folder or bag (default: the sample video, looped)")
    q.add_argument("--edge-cpu-quota", type=_quota, default=None,
                   help="share of one core for every edge-side process (default: the testbed's, or none)")
    q.add_argument("--rate-hz", type=float, default=10.0, help="camera rate (default 10)")
    q.add_argument("--duration-s", type=float, default=None,
                   help="run length (default: the trace's last sample + 10 s)")
    q.add_argument("--rtt-ms", type=_rtt, default=None, help="round-trip delay added on the edge's uplink")
    q.add_argument("--fog", action="store_true",
                   help="three tiers: --trace plays on the edge -> fog link, a fog node runs between edge and cloud")
    q.add_argument("--fog-cpu-quota", type=_quota, default=None, help="with --fog: share of one core for the fog")
    q.add_argument("--backhaul-trace", type=Path, default=None,
                   help="with --fog: CSV trace played on the fog -> cloud link (default: unshaped)")
    q.add_argument("--edge-hog", type=_window, default=None, metavar="START:STOP",
                   help="a busy process inside the edge's CPU limit from START to STOP s of the trace")
    q.add_argument("--cloud-outage", type=_window, default=None, metavar="START:STOP",
                   help="kill the cloud node at START s of the trace (as a crash would) and start it again at STOP")
    q.add_argument("--cpu-scope", choices=("host", "limit"), default=None,
                   help="the load monitor's cpu_scope (default: the parameter file's); 'limit' sees a hog in the edge")
    q.add_argument("--bottlenecks", nargs="*", default=(), metavar="NAME",
                   help="learned bottlenecks the policy may choose, each at its own cut (models/bottleneck/ names "
                        "or paths; NAME+ctx: its codes range-coded)")
    q.add_argument("--model", default="yolov3-tiny")
    q.add_argument("--config", type=Path, default=None, help="parameter YAML (default: config/pipeline.yaml)")
    q.add_argument("--quiet", action="store_true", help="no per-frame lines")
    q.add_argument("--out", type=Path, required=True, help="folder for results.json, the bag and the plots")
    q.set_defaults(func=cmd_run)
