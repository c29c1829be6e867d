"""Round-trip delay on a testbed link, without ``netem`` (this kernel has none).

In each end's namespace, what leaves through the link (sent by the tier, or forwarded by a fog) is
routed into a TUN device by policy rules; a delay-line process reads each packet, holds it for half the RTT and
writes it back, and the kernel forwards it out of the link's interface, where tbf shapes it. A
constant delay before a FIFO queue gives each packet the same total time as one after it, so the
order of delay and shaping does not matter. The process runs in the tier's network namespace but
outside its CPU limit: it is the network, not the vehicle.

Written by hand because netem, the tool for this, is missing here, and no Python package does it;
the per-packet work is a read, a deque and a write (``select`` waits for the next one due).
"""
from __future__ import annotations

import argparse
import fcntl
import json
import os
import select
import signal
import struct
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

from l2p_ros.testbed.layout import SUBNET, Layout
from l2p_ros.testbed.system import TestbedError, run, set_network_namespace

TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000
READY_TIMEOUT_S = 5.0


class DelayLine:
    """Packets held for ``delay_s`` each, released in the order they came (a FIFO: the delay is constant)."""

    def __init__(self, delay_s: float):
        if not delay_s >= 0:
            raise ValueError(f"delay must be >= 0 s, got {delay_s}")
        self.delay_s = delay_s
        self._held: deque[tuple[float, bytes]] = deque()

    def put(self, packet: bytes, now_s: float) -> None:
        self._held.append((now_s + self.delay_s, packet))

    def due(self, now_s: float) -> list[bytes]:
        """The packets whose time has come, oldest first."""
        out = []
        while self._held and self._held[0][0] <= now_s:
            out.append(self._held.popleft()[1])
        return out

    def wait_s(self, now_s: float) -> float | None:
        """How long until the next packet is due (0 if overdue); None when none is held."""
        return max(0.0, self._held[0][0] - now_s) if self._held else None

    def __len__(self) -> int:
        return len(self._held)


def tun_name(prefix: str, link_name: str, tier: str) -> str:
    """e.g. ``l2p-dec-e``: the delay device of link edge-cloud in the edge (<= 15 characters)."""
    a, b = link_name.split("-")
    return f"{prefix}-d{a[0]}{b[0]}-{tier[0]}"


def table_of(layout: Layout, link_name: str) -> str:
    """The policy routing table (and rule preference) of a link's delay lines: one per link, since a
    fog holds two."""
    return str(200 + 10 * [link.name for link in layout.links].index(link_name))


def route_commands(tun: str, table: str, local_address: str, destinations: list[str],
                   incoming: list[str]) -> list[list[str]]:
    """What routes packets for ``destinations`` that leave through the link into ``tun`` (run inside
    the tier): sent here (``iif lo``) or arriving on one of ``incoming`` (a fog forwarding). The delay
    line writes them back; they arrive from the TUN, maybe with a local source address
    (``accept_local``, no reverse-path filter), and the main table forwards them out of the link.
    The local table's rule comes first, so packets for this tier's own addresses never enter."""
    commands = [
        ["ip", "link", "set", tun, "up"],
        ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0",
         f"net.ipv4.conf.{tun}.rp_filter=0", f"net.ipv4.conf.{tun}.accept_local=1"],
        ["ip", "route", "replace", "default", "dev", tun, "src", local_address, "table", table],
    ]
    for source in ["lo", *incoming]:
        for destination in destinations:
            commands.append(["ip", "rule", "add", "pref", table, "iif", source, "to", destination, "lookup", table])
    return commands


def _delay_routes(layout: Layout, link_name: str, tier: str) -> tuple[list[str], list[str]]:
    """(destinations, incoming interfaces) of the delay line of ``tier``'s end of ``link_name``: an
    end tier (one link) sends everything through it; a fog only what is for the link's far side,
    its own or forwarded from its other link."""
    link = layout.link(link_name)
    others = [other for other in layout.links if other.name != link_name and tier in (other.a, other.b)]
    if not others:  # everything an end tier reaches goes through its one link
        return [str(SUBNET)], []
    return [link.network], [other.end(tier)[0] for other in others]


