"""The observer's accounting (invariant 4), fed messages directly: no DDS traffic."""
import pytest

from l2p_ros.nodes.dds import use_local_dds

use_local_dds()

import rclpy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from l2p_msgs.msg import DetectionArray, DropCount, PipelineStats  # noqa: E402
from l2p_ros.nodes.observer import PipelineObserver  # noqa: E402


@pytest.fixture
def observer():
    rclpy.init()
    node = PipelineObserver(print_frames=False)
    yield node
    node.destroy_node()
    rclpy.shutdown()


def _stamped(msg, sec: int):
    msg.header.stamp.sec = sec
    return msg


def _stats(frames_in: int, **drops) -> PipelineStats:
    return PipelineStats(frames_in=frames_in, drops=[DropCount(reason=r, count=n) for r, n in drops.items()])


def test_a_frame_a_later_tier_dropped_and_the_edge_finished_counts_once(observer):
    for sec in (1, 2, 3):
        observer.on_image(_stamped(Image(), sec))
    observer.on_message("l2p/detections", "l2p_msgs/msg/DetectionArray",
                        _stamped(DetectionArray(executed_on="cloud"), 1))
    # Frame 2: the cloud dropped it from its backlog; the edge timed out and finished it itself.
    observer.on_message("l2p/detections", "l2p_msgs/msg/DetectionArray",
                        _stamped(DetectionArray(executed_on="edge (fallback)"), 2))
    observer.on_message("l2p/pipeline_stats", "l2p_msgs/msg/PipelineStats", _stats(2, cloud_backlog=1))
    observer.on_message("l2p/edge/stats", "l2p_msgs/msg/PipelineStats", _stats(3, stale_frame=1))  # frame 3
    summary = observer.summary()
    assert summary["drops"] == {"cloud:cloud_backlog": 1, "edge:stale_frame": 1}
    assert (summary["frames_in_edge"], summary["frames_detected"], summary["frames_dropped"]) == (3, 2, 1)
    assert summary["unaccounted"] == 0


def test_a_frame_neither_detected_nor_dropped_by_the_edge_is_unaccounted(observer):
    for sec in (1, 2):
        observer.on_image(_stamped(Image(), sec))
    observer.on_message("l2p/detections", "l2p_msgs/msg/DetectionArray",
                        _stamped(DetectionArray(executed_on="cloud"), 1))
    observer.on_message("l2p/pipeline_stats", "l2p_msgs/msg/PipelineStats", _stats(2, cloud_backlog=1))
    observer.on_message("l2p/edge/stats", "l2p_msgs/msg/PipelineStats", _stats(2))
    assert observer.summary()["unaccounted"] == 1  # dropped by the cloud, and never finished by the edge
