"""Measuring a testbed link from its ends with plain UDP: throughput and round-trip times. Used by
the tests and bench/testbed_delay.py to check what shaping and the delay lines really give."""
from __future__ import annotations

import json
import subprocess
import sys
import time

from l2p_ros.testbed.layout import Layout


def _in_tier(layout: Layout, tier: str, code: str) -> list[str]:
    return ["ip", "netns", "exec", layout.namespace(tier), sys.executable, "-c", code]


def udp_throughput_mbit(layout: Layout, sender: str, receiver: str, address: str, seconds: float = 3.0) -> float:
    """Mbit/s (IP and UDP headers counted) that 1400-byte datagrams sent as fast as they go from tier
    ``sender`` reach ``address`` on tier ``receiver`` with."""
    receiver_code = (
        "import socket, time\n"
        f"s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(({address!r}, 5005)); s.settimeout(1.5)\n"
        "n = 0; first = last = None\n"
        "while True:\n"
        "    try: d = s.recv(65535)\n"
        "    except socket.timeout: break\n"
        "    last = time.monotonic(); first = first or last; n += len(d) + 28\n"
        "print(n * 8 / (last - first) / 1e6)\n")
    sender_code = (
        "import socket, time\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); payload = b'x' * 1400; t0 = time.monotonic()\n"
        f"while time.monotonic() - t0 < {seconds}:\n"
        f"    s.sendto(payload, ({address!r}, 5005)); time.sleep(0.0001)\n")
    rx = subprocess.Popen(_in_tier(layout, receiver, receiver_code), stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)
    subprocess.run(_in_tier(layout, sender, sender_code), check=True)
    out, _ = rx.communicate(timeout=30)
    return float(out)


def udp_rtts_ms(layout: Layout, client: str, server: str, address: str, count: int = 20,
                payload_bytes: int = 64) -> list[float]:
    """Round-trip times (ms) of ``count`` datagrams from tier ``client`` to an echo at ``address`` on
    tier ``server``, 10 ms apart."""
    server_code = ("import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                   f"s.bind(({address!r}, 5006))\n"
                   "while True:\n    data, peer = s.recvfrom(65535)\n    s.sendto(data, peer)\n")
    client_code = ("import json, socket, time\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
                   "s.settimeout(2.0)\nrtts = []\n"
                   f"for i in range({count}):\n"
                   f"    t = time.monotonic(); s.sendto(b'x' * {payload_bytes}, ({address!r}, 5006))\n"
                   "    s.recvfrom(65535); rtts.append((time.monotonic() - t) * 1e3); time.sleep(0.01)\n"
                   "print(json.dumps(rtts))\n")
    echo = subprocess.Popen(_in_tier(layout, server, server_code))
    try:
        time.sleep(0.3)
        return json.loads(subprocess.run(_in_tier(layout, client, client_code), capture_output=True, text=True,
                                         check=True).stdout)
    finally:
        echo.kill()
        echo.wait()
