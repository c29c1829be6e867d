"""The echo side of link probing, attachable to any node on the receiving tier (the cloud node).

Topics of the link named ``link`` (all l2p_msgs/Probe, FRAME_QOS; :func:`link_topics`):
- in ``l2p/probe``: probes from the network monitor on the sending tier.
- out ``l2p/probe_echo``: each probe back, without its payload, with ``received`` stamped on
  arrival (system time of this host).
- out ``l2p/transfer_receipt``: one per FeatureMap this tier received, reported by the node that
  received it through :meth:`ProbeEcho.report_transfer`: ``seq`` = frame_seq, ``header.stamp`` =
  the sender's send stamp (``timings.edge_sent``, which a fog re-stamps when it forwards),
  ``header.frame_id`` = the FeatureMap's, ``payload_bytes`` = the FeatureMap's payload,
  ``received`` = arrival. The network monitor turns these into passive throughput samples.

The unnamed link ("") is the edge's uplink to the next tier; another name puts its topics under
``l2p/<link>/`` (e.g. ``backhaul``: a monitor on the fog probing the cloud), so two links can be
measured at once without their probes mixing.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.serialization import deserialize_message

from l2p_msgs.msg import FeatureMap, Probe
from l2p_ros.nodes.common import FRAME_QOS, Diagnostics, declare, now_s, parameter_error, run_node, to_time_msg


@dataclass(frozen=True)
class LinkTopics:
    probe: str
    echo: str
    receipt: str
    state: str  # the monitor's NetworkState


def link_topics(link: str) -> LinkTopics:
    """The topics of the probed link ``link`` ("" = the uplink). Raises ValueError on a bad name."""
    if link and not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", link):
        raise ValueError("must be empty or a name of letters, digits and underscores, starting with a letter")
    prefix = f"l2p/{link}/" if link else "l2p/"
    return LinkTopics(f"{prefix}probe", f"{prefix}probe_echo", f"{prefix}transfer_receipt", f"{prefix}network_state")


def in_namespace(topics: LinkTopics, namespace: str) -> LinkTopics:
    """The same link's topics under a vehicle's namespace (``/v0/l2p/probe``...); "" = unchanged."""
    if not namespace:
        return topics
    return LinkTopics(*(f"/{namespace}/{topic}" for topic in (topics.probe, topics.echo, topics.receipt, topics.state)))


def declare_probe_link(node: Node) -> LinkTopics:
    """The node's ``probe_link`` parameter, as its topics (a bad name is a parameter error)."""
    link = declare(node, "probe_link", "", "the probed link: '' = the edge's uplink to the next tier, "
                   "a name (e.g. backhaul) = topics under l2p/<name>/ for a second link")
    try:
        return link_topics(link)
    except ValueError as error:
        raise parameter_error(node, "probe_link", link, str(error)) from None


class ProbeEcho:
    """Answers link probes on behalf of ``node`` and publishes receipts of observed transfers.

    The echo has its own callback group: on a node spun by a MultiThreadedExecutor it answers while
    the node's other callbacks (the tail of the network) run, so the RTT it measures is the link's,
    not the wait behind a frame.
    """

    def __init__(self, node: Node, topics: LinkTopics = link_topics("")):
        self.echoed = 0
        self._echo = node.create_publisher(Probe, topics.echo, FRAME_QOS)
        self._receipts = node.create_publisher(Probe, topics.receipt, FRAME_QOS)
        # Raw: the arrival is stamped before the probe is deserialized, which for a 250 KB payload takes
        # milliseconds that would otherwise count as transfer time (measured: 50 Mbit/s read 13% slow).
        node.create_subscription(Probe, topics.probe, self._on_probe, FRAME_QOS, raw=True,
                                 callback_group=MutuallyExclusiveCallbackGroup())

    def _on_probe(self, serialized: bytes) -> None:
        received = to_time_msg(now_s())  # first thing, so the echo's own work is not counted as link
        probe = deserialize_message(serialized, Probe)
        self._echo.publish(Probe(header=probe.header, seq=probe.seq, payload_bytes=probe.payload_bytes,
                                 received=received))
        self.echoed += 1

    def report_transfer(self, feature_map: FeatureMap, received_s: float) -> None:
        """Report that ``feature_map`` arrived at ``received_s`` (system time, seconds).

        Call it first thing in the receiving tier's FeatureMap callback.
        """
        receipt = Probe(seq=feature_map.frame_seq, payload_bytes=feature_map.payload_bytes,
                        received=to_time_msg(received_s))
        receipt.header.stamp = feature_map.timings.edge_sent
        receipt.header.frame_id = feature_map.header.frame_id
        self._receipts.publish(receipt)


class ProbeEchoNode(Node):
    """A node that only echoes probes: for a cloud host without the cloud node, and for tests."""

    def __init__(self):
        super().__init__("probe_echo_node")
        self.echo = ProbeEcho(self, declare_probe_link(self))
        diagnostics = Diagnostics(self)
        self.create_timer(1.0, lambda: diagnostics.update(echoed=self.echo.echoed))


def main(args=None) -> None:
    run_node(ProbeEchoNode, args)


if __name__ == "__main__":
    main()
