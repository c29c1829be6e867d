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

from l2p_ros.nodes.launcher import NodeSet, prepared_parameters, temporary_work_dir  # noqa: E402
from l2p_ros.nodes.lifecycle import drive  # noqa: E402
from test.ros_helpers import call_service  # noqa: E402


@pytest.fixture()
def cloud(request):
    overrides = {("cloud_node", "autostart"): False, **getattr(request, "param", {})}
    rclpy.init()
    node = rclpy.create_node("test_lifecycle_peer")
    nodes = NodeSet(prepared_parameters(None, overrides), temporary_work_dir(), nodes=("cloud_node",))
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
