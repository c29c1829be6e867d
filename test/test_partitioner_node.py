"""The partitioner node in its own process: decisions per frame, and a measured edge power model."""
import math
import time
from pathlib import Path

import numpy as np
import pytest

from l2p_ros.nodes.dds import use_local_dds

use_local_dds()

import rclpy  # noqa: E402
from builtin_interfaces.msg import Time  # noqa: E402
from sensor_msgs.msg import Image  # noqa: E402

from l2p_msgs.msg import DetectionArray, EdgeLoad, NetworkState, PartitionDecision, StageTimings  # noqa: E402
from l2p_ros.nodes.launcher import NodeSet, prepared_parameters, work_dir_for  # noqa: E402
from l2p_ros.nodes.common import DETECTIONS_QOS, FRAME_QOS, IMAGE_QOS, STATE_QOS  # noqa: E402
from l2p_ros.nodes.images import image_to_msg  # noqa: E402
from l2p_ros.measure.cache import ensure_profile  # noqa: E402
from test.ros_helpers import call_service  # noqa: E402


@pytest.fixture()
def partitioner(request):
    """The node in its own process with ``policy: fixed:edge`` or the parameters the test passes."""
    overrides = getattr(request, "param", {"policy": "fixed:edge"})
    params = prepared_parameters(None, {("partitioner_node", name): value for name, value in overrides.items()})
    ensure_profile("yolov3-tiny", 416, threads=int(params["partitioner_node"]["ros__parameters"]["profile_threads"]))
    rclpy.init()
    node = rclpy.create_node("test_partitioner_peer")
    nodes = NodeSet(params, work_dir_for(None), nodes=("partitioner_node",))
    nodes.start_all()
    try:
        yield node, nodes
    finally:
        node.destroy_node()  # our participant before the node's: see pipeline_run (Fast DDS deadlock)
        rclpy.shutdown()
        nodes.stop_all()


def _spin_until(node, predicate, timeout_s):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not predicate():
        rclpy.spin_once(node, timeout_sec=0.05)
    return predicate()


def _decider(node, nodes):
    """``decide()``: publish frames until one gets its decision (the first may race DDS discovery)."""
    decisions = []
    node.create_subscription(PartitionDecision, "l2p/decision", decisions.append, FRAME_QOS)
    image_pub = node.create_publisher(Image, "camera/image_raw", IMAGE_QOS)
    assert _spin_until(node, lambda: image_pub.get_subscription_count() > 0 or bool(nodes.failed()), 90), \
        nodes.failed()
    frame = np.zeros((480, 640, 3), np.uint8)

    def decide():
        count = len(decisions)
        for _ in range(20):
            image_pub.publish(image_to_msg(frame, time.time(), "camera"))
            if _spin_until(node, lambda: len(decisions) > count, 0.5):
                return decisions[-1]
        raise AssertionError("no PartitionDecision within 10 s")
    return decide


def test_edge_energy_follows_the_measured_power_model(partitioner):
    node, nodes = partitioner
    load_pub = node.create_publisher(EdgeLoad, "l2p/edge_load", STATE_QOS)
    decide = _decider(node, nodes)

    assumed = decide()
    assert assumed.cut_after_layer == 23 and assumed.policy == "fixed:edge"
    assert assumed.predicted_edge_energy_j / assumed.predicted_edge_ms * 1e3 == pytest.approx(15.0)  # assumed W
    # A RAPL-like sensor: 5 W idle, 25 W flat out; the load monitor's samples as it would publish them.
    for cpu_percent in np.linspace(10, 90, 30):
        load_pub.publish(EdgeLoad(cpu_percent=float(cpu_percent), memory_percent=40.0,
                                  cpu_package_power_w=5.0 + 0.2 * float(cpu_percent), gpu_percent=float("nan"),
                                  gpu_memory_percent=float("nan"), gpu_power_w=float("nan")))
        rclpy.spin_once(node, timeout_sec=0.02)
    time.sleep(0.5)
    load_pub.publish(EdgeLoad(cpu_percent=0.0, cpu_package_power_w=float("nan"), gpu_percent=float("nan"),
                              gpu_power_w=float("nan")))  # back to idle for the frame itself
    time.sleep(0.3)
    measured = decide()
    assert measured.predicted_edge_energy_j / measured.predicted_edge_ms * 1e3 == pytest.approx(25.0, rel=0.02)
    assert "power model now measured: RAPL" in (nodes.running["partitioner_node"].log_path.read_text())


