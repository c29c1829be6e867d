"""How well the network monitor estimates a kernel-shaped link, and what its probing costs (issue 10,
experiment 2). Needs root (l2p testbed).

    sudo python bench/testbed_estimation.py [--rates 2,5,10,20,50] [--settle-s 10] [--window-s 10]
    sudo python bench/testbed_estimation.py --edge-cpu-quota 0.3 --edge-hogs 3 --rates 1,2,5,10 --name ...

The network monitor runs in the edge namespace (inside ``--edge-cpu-quota`` if given, beside
``--edge-hogs`` busy processes: an edge whose CPU the monitor must share) and a probe echo in the
cloud namespace; no frames flow, so every estimate comes from the monitor's own probes.
For each rate, shaped on the edge -> cloud direction: after ``--settle-s``, over ``--window-s``, the
median relative error of the published estimate against the shaped rate, and the uplink bytes
(probes and discovery) as a share of that rate. Targets: <= 15% median error, <= 5% of the link.
Writes bench/results/testbed_estimation.json.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import require_testbed, save  # noqa: E402

from l2p_ros.nodes.launcher import NodeSet, prepared_parameters  # noqa: E402
from l2p_ros.testbed import network  # noqa: E402
from l2p_ros.testbed.events import CpuHog  # noqa: E402
from l2p_ros.testbed.live_run import inside_namespace  # noqa: E402
from l2p_ros.testbed.placement import TierPlacement  # noqa: E402
from l2p_ros.testbed.shaping import set_rate  # noqa: E402

PREFIX = "l2pb"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rates", default="2,5,10,20,50", help="Mbit/s, comma-separated")
    parser.add_argument("--settle-s", type=float, default=10.0)
    parser.add_argument("--window-s", type=float, default=10.0)
    parser.add_argument("--edge-cpu-quota", type=float, default=None)
    parser.add_argument("--edge-hogs", type=int, default=0, help="busy processes beside the monitor in the edge")
    parser.add_argument("--name", default="testbed_estimation", help="result file name under bench/results")
    parser.add_argument("--print-states", action="store_true", help="print every NetworkState (time, Mbit/s)")
    args = parser.parse_args()
    require_testbed()
    rates = [float(rate) for rate in args.rates.split(",")]
    network.down(PREFIX, log=lambda *_: None)
    layout = network.up(prefix=PREFIX, edge_cpu_quota=args.edge_cpu_quota)
    edge, cloud = TierPlacement(layout, "edge"), TierPlacement(layout, "cloud")
    link = layout.uplink
    rows = []
    scope = contextlib.ExitStack()
    try:
        params = prepared_parameters(None, {})
        work_dir = Path(tempfile.mkdtemp(prefix="l2p-estimation-"))
        nodes = NodeSet({"network_monitor_node": params["network_monitor_node"]}, work_dir,
                        placements={"network_monitor_node": edge, "probe_echo_node": cloud})
        os.environ.update(edge.env())
        scope.enter_context(inside_namespace(edge.namespace))  # this process observes from the edge
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node

        from l2p_msgs.msg import NetworkState
        from l2p_ros.nodes.common import STATE_QOS

        rclpy.init()
        observer = Node("l2p_estimation_observer")
        states: list[tuple[float, float, bool]] = []
        lock = threading.Lock()

        def on_state(msg) -> None:
            with lock:
                states.append((time.monotonic(), msg.bandwidth_mbps, msg.link_up))

        observer.create_subscription(NetworkState, "l2p/network_state", on_state, STATE_QOS)
        executor = SingleThreadedExecutor()
        executor.add_node(observer)
        spinner = threading.Thread(target=executor.spin, daemon=True)
        spinner.start()
        hogs = [CpuHog(edge) for _ in range(args.edge_hogs)]
        for hog in hogs:
            hog.start()
            scope.callback(hog.stop)
        with nodes:
            nodes.start("probe_echo_node", executable="probe_echo")
            nodes.start("network_monitor_node")
            for rate in rates:
                set_rate(layout, link.name, rate, ("up",))
                time.sleep(args.settle_s)
                before = network.interface_counters(layout.namespace(link.a), link.a_ifname)
                start = time.monotonic()
                time.sleep(args.window_s)
                after = network.interface_counters(layout.namespace(link.a), link.a_ifname)
                elapsed = time.monotonic() - start
                with lock:
                    window = [(bw, up) for t, bw, up in states if t >= start]
                estimates = [bw for bw, up in window if up and bw == bw]  # NaN before any sample
                errors = [abs(bw - rate) / rate for bw in estimates]
                share = (after["tx_bytes"] - before["tx_bytes"]) * 8 / (rate * 1e6 * elapsed)
                row = {"rate_mbit": rate, "states": len(window), "link_up_share": sum(up for _, up in window) / max(len(window), 1),
                       "estimate_median_mbps": statistics.median(estimates) if estimates else None,
                       "error_median": statistics.median(errors) if errors else None,
                       "error_p90": sorted(errors)[int(0.9 * (len(errors) - 1))] if errors else None,
                       "probe_share_of_link": share}
                rows.append(row)
                print(f"{rate:6g} Mbit/s: estimate {row['estimate_median_mbps']} Mbit/s median, error "
                      f"{row['error_median']} (p90 {row['error_p90']}), link up {row['link_up_share']:.2f}, "
                      f"probing {share:.3f} of the link", flush=True)
        executor.shutdown()
        observer.destroy_node()
        rclpy.shutdown()
    finally:
        scope.close()
        network.down(PREFIX)
    if args.print_states:
        first = states[0][0] if states else 0.0
        for t, bw, up in states:
            print(f"  {t - first:7.2f} s  {bw:8.3f} Mbit/s  {'up' if up else 'DOWN'}")
    save(args.name, {"command": " ".join(sys.argv), "edge_cpu_quota": args.edge_cpu_quota, "edge_hogs": args.edge_hogs,
                     "settle_s": args.settle_s, "window_s": args.window_s, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
