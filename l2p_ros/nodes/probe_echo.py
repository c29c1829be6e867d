"""The echo side of link probing, attachable to any node on the receiving tier (the cloud node).

Topics (all l2p_msgs/Probe, FRAME_QOS):
- in ``l2p/probe``: probes from the network monitor on the sending tier.
- out ``l2p/probe_echo``: each probe back, without its payload, with ``received`` stamped on
  arrival (system time of this host).
- out ``l2p/transfer_receipt``: one per FeatureMap this tier received, reported by the node that
  received it through :meth:`ProbeEcho.report_transfer`: ``seq`` = frame_seq, ``header.stamp`` =
  the edge's send stamp (``timings.edge_sent``), ``header.frame_id`` = the FeatureMap's,
  ``payload_bytes`` = the FeatureMap's payload, ``received`` = arrival. The
  network monitor turns these into passive throughput samples.
"""
from __future__ import annotations

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node

from l2p_msgs.msg import FeatureMap, Probe
from l2p_ros.nodes.common import FRAME_QOS, Diagnostics, now_s, run_node, to_time_msg

PROBE_TOPIC = "l2p/probe"
ECHO_TOPIC = "l2p/probe_echo"
RECEIPT_TOPIC = "l2p/transfer_receipt"


class ProbeEcho:
    """Answers link probes on behalf of ``node`` and publishes receipts of observed transfers.

    The echo has its own callback group: on a node spun by a MultiThreadedExecutor it answers while
    the node's other callbacks (the tail of the network) run, so the RTT it measures is the link's,
    not the wait behind a frame.
    """

    def __init__(self, node: Node):
        self.echoed = 0
        self._echo = node.create_publisher(Probe, ECHO_TOPIC, FRAME_QOS)
        self._receipts = node.create_publisher(Probe, RECEIPT_TOPIC, FRAME_QOS)
        node.create_subscription(Probe, PROBE_TOPIC, self._on_probe, FRAME_QOS,
                                 callback_group=MutuallyExclusiveCallbackGroup())

    def _on_probe(self, probe: Probe) -> None:
        received = to_time_msg(now_s())  # first thing, so the echo's own work is not counted as link
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
        self.echo = ProbeEcho(self)
        diagnostics = Diagnostics(self)
        self.create_timer(1.0, lambda: diagnostics.update(echoed=self.echo.echoed))


def main(args=None) -> None:
    run_node(ProbeEchoNode, args)


if __name__ == "__main__":
    main()
