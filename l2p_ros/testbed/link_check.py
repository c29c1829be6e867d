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


def udp_throughput_mbit(layout: Layout, sender: str, receiver: str, address: str, seconds: float = 3.0,
                        offered_mbit: float = 100.0) -> float:
    """Mbit/s (IP and UDP headers counted) that 1400-byte datagrams offered at ``offered_mbit`` from
    tier ``sender`` reach ``address`` on tier ``receiver`` with: the link's rate where it is shaped
    below the offered rate.

    The rate is taken from the kernel's arrival stamps, not from when the receiver got to read each
    datagram, and the receive buffer holds seconds of traffic: a receiver that a loaded host
    deschedules then neither drops datagrams nor stretches the interval."""
    # Python's socket module lacks these Linux constants (asm-generic/socket.h; x86-64 and arm64).
    so_rcvbufforce, so_timestampns = 33, 35
    receiver_code = (
        "import socket, struct\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        f"try: s.setsockopt(socket.SOL_SOCKET, {so_rcvbufforce}, 16 << 20)\n"
        "except OSError: s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)\n"
        f"s.setsockopt(socket.SOL_SOCKET, {so_timestampns}, 1)\n"
        f"s.bind(({address!r}, 5005)); s.settimeout(1.5)\n"
        "n = 0; first = last = None\n"
        "while True:\n"
        "    try: d, ancillary, _, _ = s.recvmsg(65535, socket.CMSG_SPACE(16))\n"
        "    except socket.timeout: break\n"
        f"    stamp = next(data for _, kind, data in ancillary if kind == {so_timestampns})\n"
        "    seconds, nanoseconds = struct.unpack('qq', stamp[:16]); last = seconds + nanoseconds * 1e-9\n"
        "    if first is None: first = last\n"
        "    else: n += len(d) + 28\n"
        "print(n * 8 / (last - first) / 1e6)\n")
    # The sender offers ``offered_mbit`` by sending, at each wakeup, every datagram due by then: a
    # loaded host wakes a sleeper milliseconds late (6 ms beside six busy processes on 2 cores), and
    # one datagram per wakeup then offered less than the link carries (1.9 of 8 Mbit/s measured).
    packets_per_s = offered_mbit * 1e6 / 8 / 1428
    sender_code = (
        "import socket, time\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); payload = b'x' * 1400\n"
        "t0 = now = time.monotonic(); sent = 0\n"
        f"while now - t0 < {seconds}:\n"
        f"    while sent < (now - t0) * {packets_per_s}:\n"
        f"        s.sendto(payload, ({address!r}, 5005)); sent += 1\n"
        "    time.sleep(0.001); now = time.monotonic()\n")
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
