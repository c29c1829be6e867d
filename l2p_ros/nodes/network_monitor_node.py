"""network_monitor_node: estimates the uplink to the next tier and publishes NetworkState.

Active: publishes an empty probe (RTT) on ``l2p/probe`` every ``probe_period_s`` and, every
second period, a payload probe right behind it (throughput: the time between their arrivals at the
echo), and matches the echoes on ``l2p/probe_echo``. A payload probe is sized to take
``probe_share`` of the estimated link (``probe_payload_bytes`` until there is an estimate), and
only one is in flight at a time.
Passive: every FeatureMap the next tier reports on ``l2p/transfer_receipt`` is a throughput sample
at the real payload size (see :mod:`l2p_ros.nodes.probe_echo`). While such samples come (frames
are offloaded), no payload probe is sent: the frames measure the link, and a probe sized for a
fast link would sit in front of them for seconds once it slows (measured: a 175 KB probe sent as
40 Mbit/s fell to 1 held the frames behind it for 1.4 s, and hid their timing from the estimate).
Publishes ``l2p/network_state`` (STATE_QOS) every ``publish_period_s``, and at once when the
estimate changes level (confirmed outliers, or an unanswered probe's bound): a policy then sees a
drop in bandwidth as soon as it is known, not up to a period later. A payload probe whose sample
suggests a new level is confirmed by another pair at once. ``link_up`` turns false when neither
echo nor receipt arrived for ``timeout_s``. The estimation is :mod:`l2p_ros.monitoring`; this node
only moves messages.

``probe_link`` names another link to measure: a monitor on the fog with ``probe_link:=backhaul``
probes a cloud node answering ``probe_link:=backhaul``, all on ``l2p/backhaul/...`` topics.
"""
from __future__ import annotations

import os
import time

from rclpy.node import Node

from l2p_msgs.msg import NetworkState, Probe
from l2p_ros.monitoring.estimators import LinkEstimator
from l2p_ros.monitoring.probe import ProbeTracker, sized_payload_bytes
from l2p_ros.nodes.common import (FRAME_QOS, STATE_QOS, Diagnostics, LiveParameters, declare, from_time_msg,
                                  now_s, parameter_error, run_node, to_time_msg)
from l2p_ros.nodes.probe_echo import declare_probe_link
from l2p_ros.stats import link_status

# The local DDS profile carries messages up to 16 MB; a probe should be far smaller anyway, since
# it loads the link it measures.
MAX_PROBE_PAYLOAD_BYTES = 16 * 1024 * 1024
# A payload probe spans at least three packets: a link lets a first packet through at once (tbf's
# one-packet peak bucket; radio schedulers deliver bursts), and a packet pair of a 1 KB payload then
# read a 0.5 Mbit/s link as 3.2 (measured on the testbed). Below ~1.2 Mbit/s this is more than
# probe_share of the link.
MIN_PROBE_PAYLOAD_BYTES = 4096
# The throughput estimate is called stale after this long without a sample (and at least 20 probe
# periods: one payload probe goes every second period, frames measure the link between them).
STALE_THROUGHPUT_MIN_S = 10.0
# A payload probe's answer counts this many timeouts late: on a slow link its transfer takes longer
# than an empty probe's round trip.
PAYLOAD_TIMEOUT_FACTOR = 5


