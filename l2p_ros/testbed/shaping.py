"""Link rates with the kernel's token bucket filter, and a bandwidth trace replayed on a link.

Direction ``up`` is from the link's first tier (nearer the vehicle) to the second, shaped on the
first tier's interface; ``down`` the other way. A rate of 0 takes the link down (``ip link set ...
down``: no carrier at either end), as the simulator's traces mean it.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass

from l2p_ros.testbed.layout import Layout
from l2p_ros.testbed.system import run

DIRECTIONS = ("up", "down")
MIN_RATE_MBIT = 0.008  # tc's rate resolution here is kbit; below this a rate is a link down
QUEUE_MS = 300.0  # how long a full queue holds packets before tbf drops (RELIABLE DDS resends those)
# ... and at least this many bytes: a shallower queue drops most of one large message sent at once
# (a 150 KB probe on a 1 Mbit/s link was never delivered through a 37 KB queue: every resent burst
# overflowed it again). Cellular uplinks buffer seconds; this holds 2 s at 1 Mbit/s.
MIN_QUEUE_BYTES = 256 * 1024
MIN_BURST_BYTES = 3200  # two full Ethernet frames: tbf needs burst >= one packet
# The bucket lets a burst through at line speed: a large one would carry a whole 24 KB frame in no
# time (measured at 5 ms of 40 Mbit/s: 0.9 ms transfers), so it is kept to 0.5 ms of the rate, and a
# second bucket (peakrate, one packet deep) paces even that burst at the rate: with the burst
# alone, a 12 KB probe at 2 Mbit/s read 26% fast (its first 3.2 KB crossed at once).
BURST_S = 0.0005
PEAK_OVER_RATE = 1.001  # tbf needs peakrate > rate
PEAK_BUCKET_BYTES = 1600  # one packet (Ethernet MTU and header)


@dataclass(frozen=True)
class LinkEnd:
    namespace: str
    ifname: str


def link_end(layout: Layout, link_name: str, direction: str) -> LinkEnd:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction {direction!r}: must be one of {', '.join(DIRECTIONS)}")
    link = layout.link(link_name)
    tier = link.a if direction == "up" else link.b
    return LinkEnd(layout.namespace(tier), link.end(tier)[0])


def tbf_arguments(rate_mbit: float, queue_ms: float = QUEUE_MS) -> list[str]:
    """tc tbf arguments for ``rate_mbit``: a burst of ``BURST_S`` at that rate (at least two packets)
    paced at the rate by a one-packet peak bucket, and a queue holding ``queue_ms`` of traffic or
    ``MIN_QUEUE_BYTES``, whichever is more."""
    if not rate_mbit >= MIN_RATE_MBIT:
        raise ValueError(f"rate {rate_mbit} Mbit/s: tbf needs at least {MIN_RATE_MBIT} (0 takes the link down)")
    rate_bytes_per_s = rate_mbit * 1e6 / 8
    burst = max(MIN_BURST_BYTES, int(rate_bytes_per_s * BURST_S))
    rate_kbit = int(round(rate_mbit * 1000))
    limit = max(int(rate_bytes_per_s * queue_ms / 1e3), MIN_QUEUE_BYTES) + burst
    return ["rate", f"{rate_kbit}kbit", "burst", str(burst), "limit", str(limit),
            "peakrate", f"{max(rate_kbit + 1, int(round(rate_kbit * PEAK_OVER_RATE)))}kbit", "mtu", str(PEAK_BUCKET_BYTES)]


def set_rate(layout: Layout, link_name: str, rate_mbit: float | None, directions=DIRECTIONS) -> None:
    """Shape ``link_name`` to ``rate_mbit`` (None: unshaped; 0: down) in ``directions``."""
    ends = [link_end(layout, link_name, direction) for direction in directions]
    for end in ends:
        if rate_mbit == 0:
            run(["ip", "-n", end.namespace, "link", "set", end.ifname, "down"])
            continue
        run(["ip", "-n", end.namespace, "link", "set", end.ifname, "up"])
        if rate_mbit is None:
            run(["tc", "-n", end.namespace, "qdisc", "del", "dev", end.ifname, "root"], check=False)
        else:
            run(["tc", "-n", end.namespace, "qdisc", "replace", "dev", end.ifname, "root", "tbf",
                 *tbf_arguments(rate_mbit)])


def current_rate_mbit(namespace: str, ifname: str) -> float | None:
    """The tbf rate on an interface now; None when unshaped, 0.0 when the interface is down."""
    link = json.loads(run(["ip", "-n", namespace, "-j", "link", "show", ifname]).stdout)[0]
    if "UP" not in link.get("flags", []):
        return 0.0
    for qdisc in json.loads(run(["tc", "-n", namespace, "-j", "qdisc", "show", "dev", ifname]).stdout):
        if qdisc.get("kind") == "tbf":
            return qdisc["options"]["rate"] * 8 / 1e6  # tc -j reports bytes per second
    return None


class TraceReplay:
    """Plays a trace's bandwidth on a link in real time, in a thread: each sample's rate is set at
    its ``time_s`` after :meth:`start` (the last one then holds); ``applied`` records (seconds since
    start, Mbit/s) as each was set."""

    def __init__(self, layout: Layout, link_name: str, time_s, bandwidth_mbps, directions=("up",),
                 until_s: float | None = None, setter=set_rate):
        if len(time_s) == 0 or len(time_s) != len(bandwidth_mbps):
            raise ValueError("a trace needs as many bandwidth values as times, and at least one")
        self.layout, self.link_name, self.directions = layout, link_name, tuple(directions)
        self.samples = [(float(t), float(b)) for t, b in zip(time_s, bandwidth_mbps)]
        self.until_s = until_s
        self.applied: list[tuple[float, float]] = []
        self.error: BaseException | None = None
        self.started_monotonic: float | None = None
        self._setter = setter
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._play, name="trace-replay", daemon=True)

    def start(self) -> "TraceReplay":
        self.started_monotonic = time.monotonic()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5.0)

    def _play(self) -> None:
        try:
            for at_s, rate in self.samples:
                if self.until_s is not None and at_s > self.until_s:
                    return
                if self._stop.wait(max(0.0, self.started_monotonic + at_s - time.monotonic())):
                    return
                self._setter(self.layout, self.link_name, rate, self.directions)
                self.applied.append((round(time.monotonic() - self.started_monotonic, 4), rate))
        except BaseException as error:  # reported by the caller, which owns the run
            self.error = error