@pytest.mark.parametrize("partitioner", [{"policy": "fixed:edge", "frame_costs": "none"},
                                         {"policy": "fixed:edge", "frame_costs": "committed"}], indirect=True)
def test_the_policies_charge_the_measured_frame_costs(partitioner, request):
    """Edge only on an idle edge: this host's profile, plus (with the committed frame costs) the
    complexity and the decision measured on every frame."""
    from l2p_ros.measure.frame_costs import committed_frame_costs, load_frame_costs
    from l2p_ros.measure.profile import load_profile

    node, nodes = partitioner
    decision = _decider(node, nodes)()
    charged = request.node.callspec.params["partitioner"]["frame_costs"] == "committed"
    per_frame_ms = load_frame_costs(committed_frame_costs("yolov3-tiny")).edge_per_frame_ms if charged else 0.0
    threads = int(prepared_parameters(None, {})["partitioner_node"]["ros__parameters"]["profile_threads"])
    profile = load_profile(ensure_profile("yolov3-tiny", 416, threads=threads))  # the node's, as the fixture's
    layers_ms = sum(layer.latency_ms_median for layer in profile.layers)
    assert decision.predicted_edge_ms == pytest.approx(layers_ms + per_frame_ms, rel=1e-6)


@pytest.mark.parametrize("partitioner", [{"policy": "fixed:edge", "frame_costs": "none"},
                                         {"policy": "fixed:edge", "frame_costs": "none", "calibrate_edge": False}],
                         indirect=True)
def test_the_edges_measured_times_scale_its_predictions(partitioner, request):
    """The edge reports its frames taking twice the predicted time (l2p/detections): later decisions
    say so, and with calibrate_edge (on by default) predict the edge twice as slow. Answers for
    frames the partitioner never decided, and times that are not numbers, change nothing."""
    node, nodes = partitioner
    calibrating = request.node.callspec.params["partitioner"].get("calibrate_edge", True)
    detections_pub = node.create_publisher(DetectionArray, "l2p/detections", DETECTIONS_QOS)
    decide = _decider(node, nodes)
    first = decide()
    assert first.edge_time_factor == 1.0
    assert _spin_until(node, lambda: detections_pub.get_subscription_count() > 0, 10)
    stranger = DetectionArray(executed_on="edge", timings=StageTimings(edge_ms=50 * first.predicted_edge_ms))
    stranger.header.stamp.sec = 1  # a frame it never decided
    detections_pub.publish(stranger)
    for edge_ms in (float("nan"), 2.0, 2.1, 1.9):
        decision = decide()
        detections_pub.publish(DetectionArray(header=decision.header, executed_on="edge",
                                              timings=StageTimings(edge_ms=edge_ms * decision.predicted_edge_ms)))
        rclpy.spin_once(node, timeout_sec=0.05)
    time.sleep(0.3)
    later = decide()
    assert later.edge_time_factor == pytest.approx(2.0)
    assert later.predicted_edge_ms == pytest.approx((2.0 if calibrating else 1.0) * first.predicted_edge_ms, rel=1e-6)


@pytest.mark.parametrize("partitioner", [{"policy": "greedy", "frame_costs": "none", "calibrate_edge": True}],
                         indirect=True)
def test_a_calibrated_edge_is_predicted_slower_under_the_monitors_load_too(partitioner):
    """The factor is taken against the prediction at the monitor's load of its decision, so a load
    the monitor reports is not counted twice: at 50% and twice the time, 4x the idle prediction."""
    node, nodes = partitioner
    load_pub = node.create_publisher(EdgeLoad, "l2p/edge_load", STATE_QOS)
    detections_pub = node.create_publisher(DetectionArray, "l2p/detections", DETECTIONS_QOS)
    network_pub = node.create_publisher(NetworkState, "l2p/network_state", STATE_QOS)
    decide = _decider(node, nodes)
    assert _spin_until(node, lambda: detections_pub.get_subscription_count() > 0, 10)

    def publish_state():
        network_pub.publish(NetworkState(bandwidth_mbps=0.0, rtt_ms=20.0, link_up=False))  # no link: edge only
        load_pub.publish(EdgeLoad(cpu_percent=50.0, gpu_percent=float("nan")))
        rclpy.spin_once(node, timeout_sec=0.05)
        time.sleep(0.2)

    publish_state()
    loaded = decide()
    assert loaded.cut_after_layer == 23 and loaded.edge_time_factor == 1.0
    for _ in range(3):
        publish_state()
        decision = decide()
        detections_pub.publish(DetectionArray(header=decision.header, executed_on="edge",
                                              timings=StageTimings(edge_ms=2.0 * decision.predicted_edge_ms)))
        rclpy.spin_once(node, timeout_sec=0.05)
    publish_state()
    later = decide()
    assert later.edge_time_factor == pytest.approx(2.0)
    assert later.predicted_edge_ms == pytest.approx(2.0 * loaded.predicted_edge_ms, rel=1e-6)


