"""The l2p_msgs interfaces compile, serialize, and cross processes over the local DDS profile."""
import os
import time

import psutil
import pytest

from l2p_ros.nodes.dds import EDGE_CONTAINER_PROFILE, use_local_dds

use_local_dds()  # before rclpy is imported anywhere in this process

rclpy = pytest.importorskip("rclpy")
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402

from l2p_msgs.msg import CrossingTensor, DetectionArray, FeatureMap, PartitionDecision  # noqa: E402
from test.ros_helpers import start_python  # noqa: E402

PUBLISHER = """
import sys, time
import rclpy
from l2p_msgs.msg import CrossingTensor, FeatureMap
rclpy.init()
node = rclpy.create_node("test_publisher")
pub = node.create_publisher(FeatureMap, "/l2p_test/feature_map", 10)
count = int(sys.argv[1])
deadline = time.monotonic() + 20
while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
    time.sleep(0.05)
for seq in range(count):
    msg = FeatureMap(frame_seq=seq, model_id="yolov3-tiny-416", cut_after_layer=8, codec="fp32")
    msg.tensors = [CrossingTensor(layer_index=8, shape=[1, 256, 26, 26], dtype="float32",
                                  data=bytes([seq % 256]) * (1 << 20))]
    pub.publish(msg)
    time.sleep(0.05)
time.sleep(0.5)
print("udp_sockets", len(__import__("psutil").Process().net_connections(kind="udp")), flush=True)
node.destroy_node()
rclpy.shutdown()
"""


def test_feature_map_serialization_round_trip():
    msg = FeatureMap(frame_seq=7, model_id="yolov3-416", cut_after_layer=36, codec="int8-channel+zstd")
    msg.tensors = [CrossingTensor(layer_index=36, shape=[1, 256, 52, 52], dtype="int8",
                                  quant_scale=[0.5, 0.25], quant_zero_point=[0, -3], data=b"\x01\x02")]
    msg.timings.edge_ms = 12.5
    back = deserialize_message(serialize_message(msg), FeatureMap)
    assert back.tensors[0].shape.tolist() == [1, 256, 52, 52]
    assert back.tensors[0].quant_zero_point.tolist() == [0, -3]
    assert bytes(back.tensors[0].data) == b"\x01\x02"
    assert back.timings.edge_ms == 12.5
    assert PartitionDecision().fog_until_layer == 0 and DetectionArray().detections == []


@pytest.mark.parametrize("small_messages, profile", [(False, None), (True, None), (False, EDGE_CONTAINER_PROFILE)],
                         ids=["local profile", "small-message profile", "edge-container profile"])
def test_feature_maps_cross_processes_on_shared_memory_only(small_messages, profile):
    """Also from a node on the small-message profile: its 1 MB+ messages exceed that profile's
    maxMessageSize, so they cross fragmented, and still all arrive."""
    rclpy.init()
    try:
        node = rclpy.create_node("test_subscriber")
        received = []
        node.create_subscription(FeatureMap, "/l2p_test/feature_map", received.append, 10)
        publisher = start_python(PUBLISHER, "5", small_messages=small_messages, profile=profile)
        deadline = time.monotonic() + 30
        while len(received) < 5 and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.1)
        out, err = publisher.communicate(timeout=30)
        assert [m.frame_seq for m in received] == list(range(5)), err
        assert len(received[3].tensors[0].data) == 1 << 20
        assert bytes(received[3].tensors[0].data[:4]) == b"\x03" * 4
        # The safety rule: the local profile opens no UDP socket at all (no multicast discovery).
        assert "udp_sockets 0" in out, out + err
        assert len(psutil.Process(os.getpid()).net_connections(kind="udp")) == 0
        node.destroy_node()
    finally:
        rclpy.shutdown()