def _open_tun(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def _delete_rules(table: str) -> None:
    """Rules left by a previous delay line of the same link (they outlive its device)."""
    while run(["ip", "rule", "del", "pref", table], check=False).returncode == 0:
        pass


def serve(namespace: str, tun: str, table: str, local_address: str, delay_ms: float, destinations: list[str],
          incoming: list[str]) -> None:
    """The delay-line process: enter ``namespace``, make ``tun`` and its routes, hold packets."""
    set_network_namespace(os.open(f"/run/netns/{namespace}", os.O_RDONLY), namespace)
    fd = _open_tun(tun)
    _delete_rules(table)
    for argv in route_commands(tun, table, local_address, destinations, incoming):
        run(argv)
    line = DelayLine(delay_ms / 1e3)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"delay line {tun} in {namespace}: {delay_ms:g} ms for {', '.join(destinations)}", flush=True)
    while True:
        readable, _, _ = select.select([fd], [], [], line.wait_s(time.monotonic()))
        if readable:
            line.put(os.read(fd, 65535), time.monotonic())
        for packet in line.due(time.monotonic()):
            os.write(fd, packet)


def unavailable_reason() -> str | None:
    """Why delay lines cannot run here (no TUN device), or None."""
    if not os.access("/dev/net/tun", os.R_OK | os.W_OK):
        return "/dev/net/tun is missing or not usable: the delay lines need TUN devices (modprobe tun)"
    return None


def _state_file(layout: Layout, link_name: str) -> Path:
    from l2p_ros.testbed.network import state_dir

    return state_dir(layout.prefix) / f"delay-{link_name}.json"


def current_rtt_ms(layout: Layout, link_name: str) -> float | None:
    """The RTT the delay lines of ``link_name`` add now (None: none)."""
    path = _state_file(layout, link_name)
    if not path.is_file():
        return None
    state = json.loads(path.read_text())
    alive = all(Path(f"/proc/{pid}").exists() for pid in state["pids"])
    return state["rtt_ms"] if alive else None


def clear_delay(layout: Layout, link_name: str) -> None:
    """Stop the delay lines of ``link_name`` (their devices and routes go with them)."""
    path = _state_file(layout, link_name)
    if not path.is_file():
        return
    for pid in json.loads(path.read_text())["pids"]:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    path.unlink()


def set_delay(layout: Layout, link_name: str, rtt_ms: float | None, log_dir: Path | None = None) -> None:
    """Add ``rtt_ms`` of round-trip delay on ``link_name``, half each way (None or 0: none)."""
    if rtt_ms is not None and not 0 <= rtt_ms <= 10_000:
        raise ValueError(f"rtt_ms {rtt_ms}: must be between 0 and 10000")
    clear_delay(layout, link_name)
    if not rtt_ms:
        return
    reason = unavailable_reason()
    if reason:
        raise TestbedError(f"cannot add delay: {reason}")
    link = layout.link(link_name)
    table = table_of(layout, link_name)
    log_dir = log_dir or _state_file(layout, link_name).parent
    pids = []
    try:
        for tier in (link.a, link.b):
            namespace, tun = layout.namespace(tier), tun_name(layout.prefix, link_name, tier)
            destinations, incoming = _delay_routes(layout, link_name, tier)
            log = (log_dir / f"{tun}.log").open("w")
            process = subprocess.Popen([sys.executable, "-m", "l2p_ros.testbed.delay", namespace, tun, table,
                                        link.end(tier)[1], str(rtt_ms / 2), "--to", *destinations,
                                        "--incoming", *incoming],
                                       stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            pids.append(process.pid)
            _wait_ready(process, namespace, tun, table, log_dir / f"{tun}.log")
    except BaseException:
        for pid in pids:
            os.kill(pid, signal.SIGTERM)
        raise
    _state_file(layout, link_name).write_text(json.dumps({"rtt_ms": rtt_ms, "pids": pids}))


def _wait_ready(process: subprocess.Popen, namespace: str, tun: str, table: str, log_path: Path) -> None:
    """Until the delay line routes (its route and a rule exist), or say why it did not."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise TestbedError(f"the delay line {tun} in {namespace} exited: {log_path.read_text()[-1500:]}")
        rules = run(["ip", "-n", namespace, "rule", "show", "pref", table], check=False).stdout
        routes = run(["ip", "-n", namespace, "route", "show", "table", table], check=False).stdout
        if "lookup" in rules and tun in routes:
            return
        time.sleep(0.05)
    process.kill()
    raise TestbedError(f"the delay line {tun} in {namespace} was not ready after {READY_TIMEOUT_S} s")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="a testbed delay line (started by l2p testbed; root)")
    parser.add_argument("namespace")
    parser.add_argument("tun")
    parser.add_argument("table")
    parser.add_argument("local_address")
    parser.add_argument("delay_ms", type=float)
    parser.add_argument("--to", nargs="+", required=True, help="destinations whose packets are delayed")
    parser.add_argument("--incoming", nargs="*", default=[], help="interfaces whose forwarded packets are too")
    args = parser.parse_args(argv)
    serve(args.namespace, args.tun, args.table, args.local_address, args.delay_ms, args.to, args.incoming)


if __name__ == "__main__":
    main()