@pytest.mark.parametrize("partitioner", [{"policy": "greedy", "link_rtt": "floor"},
                                         {"policy": "greedy", "link_rtt": "smoothed"}], indirect=True)
def test_link_rtt_floor_charges_the_lowest_rtt_of_the_last_seconds(partitioner, request):
    """An RTT risen from 30 to 300 ms (the queue the pipeline's own images built): with link_rtt
    floor the policy decides on 30 ms, with smoothed on the monitor's 300."""
    node, nodes = partitioner
    floor = request.node.callspec.params["partitioner"].get("link_rtt") == "floor"
    network_pub = node.create_publisher(NetworkState, "l2p/network_state", STATE_QOS)
    decide = _decider(node, nodes)
    network_pub.publish(NetworkState(bandwidth_mbps=2.0, rtt_ms=30.0, link_up=True))
    assert _spin_until(node, lambda: decide().rtt_ms == pytest.approx(30.0), 10)
    network_pub.publish(NetworkState(bandwidth_mbps=2.0, rtt_ms=300.0, link_up=True))
    time.sleep(0.5)  # the partitioner's subscription has it by now (RELIABLE, on this host)
    decision = decide()
    assert decision.bandwidth_mbps == pytest.approx(2.0)
    assert decision.rtt_ms == pytest.approx(30.0 if floor else 300.0)


@pytest.mark.parametrize("partitioner", [{"policy": "fixed:cloud"}], indirect=True)
def test_link_rtt_own_queue_charges_the_floor_and_the_queue_the_choice_fills(partitioner):
    """The image over a 1 Mbit/s link at 10 frames/s fills it: with link_rtt own-queue (the default,
    link_buffer_ms 200) the decision
    carries the RTT floor (30 ms) and a transfer of the full queue (the deepest the monitor showed,
    270 ms over the floor, deeper than the assumed 200), the sending time and the floor."""
    node, nodes = partitioner
    network_pub = node.create_publisher(NetworkState, "l2p/network_state", STATE_QOS)
    decide = _decider(node, nodes)
    network_pub.publish(NetworkState(bandwidth_mbps=1.0, rtt_ms=30.0, link_up=True))
    assert _spin_until(node, lambda: decide().rtt_ms == pytest.approx(30.0), 10)
    decision = decide()
    sending_ms = decision.predicted_payload_bytes * 8 / 1e3
    assert sending_ms > 100  # the image does not fit in a frame interval: it fills the link
    assert decision.predicted_transfer_ms == pytest.approx(200.0 + sending_ms + 30.0, rel=1e-3)
    network_pub.publish(NetworkState(bandwidth_mbps=1.0, rtt_ms=300.0, link_up=True))
    time.sleep(0.5)  # the partitioner's subscription has it by now (RELIABLE, on this host)
    decision = decide()
    assert decision.rtt_ms == pytest.approx(30.0)
    assert decision.predicted_transfer_ms == pytest.approx(270.0 + sending_ms + 30.0, rel=1e-3)


@pytest.mark.parametrize("partitioner", [{"policy": "fixed:cloud"},  # the default: measured
                                         {"policy": "fixed:cloud", "link_arrivals": "poisson"}], indirect=True)
