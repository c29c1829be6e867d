"""What the testbed's delay lines give (issue 10, item 1). Needs root (l2p testbed).

    sudo python bench/testbed_delay.py [--rtts-ms 0,10,20,50,100] [--rate-mbit 8]

Edge and cloud namespaces; for each RTT asked, the round trip of 64-byte and 1400-byte UDP
datagrams (200 each, 10 ms apart) measured from the edge: median, p95 and the error against the
configured RTT plus the link's own; and, with the edge's uplink shaped to ``--rate-mbit``, the UDP
throughput behind the delay (the delay must not change the rate). Writes
bench/results/testbed_delay.json.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import require_testbed, save  # noqa: E402

from l2p_ros.testbed import network  # noqa: E402
from l2p_ros.testbed.delay import set_delay  # noqa: E402
from l2p_ros.testbed.link_check import udp_rtts_ms, udp_throughput_mbit  # noqa: E402
from l2p_ros.testbed.shaping import set_rate  # noqa: E402

PREFIX = "l2pb"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rtts-ms", default="0,10,20,50,100")
    parser.add_argument("--rate-mbit", type=float, default=8.0)
    parser.add_argument("--count", type=int, default=200)
    args = parser.parse_args()
    require_testbed()
    network.down(PREFIX, log=lambda *_: None)
    layout = network.up(prefix=PREFIX)
    link = layout.uplink
    rows = []
    try:
        for rtt_ms in [float(x) for x in args.rtts_ms.split(",")]:
            set_delay(layout, link.name, rtt_ms)
            row = {"configured_rtt_ms": rtt_ms}
            for size in (64, 1400):
                rtts = udp_rtts_ms(layout, "edge", "cloud", link.b_address, args.count, payload_bytes=size)
                row[f"udp{size}_median_ms"] = round(statistics.median(rtts), 3)
                row[f"udp{size}_p95_ms"] = round(sorted(rtts)[int(0.95 * (len(rtts) - 1))], 3)
            set_rate(layout, link.name, args.rate_mbit, ("up",))
            row["throughput_mbit"] = round(udp_throughput_mbit(layout, "edge", "cloud", link.b_address), 3)
            set_rate(layout, link.name, None, ("up",))
            rows.append(row)
            print(row, flush=True)
    finally:
        network.down(PREFIX, log=lambda *_: None)
    base = rows[0]["udp64_median_ms"] if rows and rows[0]["configured_rtt_ms"] == 0 else 0.0
    for row in rows:
        row["added_median_ms"] = round(row["udp64_median_ms"] - base, 3)
    save("testbed_delay", {"command": " ".join(sys.argv), "rate_mbit": args.rate_mbit, "count": args.count,
                           "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
