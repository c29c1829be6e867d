"""The cloud node as a ROS 2 lifecycle node, driven through its real services from another process:
the model loads on configure, frames are consumed only while active, and it can be configured again
after a cleanup. (The edge node shares the same base; `l2p run` drives both in every run test.)"""
import time

import pytest

from l2p_ros.nodes.dds import use_local_dds

use_local_dds()

import rclpy  # noqa: E402
from lifecycle_msgs.msg import Transition  # noqa: E402
from lifecycle_msgs.srv import ChangeState, GetState  # noqa: E402

from l2p_ros.nodes.launcher import NodeSet, prepared_parameters, work_dir_for  # noqa: E402
from l2p_ros.nodes.lifecycle import drive  # noqa: E402
from test.ros_helpers import call_service  # noqa: E402


@pytest.fixture()
def cloud(request):
    overrides = {("cloud_node", "autostart"): False, **getattr(request, "param", {})}
    rclpy.init()
    node = rclpy.create_node("test_lifecycle_peer")
    nodes = NodeSet(prepared_parameters(None, overrides), work_dir_for(None), nodes=("cloud_node",))
    nodes.start_all()
    try:
        yield node, nodes
    finally:
        node.destroy_node()
        rclpy.shutdown()
        nodes.stop_all()


def _spin_until(node, predicate, timeout_s=60.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not predicate():
        rclpy.spin_once(node, timeout_sec=0.05)
    return predicate()


def _state(node) -> str:
    client = node.create_client(GetState, "/cloud_node/get_state")
    assert _spin_until(node, client.service_is_ready)
    response = call_service(node, client, GetState.Request())  # idempotent: retried if unanswered
    node.destroy_client(client)
    return response.current_state.label


def _change(node, transition_id: int) -> bool:
    client = node.create_client(ChangeState, "/cloud_node/change_state")
    assert _spin_until(node, client.service_is_ready)
    future = client.call_async(ChangeState.Request(transition=Transition(id=transition_id)))
    assert _spin_until(node, future.done, 60.0), "no answer to change_state"
    node.destroy_client(client)
    return future.result().success


def test_the_cloud_loads_on_configure_and_consumes_frames_only_while_active(cloud):
    node, nodes = cloud
    log = nodes.running["cloud_node"].log_path
    assert _state(node) == "unconfigured"
    assert node.count_subscribers("l2p/feature_map") == 0
    drive(node, ["/cloud_node"], lambda: rclpy.spin_once(node, timeout_sec=0.05), nodes.failed, timeout_s=90)
    assert _state(node) == "active"
    assert "configured in" in log.read_text() and "cloud ready" in log.read_text()
    assert _spin_until(node, lambda: node.count_subscribers("l2p/feature_map") == 1, 10)

    assert _change(node, Transition.TRANSITION_DEACTIVATE)
    assert _state(node) == "inactive"
    assert _spin_until(node, lambda: node.count_subscribers("l2p/feature_map") == 0, 10)
    assert _change(node, Transition.TRANSITION_CLEANUP)
    assert _state(node) == "unconfigured"
    # Configured again after a cleanup: the parameters are declared once and read again.
    assert _change(node, Transition.TRANSITION_CONFIGURE) and _change(node, Transition.TRANSITION_ACTIVATE)
    assert _spin_until(node, lambda: node.count_subscribers("l2p/feature_map") == 1, 10)
    assert nodes.running["cloud_node"].process.poll() is None


@pytest.mark.parametrize("cloud", [{("cloud_node", "queue_depth"): 0}], indirect=True)
def test_a_bad_parameter_fails_configure_with_its_name_and_the_node_stays_up(cloud):
    node, nodes = cloud
    with pytest.raises(RuntimeError, match="configure failed on /cloud_node"):
        drive(node, ["/cloud_node"], lambda: rclpy.spin_once(node, timeout_sec=0.05), nodes.failed, timeout_s=90)
    assert _state(node) == "unconfigured"
    log = nodes.running["cloud_node"].log_path.read_text()
    assert "parameter 'queue_depth'=0 is invalid: must be >= 1" in log
    assert nodes.running["cloud_node"].process.poll() is None  # waits to be configured right


def _set(node, name: str, value):
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter

    client = node.create_client(SetParameters, "/cloud_node/set_parameters")
    assert _spin_until(node, client.service_is_ready)
    response = call_service(node, client, SetParameters.Request(parameters=[Parameter(name, value=value)
                                                                            .to_parameter_msg()]))
    node.destroy_client(client)
    [result] = response.results
    return result


def test_the_detection_thresholds_are_live_on_a_running_cloud(cloud):
    """``ros2 param set cloud_node score_threshold 0.9``: the next frame's detections are filtered
    with it (here a real frame of the street video cut at layer 7: people at 0.25, fewer at 0.9);
    a value outside 0..1 is refused with the reason and the old one kept."""
    import torch

    from l2p_msgs.msg import DetectionArray, FeatureMap
    from l2p_ros.assets import SAMPLE_VIDEO, asset_path
    from l2p_ros.codec import CodecSpec
    from l2p_ros.model.darknet import load_model
    from l2p_ros.model.postprocess import load_class_names
    from l2p_ros.nodes.common import DETECTIONS_QOS, FRAME_QOS, NEXT_TIER_DETECTIONS_TOPIC, to_time_msg
    from l2p_ros.nodes.conversions import frame_to_msg
    from l2p_ros.sources import read_video
    from l2p_ros.split import SplitDetector

    node, nodes = cloud
    drive(node, ["/cloud_node"], lambda: rclpy.spin_once(node, timeout_sec=0.05), nodes.failed, timeout_s=90)
    torch.set_num_threads(1)
    detector = SplitDetector(load_model("yolov3-tiny"), load_class_names(), "yolov3-tiny-416")
    _, image = next(iter(read_video(asset_path(SAMPLE_VIDEO))))
    frame = detector.edge(image, 7, CodecSpec.parse("fp32"))
    answers: dict[float, int] = {}
    node.create_subscription(DetectionArray, NEXT_TIER_DETECTIONS_TOPIC,
                             lambda msg: answers.__setitem__(msg.header.stamp.sec, len(msg.detections)),
                             DETECTIONS_QOS)
    sender = node.create_publisher(FeatureMap, "l2p/feature_map", FRAME_QOS)
    assert _spin_until(node, lambda: sender.get_subscription_count() == 1, 10)

    def detections(second: int) -> int:
        msg = frame_to_msg(frame, FeatureMap(frame_seq=second))
        msg.header.stamp = to_time_msg(float(second))
        sender.publish(msg)
        assert _spin_until(node, lambda: second in answers, 60), "no answer from the cloud"
        return answers[second]

    at_default = detections(1)
    refused = _set(node, "score_threshold", 1.5)
    assert not refused.successful and ("must be in [0.0, 1.0]" in refused.reason or "out of range" in refused.reason)
    assert detections(2) == at_default  # the old value kept
    assert _set(node, "score_threshold", 0.9).successful
    strict = detections(3)
    expected = sum(d.score >= 0.9 for d in detector.cloud(frame).detections)
    assert strict == expected < at_default