def test_the_offloaded_frames_send_stamps_measure_how_irregularly_they_reach_the_link(partitioner, request):
    """The image at half the link (its sending 50 ms of the camera's 100): M/D/1 charges it 25 ms of
    queue. The edge reports sending the decided frames 50 and 150 ms apart (l2p/detections): their
    scv, 0.25, is published in the decisions; with link_arrivals measured (the default) it is
    charged (a quarter of M/D/1's wait), with poisson not. Frames the edge ran itself, and stamps
    left unset, are not counted."""
    node, nodes = partitioner
    measured = request.node.callspec.params["partitioner"].get("link_arrivals", "measured") == "measured"
    network_pub = node.create_publisher(NetworkState, "l2p/network_state", STATE_QOS)
    detections_pub = node.create_publisher(DetectionArray, "l2p/detections", DETECTIONS_QOS)
    decide = _decider(node, nodes)
    payload_bytes = decide().predicted_payload_bytes
    bandwidth_mbps = payload_bytes * 8 / (50.0 * 1e3)  # 50 ms of sending per frame
    state = NetworkState(bandwidth_mbps=bandwidth_mbps, rtt_ms=30.0, link_up=True)
    network_pub.publish(state)
    assert _spin_until(node, lambda: decide().bandwidth_mbps == pytest.approx(bandwidth_mbps), 10)
    first = decide()
    assert math.isnan(first.link_arrival_scv)
    assert first.predicted_transfer_ms == pytest.approx(25.0 + 50.0 + 30.0, rel=1e-3)
    assert _spin_until(node, lambda: detections_pub.get_subscription_count() > 0, 10)
    sent_s, offloaded = time.time(), 0
    for k in range(15):
        network_pub.publish(state)  # fresh: a state older than 3 s would be stale
        decision = decide()
        if k == 5:  # run on the edge after a timeout: it never crossed the link
            detections_pub.publish(DetectionArray(header=decision.header, executed_on="edge",
                                                  timings=StageTimings(edge_sent=Time(sec=int(sent_s) + 1))))
            continue
        if k == 8:  # offloaded, but its sender left the stamp unset: not a time to measure
            detections_pub.publish(DetectionArray(header=decision.header, executed_on="cloud"))
            continue
        sent_s += 0.05 if offloaded % 2 else 0.15
        offloaded += 1
        timings = StageTimings(edge_sent=Time(sec=int(sent_s), nanosec=int(sent_s % 1 * 1e9)))
        detections_pub.publish(DetectionArray(header=decision.header, executed_on="cloud", timings=timings))
        rclpy.spin_once(node, timeout_sec=0.05)
    time.sleep(0.3)
    network_pub.publish(state)
    later = decide()
    assert later.link_arrival_scv == pytest.approx(0.25, abs=0.01)
    queue_ms = 25.0 * (later.link_arrival_scv if measured else 1.0)
    assert later.predicted_transfer_ms == pytest.approx(queue_ms + 50.0 + 30.0, rel=1e-3)


@pytest.mark.parametrize("partitioner", [{"policy": "fixed:cloud", "link_backlog": "decided"},
                                         {"policy": "fixed:cloud"}], indirect=True)
def test_with_link_backlog_decided_the_own_queue_is_capped_at_what_its_decisions_left_on_the_link(
        partitioner, request):
    """The image over a 1 Mbit/s link it fills (more than 100 ms of sending a frame): its own queue
    is the full buffer (200 ms). With link_backlog decided every decision carries the backlog the
    decisions before it left (frames a few ms apart, each adding its sending time) and is charged
    the smaller of the two, less its own edge time; off (the default), the decisions carry NaN and
    the full buffer."""
    node, nodes = partitioner
    decided = request.node.callspec.params["partitioner"].get("link_backlog") == "decided"
    network_pub = node.create_publisher(NetworkState, "l2p/network_state", STATE_QOS)
    decide = _decider(node, nodes)
    state = NetworkState(bandwidth_mbps=1.0, rtt_ms=30.0, link_up=True)
    network_pub.publish(state)
    assert _spin_until(node, lambda: decide().bandwidth_mbps == pytest.approx(1.0), 10)
    time.sleep(1.0)  # the frames decided so far leave the link (it holds at most 200 ms and one frame)
    network_pub.publish(state)
    decisions = [decide() for _ in range(4)]
    for decision in decisions:
        sending_ms = decision.predicted_payload_bytes * 8 / 1e3
        assert sending_ms > 100
        if decided:  # at most a full buffer ahead of the last frame's own sending
            assert 0 <= decision.link_queue_now_ms <= 200.0 + sending_ms + 1e-6
            # What is left of it when this frame's head is done.
            queue_ms = min(200.0, max(decision.link_queue_now_ms - decision.predicted_edge_ms, 0.0))
        else:
            assert math.isnan(decision.link_queue_now_ms)
            queue_ms = 200.0
        assert decision.predicted_transfer_ms == pytest.approx(queue_ms + sending_ms + 30.0, rel=1e-3)
    if decided:  # from an empty link the backlog grows by about one frame's sending per decision
        assert decisions[0].link_queue_now_ms == pytest.approx(0.0)
        assert decisions[-1].link_queue_now_ms > decisions[0].link_queue_now_ms + 100.0
        time.sleep(2.0 + decisions[-1].link_queue_now_ms / 1e3)  # the link drains in real time
        network_pub.publish(state)
        assert decide().link_queue_now_ms == pytest.approx(0.0)


