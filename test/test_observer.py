"""The observer's accounting (invariant 4), fed messages directly, and once over DDS (shared
memory, in this process)."""
import pytest

from l2p_ros.nodes.dds import use_local_dds

use_local_dds()

import rclpy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from l2p_msgs.msg import DetectionArray, DropCount, EdgeLoad, NetworkState, PipelineStats  # noqa: E402
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


def test_a_result_the_edge_published_and_the_reader_missed_shows_in_the_edge_count(observer):
    """Unaccounted either way; the edge's own count of published results says where it went."""
    for sec in (1, 2):
        observer.on_image(_stamped(Image(), sec))
    observer.on_message("l2p/detections", "l2p_msgs/msg/DetectionArray", _stamped(DetectionArray(executed_on="edge"), 1))
    stats = _stats(2)
    stats.frames_detected = 2  # frame 2 was finished and published; this reader never received it
    observer.on_message("l2p/edge/stats", "l2p_msgs/msg/PipelineStats", stats)
    summary = observer.summary()
    assert (summary["unaccounted"], summary["frames_detected"], summary["edge_frames_published"]) == (1, 1, 2)


def test_load_and_link_states_are_recorded_not_counted(observer, tmp_path):
    from l2p_ros.bag import BagRecorder, deserialize, read_bag

    observer.recorder = BagRecorder(tmp_path / "bag")
    observer.on_image(_stamped(Image(), 1))
    observer.on_message("l2p/edge_load", "l2p_msgs/msg/EdgeLoad", EdgeLoad(cpu_percent=64.0, queue_length=1))
    observer.on_message("l2p/network_state", "l2p_msgs/msg/NetworkState", NetworkState(bandwidth_mbps=0.9))
    observer.recorder.close()
    summary = observer.summary()
    assert summary["frames_detected"] == 0 and summary["unaccounted"] == 1
    recorded = {m.topic: deserialize(m.msgtype, m.cdr_bytes) for m in read_bag(tmp_path / "bag")}
    assert recorded["/l2p/edge_load"].queue_length == 1 and recorded["/l2p/network_state"].bandwidth_mbps == 0.9


def test_a_retaining_observer_folds_old_frames_into_counters_and_stays_bounded():
    rclpy.init()
    observer = PipelineObserver(print_frames=False, retain_s=10.0)
    try:
        for sec in range(1, 101):  # 100 frames a second apart, each detected at once
            observer.on_image(_stamped(Image(), sec))
            detections = _stamped(DetectionArray(executed_on="edge", cut_after_layer=23), sec)
            detections.timings.total_ms = float(sec)
            observer.on_message("l2p/detections", "l2p_msgs/msg/DetectionArray", detections)
            assert len(observer.results) <= 11 and len(observer.frames_seen) <= 11
        # A late answer for a folded frame is a duplicate, not a new detection.
        observer.on_message("l2p/detections", "l2p_msgs/msg/DetectionArray",
                            _stamped(DetectionArray(executed_on="cloud"), 5))
        observer.on_message("l2p/edge/stats", "l2p_msgs/msg/PipelineStats", _stats(100))
        summary = observer.summary()
        assert (summary["frames_captured_seen"], summary["frames_detected"], summary["unaccounted"]) == (100, 100, 0)
        assert summary["late_duplicate_results"] == 1
        assert summary["executed_on"] == {"edge": 100} and summary["cuts"] == {"23": 100}
        assert summary["latency_mean_ms"] == pytest.approx(50.5)
        assert observer.latencies() == [(float(sec), float(sec)) for sec in range(1, 101)]
    finally:
        observer.destroy_node()
        rclpy.shutdown()


def test_results_published_while_the_observer_is_busy_are_all_counted():
    """Over DDS (shared memory, this process): 200 results published while the observer's process
    does not spin (a stall, e.g. a busy test thread) are all counted once it spins again. With the
    writer's depth (32) as its reader's history, 168 of them were lost without a trace (measured:
    rmw's message_lost event does not fire for a reader history overflow)."""
    import time

    from l2p_ros.nodes.common import DETECTIONS_QOS

    rclpy.init()
    observer = PipelineObserver(print_frames=False)
    edge = rclpy.create_node("fake_edge")
    try:
        publisher = edge.create_publisher(DetectionArray, "l2p/detections", DETECTIONS_QOS)
        deadline = time.monotonic() + 10.0
        while publisher.get_subscription_count() < 1 and time.monotonic() < deadline:
            rclpy.spin_once(observer, timeout_sec=0.05)
        assert publisher.get_subscription_count() == 1
        for sec in range(1, 201):
            observer.on_image(_stamped(Image(), sec))
            publisher.publish(_stamped(DetectionArray(executed_on="edge"), sec))
        deadline = time.monotonic() + 10.0
        while observer.summary()["frames_detected"] < 200 and time.monotonic() < deadline:
            rclpy.spin_once(observer, timeout_sec=0.05)
        time.sleep(0.2)
        rclpy.spin_once(observer, timeout_sec=0.05)
        summary = observer.summary()
        assert (summary["frames_detected"], summary["unaccounted"], summary["late_duplicate_results"]) == (200, 0, 0)
    finally:
        edge.destroy_node()
        observer.destroy_node()
        rclpy.shutdown()