class NetworkMonitorNode(Node):
    def __init__(self):
        super().__init__("network_monitor_node")
        probe_period_s = declare(self, "probe_period_s", 0.5,
                                 "Seconds between probes; empty and payload probes alternate, so one "
                                 "throughput sample takes two periods.")
        payload_bytes = declare(self, "probe_payload_bytes", 65536,
                                "Payload of every second probe in bytes until the link's rate is known; then "
                                "sized so that probes take probe_share of the link.")
        live = LiveParameters(self)
        self._probe_share = live.declare(
            "probe_share", 0.035, "Share of the estimated link the payload probes take (their transfer then "
            "lasts probe_share x 2 x probe_period_s at any rate); 0 = always probe_payload_bytes. Live.",
            apply=lambda value: setattr(self, "_probe_share", value), minimum=0.0,
            check=lambda value: None if value < 1 else "must be below 1")
        self._probe_max_bytes = declare(self, "probe_payload_max_bytes", 1 << 20, "Largest sized probe payload.")
        publish_period_s = declare(self, "publish_period_s", 0.5, "Seconds between NetworkState messages.")
        timeout_s = live.declare(
            "timeout_s", 2.0, "Seconds without any echo or transfer receipt after which link_up is false; "
            "echoes later than this are dropped. Live.", apply=self._set_timeout,
            check=lambda value: None if value >= 2 * probe_period_s else (
                f"must be at least twice probe_period_s ({probe_period_s}): echoes come once per period, so a "
                "shorter timeout reads the link down on one late echo"))
        smoothing = declare(self, "smoothing", 0.2,
                            "Weight of a new observation in the smoothed estimates, in (0, 1].", maximum=1.0)
        topics = declare_probe_link(self)
        for name, value in (("probe_period_s", probe_period_s), ("publish_period_s", publish_period_s)):
            if not value > 0:
                raise parameter_error(self, name, value, "must be > 0")
        for name, value in (("probe_payload_bytes", payload_bytes), ("probe_payload_max_bytes", self._probe_max_bytes)):
            if not MIN_PROBE_PAYLOAD_BYTES <= value <= MAX_PROBE_PAYLOAD_BYTES:
                raise parameter_error(self, name, value,
                                      f"must be between {MIN_PROBE_PAYLOAD_BYTES} and {MAX_PROBE_PAYLOAD_BYTES}")
        if not 0 < smoothing <= 1:
            raise parameter_error(self, "smoothing", smoothing, "must be in (0, 1]")

        self._tracker = ProbeTracker(payload_bytes, timeout_s, payload_timeout_s=PAYLOAD_TIMEOUT_FACTOR * timeout_s)
        self._link = LinkEstimator(timeout_s, smoothing)
        self._probe_period_s = probe_period_s
        # Random filler: a link that compresses (VPN, modem) would make zeros look fast.
        self._payload = os.urandom(max(payload_bytes, self._probe_max_bytes))
        self._link_was_up = False
        self._throughput_samples, self._throughput_sample_s = 0, None  # when the last one came (monotonic s)
        self._published_level_changes = 0
        self._last_passive_sample_s = -float("inf")  # monotonic s of the last usable transfer receipt
        self._probes = self.create_publisher(Probe, topics.probe, FRAME_QOS)
        self._state = self.create_publisher(NetworkState, topics.state, STATE_QOS)
        self.create_subscription(Probe, topics.echo, self._on_echo, FRAME_QOS)
        self.create_subscription(Probe, topics.receipt, self._on_receipt, FRAME_QOS)
        self._diagnostics = Diagnostics(self)
        self.create_timer(probe_period_s, self._send_probe)
        self.create_timer(publish_period_s, self._publish)

    def _set_timeout(self, timeout_s: float) -> None:
        self._tracker.timeout_s = self._link.timeout_s = timeout_s
        self._tracker.payload_timeout_s = PAYLOAD_TIMEOUT_FACTOR * timeout_s

    def _send_probe(self, confirm: bool = False) -> None:
        # Sized for the lower of the estimate and a suspected new level: a probe sized for the 40
        # Mbit/s a link just lost would hold a 1 Mbit/s link for seconds.
        rate_mbps = self._link.cautious_bandwidth_mbps
        sized = (sized_payload_bytes(rate_mbps, self._probe_share, 2 * self._probe_period_s,
                                     MIN_PROBE_PAYLOAD_BYTES, self._probe_max_bytes) if self._probe_share else None)
        # An empty probe, and every second period a payload probe right behind it (a packet pair),
        # unless real transfers measured the link since the last one.
        now = time.monotonic()
        measured_passively = now - self._last_passive_sample_s < 2 * self._probe_period_s
        for seq, payload_bytes in self._tracker.next_probes(now, sized, confirm, payload=not measured_passively):
            probe = Probe(seq=seq, payload_bytes=payload_bytes, payload=self._payload[:payload_bytes])
            wall_s = now_s()  # stamped once built: building a 250 KB probe is no part of its transfer
            probe.header.stamp = to_time_msg(wall_s)
            self._tracker.record(seq, payload_bytes, time.monotonic(), wall_s)
            self._probes.publish(probe)

    def _on_echo(self, echo: Probe) -> None:
        result = self._tracker.match(echo.seq, echo.payload_bytes, from_time_msg(echo.received), time.monotonic())
        if result is not None:
            reconnections = self._link.reconnections
            self._link.add_probe(result.payload_bytes, result.rtt_ms, result.apparent_one_way_ms, time.monotonic(),
                                 result.dispersion_ms, from_time_msg(echo.received))
            self._after_answer(reconnections)
            if result.payload_bytes and self._link.log_bandwidth.changing and not self._tracker.payload_in_flight():
                self._send_probe(confirm=True)

    def _on_receipt(self, receipt: Probe) -> None:
        sent_s, received_s = from_time_msg(receipt.header.stamp), from_time_msg(receipt.received)
        reconnections = self._link.reconnections
        if self._link.add_transfer(receipt.payload_bytes, (received_s - sent_s) * 1e3, time.monotonic(), received_s,
                                   behind_unknown=self._tracker.payload_pending_since(sent_s)):
            self._last_passive_sample_s = time.monotonic()
        self._after_answer(reconnections)

    def _after_answer(self, reconnections_before: int) -> None:
        if self._link.reconnections > reconnections_before:  # back after being down: start measuring afresh
            self._tracker.forget_payloads()
        if self._level_changes() != self._published_level_changes:
            self._publish()

    def _level_changes(self) -> int:
        return self._link.log_bandwidth.level_changes + self._link.bounded

    def _publish(self) -> None:
        now = time.monotonic()
        for payload_bytes, elapsed_ms in self._tracker.unanswered_payloads(now):
            self._link.add_unanswered(payload_bytes, elapsed_ms)
        self._published_level_changes = self._level_changes()
        state = self._link.state(now)
        msg = NetworkState(bandwidth_mbps=state.bandwidth_mbps, bandwidth_std_mbps=state.bandwidth_std_mbps,
                           rtt_ms=state.rtt_ms, rtt_std_ms=state.rtt_std_ms, samples=state.samples,
                           link_up=state.link_up)
        msg.header.stamp = self.get_clock().now().to_msg()
        self._state.publish(msg)
        if state.link_up != self._link_was_up:
            if state.link_up:
                self.get_logger().info("link up: the next tier answers")
            else:
                self.get_logger().warning(f"link down: no echo or receipt for {self._link.timeout_s} s")
            self._link_was_up = state.link_up
        throughput_samples = self._link.log_bandwidth.samples
        if throughput_samples != self._throughput_samples:
            self._throughput_samples, self._throughput_sample_s = throughput_samples, now
        age_s = None if self._throughput_sample_s is None else now - self._throughput_sample_s
        level, message = link_status(state.link_up, age_s, max(STALE_THROUGHPUT_MIN_S, 20 * self._probe_period_s))
        self._diagnostics.update(
            level, message,
            bandwidth_mbps=f"{state.bandwidth_mbps:.3f}", rtt_ms=f"{state.rtt_ms:.3f}", samples=state.samples,
            outliers=self._link.rtt_ms.outliers + self._link.log_bandwidth.outliers,
            level_changes=self._link.rtt_ms.level_changes + self._link.log_bandwidth.level_changes,
            unresolved_payload_probes=self._link.unresolved, bounded_by_unanswered=self._link.bounded,
            dropped_echoes=sum(self._tracker.dropped.values()),
            **{f"dropped_echoes_{reason}": n for reason, n in self._tracker.dropped.items()})


def main(args=None) -> None:
    run_node(NetworkMonitorNode, args)


if __name__ == "__main__":
    main()