@pytest.mark.parametrize("partitioner", [
    {"policy": "greedy", "link_backlog": "kept"},
    {"policy": "greedy", "link_arrivals": "kingman"},
    {"policy": "greedy", "link_rtt": "median"},
    {"policy": "greedy", "link_rtt": "own-queue", "link_buffer_ms": 0.0}], indirect=True)
def test_an_unknown_link_rtt_or_a_link_buffer_of_nothing_is_refused_at_start(partitioner, request):
    node, nodes = partitioner
    assert _spin_until(node, lambda: bool(nodes.failed()), 90)
    params = request.node.callspec.params["partitioner"]
    expected = ("parameter 'link_arrivals'='kingman' is invalid: must be one of poisson, measured"
                if "link_arrivals" in params else
                "parameter 'link_backlog'='kept' is invalid: must be one of off, decided"
                if "link_backlog" in params else
                "parameter 'link_rtt'='median' is invalid: must be one of smoothed, floor, own-queue"
                if params["link_rtt"] == "median" else
                "parameter 'link_buffer_ms'=0.0 is invalid: must be > 0")
    assert expected in nodes.running["partitioner_node"].log_path.read_text()


@pytest.mark.parametrize("partitioner", [{"policy": "greedy", "frame_costs": "/nonexistent/costs.yaml"}],
                         indirect=True)
def test_a_missing_frame_costs_file_is_refused_at_start(partitioner):
    node, nodes = partitioner
    assert _spin_until(node, lambda: bool(nodes.failed()), 90)
    assert "parameter 'frame_costs'='/nonexistent/costs.yaml' is invalid: frame costs not found" in \
        nodes.running["partitioner_node"].log_path.read_text()


BACKHAUL = {"policy": "score", "fog_speed_factor": 4.0, "fog_cloud_bandwidth_mbps": 10.0, "fog_cloud_rtt_ms": 50.0,
            "default_bandwidth_mbps": 50.0, "default_rtt_ms": 5.0}


@pytest.mark.parametrize("partitioner", [BACKHAUL], indirect=True)
def test_with_a_fog_behind_a_slow_backhaul_score_lets_the_fog_finish(partitioner):
    node, nodes = partitioner
    decision = _decider(node, nodes)()
    assert (decision.policy, decision.fog_until_layer) == ("score", 23)  # the fog runs to the last layer
    # Edge only would take about 40 ms and anything sent on to the cloud pays 50 ms of backhaul RTT.
    assert decision.predicted_total_ms < 40.0 and decision.predicted_cloud_ms == 0.0
    assert (decision.fog_cloud_bandwidth_mbps, decision.fog_cloud_rtt_ms) == (10.0, 50.0)


MEASURED_BACKHAUL = {"policy": "score", "fog_speed_factor": 4.0, "fog_cloud_link": "backhaul",
                     "default_bandwidth_mbps": 50.0, "default_rtt_ms": 5.0}


