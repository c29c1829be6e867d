"""camera_node as its own process on the shared-memory DDS profile: it publishes a real video and a bag,
then exits 0 by itself; a wrong parameter makes it fail naming the parameter."""
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import psutil
import pytest

from l2p_ros.nodes.dds import local_dds_env, use_local_dds

use_local_dds()  # before rclpy is imported anywhere in this process

rclpy = pytest.importorskip("rclpy")
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from l2p_ros.assets import SAMPLE_VIDEO, asset_path  # noqa: E402
from l2p_ros.bag import write_image_bag  # noqa: E402
from l2p_ros.nodes.common import from_time_msg  # noqa: E402
from l2p_ros.nodes.images import msg_to_image  # noqa: E402
from l2p_ros.sources import Frame  # noqa: E402

# The test session's own domain (conftest): other test runs' cameras stay off our topics, and the
# session's sweep of unused shared-memory ports covers it.
DOMAIN_ID = int(os.environ["ROS_DOMAIN_ID"])


def _env() -> dict[str, str]:
    return {**local_dds_env(), "ROS_DOMAIN_ID": str(DOMAIN_ID)}


def _start_camera(topic: str, *parameters: str) -> subprocess.Popen:
    # min_subscribers:=1 — publishing starts once our subscriber is matched, so no frame is lost to discovery.
    args = ["-p", f"output_topic:={topic}", "-p", "min_subscribers:=1"]
    for parameter in parameters:
        args += ["-p", parameter]
    return subprocess.Popen([sys.executable, "-m", "l2p_ros.nodes.camera_node", "--ros-args", *args],
                            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _receive(topic: str, *parameters: str, timeout_s: float = 30.0,
             reliability: ReliabilityPolicy = ReliabilityPolicy.BEST_EFFORT, sim_clock_start_s: float | None = None):
    """Start the camera node, collect what it publishes until it exits; (messages, return code, log).
    ``sim_clock_start_s``: publish /clock from this time on, as ``ros2 bag play --clock`` does."""
    rclpy.init(domain_id=DOMAIN_ID)
    try:
        node = rclpy.create_node("camera_test_subscriber")
        received = []
        if sim_clock_start_s is not None:
            from rosgraph_msgs.msg import Clock

            from l2p_ros.nodes.common import to_time_msg

            clock = node.create_publisher(Clock, "/clock", 10)
            started = time.monotonic()
            node.create_timer(0.01, lambda: clock.publish(Clock(clock=to_time_msg(
                sim_clock_start_s + time.monotonic() - started))))
        # Best effort like the publisher; a deeper queue so this test's own spinning drops nothing.
        qos = QoSProfile(depth=10, reliability=reliability)
        node.create_subscription(Image, topic, received.append, qos)
        camera = _start_camera(topic, *parameters)
        deadline = time.monotonic() + timeout_s
        camera_udp_sockets = None
        while camera.poll() is None and time.monotonic() < deadline:
            rclpy.spin_once(node, timeout_sec=0.05)
            if received and camera_udp_sockets is None:  # the node is up and publishing
                camera_udp_sockets = len(psutil.Process(camera.pid).net_connections(kind="udp"))
        for _ in range(10):  # anything still queued
            rclpy.spin_once(node, timeout_sec=0.02)
        if camera.poll() is None:
            camera.kill()
        log = camera.communicate(timeout=10)[0]
        # The safety rule: neither process opened a UDP socket (no multicast discovery).
        assert camera_udp_sockets == 0 and len(psutil.Process(os.getpid()).net_connections(kind="udp")) == 0
        node.destroy_node()
        return received, camera.returncode, log
    finally:
        rclpy.shutdown()


def test_publishes_video_frames_and_exits_cleanly():
    start_s = time.time()
    received, returncode, log = _receive("/camera_test/video", f"source:={asset_path(SAMPLE_VIDEO)}",
                                         "max_frames:=5", "rate_hz:=20")
    assert returncode == 0, log
    assert len(received) == 5, log
    capture = cv2.VideoCapture(str(asset_path(SAMPLE_VIDEO)))
    for msg in received:
        assert (msg.width, msg.height, msg.encoding, msg.step) == (768, 576, "bgr8", 768 * 3)
        assert msg.header.frame_id == "camera"
        assert np.array_equal(msg_to_image(msg), capture.read()[1])
    capture.release()
    stamps_s = [from_time_msg(m.header.stamp) for m in received]
    # Replay: stamps are publish times, strictly increasing, paced at about 20 Hz.
    assert all(b > a for a, b in zip(stamps_s, stamps_s[1:]))
    assert start_s < stamps_s[0] and stamps_s[-1] - stamps_s[0] >= 0.15
    assert "published 5 frames" in log and "header.stamp = publish time" in log


def test_with_use_sim_time_frames_are_stamped_on_the_simulated_clock():
    """``use_sim_time:=true`` (a bag played with --clock, a simulator): the camera stamps replayed
    frames with /clock's time, not the host's (latency is measured from ingest, so it stays right)."""
    sim_start_s = 1000.0
    received, returncode, log = _receive("/camera_test/sim", f"source:={asset_path(SAMPLE_VIDEO)}", "max_frames:=5",
                                         "rate_hz:=20", "use_sim_time:=true", sim_clock_start_s=sim_start_s)
    assert returncode == 0 and len(received) == 5, log
    stamps_s = [from_time_msg(m.header.stamp) for m in received]
    assert all(sim_start_s < stamp < sim_start_s + 60 for stamp in stamps_s), stamps_s
    assert all(b > a for a, b in zip(stamps_s, stamps_s[1:]))


def test_replays_a_compressed_bag_keeping_its_frame_id(tmp_path):
    capture = cv2.VideoCapture(str(asset_path(SAMPLE_VIDEO)))
    frames = [Frame(1_700_000_000.0 + 0.1 * i, "front", capture.read()[1]) for i in range(5)]
    capture.release()
    write_image_bag(tmp_path / "bag", frames, storage="sqlite3", compressed=True)
    received, returncode, log = _receive("/camera_test/bag", f"source:={tmp_path / 'bag'}", "rate_hz:=0",
                                         "use_recorded_stamps:=true")
    assert returncode == 0, log
    assert len(received) == 5, log
    assert all((m.width, m.height, m.encoding, m.header.frame_id) == (768, 576, "bgr8", "front") for m in received)
    assert [from_time_msg(m.header.stamp) for m in received] == pytest.approx([f.stamp_s for f in frames], abs=1e-6)


def test_wrong_parameter_fails_naming_it():
    result = subprocess.run([sys.executable, "-m", "l2p_ros.nodes.camera_node", "--ros-args",
                             "-p", "source:=/nonexistent/clip.avi"],
                            env=_env(), capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert "parameter 'source'='/nonexistent/clip.avi' is invalid" in result.stderr


@pytest.mark.skipif(Path("/dev/video0").exists(), reason="this machine has a camera at index 0")
def test_a_camera_index_given_as_an_integer_is_a_device():
    """``source:=0`` arrives as an integer parameter (launch argument or YAML); it names device 0."""
    result = subprocess.run([sys.executable, "-m", "l2p_ros.nodes.camera_node", "--ros-args", "-p", "source:=0"],
                            env=_env(), capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert "InvalidParameterTypeException" not in result.stderr
    assert "parameter 'source'='0' is invalid: cannot open video device 0" in result.stderr, result.stderr


def test_a_reliable_publisher_serves_a_subscriber_that_keeps_the_image_transport_default():
    """Best effort (the default) never matches a reliable subscriber; qos_reliability:=reliable does,
    and our own best-effort subscribers still read it."""
    args = (f"source:={asset_path(SAMPLE_VIDEO)}", "max_frames:=3", "rate_hz:=20")
    received, returncode, log = _receive("/camera_test/reliable", *args, "qos_reliability:=reliable",
                                         reliability=ReliabilityPolicy.RELIABLE)
    assert returncode == 0 and len(received) == 3, log
    received, returncode, log = _receive("/camera_test/reliable_be", *args, "qos_reliability:=reliable")
    assert returncode == 0 and len(received) == 3, log
    result = subprocess.run([sys.executable, "-m", "l2p_ros.nodes.camera_node", "--ros-args",
                             "-p", "qos_reliability:=sometimes"], env=_env(), capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert "parameter 'qos_reliability/qos_depth'='sometimes/1' is invalid" in result.stderr


def test_a_drivers_live_compressed_topic_enters_with_its_stamps_and_camera_info():
    """source:=topic:/drv/image_raw/compressed: another driver's JPEG frames come out as our Image with
    the driver's stamps and frame id, and its CameraInfo is passed through beside them."""
    from sensor_msgs.msg import CameraInfo, CompressedImage

    rclpy.init(domain_id=DOMAIN_ID)
    try:
        node = rclpy.create_node("camera_test_driver")
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)
        frames, infos = [], []
        node.create_subscription(Image, "/camera_test/live/image_raw", frames.append, qos)
        node.create_subscription(CameraInfo, "/camera_test/live/camera_info", infos.append, qos)
        image_pub = node.create_publisher(CompressedImage, "/drv/image_raw/compressed", 10)
        info_pub = node.create_publisher(CameraInfo, "/drv/camera_info", 10)
        camera = _start_camera("/camera_test/live/image_raw", "source:=topic:/drv/image_raw/compressed",
                               "camera_info_topic:=/drv/camera_info", "max_frames:=3", "rate_hz:=0")
        video = cv2.VideoCapture(str(asset_path(SAMPLE_VIDEO)))
        ok, picture = video.read()
        video.release()
        jpeg = cv2.imencode(".jpg", picture)[1].tobytes()
        sent_stamps = []
        deadline = time.monotonic() + 60
        while camera.poll() is None and time.monotonic() < deadline:
            if image_pub.get_subscription_count():  # the camera node is listening
                stamp_s = 1000.0 + len(sent_stamps)
                msg = CompressedImage(format="jpeg", data=jpeg)
                msg.header.stamp.sec, msg.header.frame_id = int(stamp_s), "front_cam"
                image_pub.publish(msg)
                info = CameraInfo(width=picture.shape[1], height=picture.shape[0], distortion_model="plumb_bob")
                info.header = msg.header
                info_pub.publish(info)
                sent_stamps.append(stamp_s)
            rclpy.spin_once(node, timeout_sec=0.2)
        for _ in range(20):
            rclpy.spin_once(node, timeout_sec=0.05)
        log = camera.communicate(timeout=10)[0]
        node.destroy_node()
    finally:
        rclpy.shutdown()
    assert camera.returncode == 0 and len(frames) == 3, log
    assert "topic /drv/image_raw/compressed (sensor_msgs/CompressedImage)" in log
    assert all(from_time_msg(f.header.stamp) in sent_stamps and f.header.frame_id == "front_cam" for f in frames)
    assert msg_to_image(frames[0]).shape == picture.shape
    assert infos and infos[0].width == picture.shape[1] and infos[0].header.frame_id == "front_cam"
