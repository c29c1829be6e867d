"""FeatureMap publish-to-callback latency across two processes on the local (shared-memory) DDS profile.

    python bench/bench_feature_map_latency.py --messages 100

Target: <= 5 ms median at 1 MB on this machine. The publisher stamps each message with
its publish time (system clock, same host), the subscriber subtracts it in its callback.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import save  # noqa: E402

from l2p_ros.nodes.dds import local_dds_env, use_local_dds  # noqa: E402

PUBLISHER = r"""
import sys, time
import rclpy
from l2p_msgs.msg import CrossingTensor, FeatureMap
from l2p_ros.nodes.common import FRAME_QOS, to_time_msg
sizes = [int(s) for s in sys.argv[1].split(",")]
count, period_s = int(sys.argv[2]), float(sys.argv[3])
rclpy.init()
node = rclpy.create_node("bench_publisher")
pub = node.create_publisher(FeatureMap, "bench/feature_map", FRAME_QOS)
while pub.get_subscription_count() == 0:
    time.sleep(0.05)
time.sleep(0.5)
for size in sizes:
    data = bytes(size)
    for seq in range(count):
        msg = FeatureMap(frame_seq=seq, payload_bytes=size)
        msg.tensors = [CrossingTensor(layer_index=7, shape=[size], dtype="int8", data=data)]
        msg.timings.edge_sent = to_time_msg(time.time())
        pub.publish(msg)
        time.sleep(period_s)
time.sleep(1.0)
rclpy.shutdown()
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=100, help="messages per size")
    parser.add_argument("--sizes", default="100000,1000000,3000000", help="payload bytes, comma-separated")
    parser.add_argument("--period-s", type=float, default=0.05)
    args = parser.parse_args()
    os.environ.setdefault("ROS_DOMAIN_ID", str(101 + os.getpid() % 100))
    use_local_dds()
    import rclpy

    from l2p_msgs.msg import FeatureMap
    from l2p_ros.nodes.common import FRAME_QOS, from_time_msg

    rclpy.init()
    node = rclpy.create_node("bench_subscriber")
    latencies: dict[int, list[float]] = {}

    def on_message(msg) -> None:
        latencies.setdefault(msg.payload_bytes, []).append((time.time() - from_time_msg(msg.timings.edge_sent)) * 1e3)

    node.create_subscription(FeatureMap, "bench/feature_map", on_message, FRAME_QOS)
    sizes = [int(s) for s in args.sizes.split(",")]
    publisher = subprocess.Popen([sys.executable, "-c", PUBLISHER, args.sizes, str(args.messages), str(args.period_s)],
                                 env=local_dds_env())
    expected = len(sizes) * args.messages
    deadline = time.monotonic() + 60 + expected * args.period_s * 2
    while sum(map(len, latencies.values())) < expected and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
    publisher.wait(timeout=30)
    rows = []
    print(f"{'bytes':>10} {'received':>9} {'median ms':>10} {'p95 ms':>8}")
    for size in sizes:
        values = sorted(latencies.get(size, []))
        row = {"payload_bytes": size, "received": len(values), "sent": args.messages,
               "median_ms": statistics.median(values) if values else None,
               "p95_ms": values[int(0.95 * (len(values) - 1))] if values else None}
        rows.append(row)
        print(f"{size:>10,} {len(values):>9} {row['median_ms']:>10.2f} {row['p95_ms']:>8.2f}")
    node.destroy_node()
    rclpy.shutdown()
    save("feature_map_latency", {"args": vars(args), "rows": rows})


if __name__ == "__main__":
    main()