@pytest.mark.parametrize("partitioner", [MEASURED_BACKHAUL], indirect=True)
def test_the_backhaul_a_monitor_on_the_fog_measures_replaces_the_nominal_one(partitioner):
    node, nodes = partitioner
    decide = _decider(node, nodes)
    nominal = decide()
    assert (nominal.fog_cloud_bandwidth_mbps, nominal.fog_cloud_rtt_ms) == (1000.0, 5.0)
    backhaul = node.create_publisher(NetworkState, "l2p/backhaul/network_state", STATE_QOS)

    def decide_with(state):
        for _ in range(20):
            backhaul.publish(state)
            decision = decide()
            if decision.fog_cloud_rtt_ms == state.rtt_ms:
                return decision
        raise AssertionError(f"the partitioner never used {state}")

    slow = decide_with(NetworkState(bandwidth_mbps=10.0, rtt_ms=50.0, link_up=True))
    assert slow.fog_cloud_bandwidth_mbps == 10.0 and slow.fog_until_layer == 23
    down = decide_with(NetworkState(bandwidth_mbps=10.0, rtt_ms=60.0, link_up=False))
    assert down.fog_cloud_bandwidth_mbps == 0.0
    assert down.fog_until_layer == 23 or down.cut_after_layer == 23  # nothing may need the cloud


def test_two_tier_decisions_carry_no_backhaul(partitioner):
    decision = _decider(*partitioner)()
    assert math.isnan(decision.fog_cloud_bandwidth_mbps) and math.isnan(decision.fog_cloud_rtt_ms)


@pytest.mark.parametrize("partitioner, why", [
    ({**MEASURED_BACKHAUL, "fog_cloud_link": "l2p/backhaul"}, "must be empty or a name"),
    ({**MEASURED_BACKHAUL, "fog_speed_factor": 0.0}, "a backhaul needs a fog tier")], indirect=["partitioner"])
def test_a_bad_backhaul_link_is_refused_at_start(partitioner, why):
    node, nodes = partitioner
    assert _spin_until(node, lambda: bool(nodes.failed()), 90)
    log = nodes.running["partitioner_node"].log_path.read_text()
    assert "parameter 'fog_cloud_link'=" in log and why in log


@pytest.mark.parametrize("partitioner", [{**BACKHAUL, "fog_codec": "nonsense"}], indirect=True)
def test_a_fog_codec_without_payload_sizes_is_refused_at_start(partitioner):
    node, nodes = partitioner
    assert _spin_until(node, lambda: bool(nodes.failed()), 90)
    log = nodes.running["partitioner_node"].log_path.read_text()
    assert "parameter 'fog_codec'='nonsense' is invalid: profile has no payload size for codec nonsense" in log


def _set(node, parameters: dict):
    """Set parameters of the running partitioner through its real SetParameters service."""
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter

    client = node.create_client(SetParameters, "/partitioner_node/set_parameters")
    assert _spin_until(node, client.service_is_ready, 30.0)
    request = SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()
                                                for name, value in parameters.items()])
    response = call_service(node, client, request)
    assert response is not None, "no response to set_parameters"
    return response.results


def test_policy_and_assumed_link_are_live_parameters(partitioner):
    node, nodes = partitioner
    decide = _decider(node, nodes)
    assert decide().policy == "fixed:edge"

    [result] = _set(node, {"policy": "cloud-only"})
    assert result.successful, result.reason
    decision = decide()
    assert (decision.policy, decision.cut_after_layer) == ("cloud-only", -1)

    for parameters, why in (({"policy": "nonsense"}, "unknown policy"),
                            ({"codec": "int9"}, "int9"),
                            ({"default_bandwidth_mbps": "fast"}, "must be a number"),
                            ({"default_bandwidth_mbps": -5.0}, "out of range Min: 0.0"),  # the descriptor range
                            ({"model": "yolov3"}, "read-only")):
        [result] = _set(node, parameters)
        assert not result.successful and why in result.reason, (parameters, result.reason)
    assert decide().policy == "cloud-only"  # every refused change kept the old value

    [result] = _set(node, {"image_codec": "jpeg-dnn-q85"})  # cloud-only sends it without weighing it
    assert result.successful, result.reason
    assert decide().codec == "jpeg-dnn-q85"
    [result] = _set(node, {"policy": "greedy"})  # which weighs bytes the edge profile has not measured
    assert not result.successful and "image codec jpeg-dnn-q85: profile has no payload size" in result.reason
    assert decide().policy == "cloud-only"

    results = _set(node, {"default_bandwidth_mbps": 3.5, "default_rtt_ms": 40})
    assert all(result.successful for result in results), [result.reason for result in results]
    decision = decide()
    assert (decision.bandwidth_mbps, decision.rtt_ms) == (3.5, 40.0)  # assumed until a NetworkState arrives


@pytest.mark.parametrize("partitioner", [{"policy": "greedy", "state_max_age_s": 1.0, "default_bandwidth_mbps": 2.0,
                                          "default_rtt_ms": 30.0}], indirect=True)
def test_a_dead_monitors_last_state_goes_stale_and_the_decision_says_so(partitioner):
    """Killed live, the network monitor left 873 Mbit/s behind for 128 decisions; now its last
    state holds for state_max_age_s, then the assumed link is used and the decision names it."""
    node, nodes = partitioner
    network_pub = node.create_publisher(NetworkState, "l2p/network_state", STATE_QOS)
    load_pub = node.create_publisher(EdgeLoad, "l2p/edge_load", STATE_QOS)
    decide = _decider(node, nodes)

    def decide_fresh():  # publish both monitors' states until the partitioner has them
        for _ in range(20):
            network_pub.publish(NetworkState(bandwidth_mbps=873.0, rtt_ms=1.0, link_up=True))
            load_pub.publish(EdgeLoad(cpu_percent=10.0, gpu_percent=float("nan")))
            decision = decide()
            if decision.bandwidth_mbps == 873.0 and not decision.stale_inputs:
                return decision
        raise AssertionError("the partitioner never used the published states")

    fresh = decide_fresh()
    assert fresh.edge_cpu_percent == 10.0
    time.sleep(1.5)  # both monitors silent for longer than state_max_age_s
    stale = decide()
    assert list(stale.stale_inputs) == ["load", "network"]
    assert (stale.bandwidth_mbps, stale.rtt_ms) == (2.0, 30.0) and math.isnan(stale.edge_cpu_percent)
    log = nodes.running["partitioner_node"].log_path.read_text()
    assert "network state stale" in log and "load state stale" in log
    assert not decide_fresh().stale_inputs  # back as soon as the monitors are
    assert _spin_until(node, lambda: "network state fresh again" in
                       nodes.running["partitioner_node"].log_path.read_text(), 5.0)

    # state_max_age_s is live: longer, the same silence no longer makes the states stale
    [refused] = _set(node, {"state_max_age_s": 0.0})
    assert not refused.successful and "must be > 0" in refused.reason, refused.reason
    [result] = _set(node, {"state_max_age_s": 60.0})
    assert result.successful, result.reason
    decide_fresh()
    time.sleep(1.5)
    assert not decide().stale_inputs


FLEET = {"policy": "greedy", "default_bandwidth_mbps": 200.0, "default_rtt_ms": 5.0, "cloud_max_batch": 4,
         "cloud_speed_factor": 20.0,  # a GPU-class cloud: alone, sending the image wins
         "cloud_batching": str(Path(__file__).resolve().parents[1] / "models" / "profiles"
                               / "cloud-batching-yolov3-tiny-416-cpu-vm-2core.yaml")}


@pytest.mark.parametrize("partitioner, vehicles", [({**FLEET, "fleet_vehicles": 1}, 1),
                                                   ({**FLEET, "fleet_vehicles": 100}, 100)],
                         indirect=["partitioner"])
def test_a_partitioner_told_its_cloud_is_shared_leaves_it_when_it_cannot_keep_up(partitioner, vehicles):
    """On a fast link greedy sends images; told 100 vehicles at 10 frames/s share the cloud (more
    images a second than it finishes in batches of 4), it sends a cut whose tail the cloud keeps up with."""
    node, nodes = partitioner
    decision = _decider(node, nodes)()
    log = nodes.running["partitioner_node"].log_path.read_text()
    if vehicles == 1:
        assert decision.cut_after_layer == -1 and "shared by" not in log
    else:
        assert decision.cut_after_layer != -1 and "the cloud is shared by 100 vehicles, batches up to 4" in log


@pytest.mark.parametrize("partitioner", [{"policy": "greedy", "fleet_vehicles": 3}], indirect=True)
def test_a_fleet_without_batch_curves_is_refused_at_start(partitioner):
    node, nodes = partitioner
    assert _spin_until(node, lambda: bool(nodes.failed()), 90)
    assert "parameter 'cloud_batching'='' is invalid: fleet_vehicles > 1 needs" in \
        nodes.running["partitioner_node"].log_path.read_text()
