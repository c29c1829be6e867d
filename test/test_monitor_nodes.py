"""The monitor nodes as real processes over the local DDS profile, and the probe estimate on a
kernel-shaped link between network namespaces."""
import json
import math
import os
import shutil
import subprocess
import sys
import time

import psutil
import pytest
import yaml

from l2p_ros.nodes.dds import local_dds_env, use_local_dds

use_local_dds()  # before rclpy is imported anywhere in this process

rclpy = pytest.importorskip("rclpy")
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from std_msgs.msg import UInt32  # noqa: E402

from l2p_msgs.msg import EdgeLoad, FeatureMap, NetworkState  # noqa: E402
from l2p_ros.monitoring.load import NvmlReader  # noqa: E402
from l2p_ros.nodes.common import FRAME_QOS, STATE_QOS, now_s, to_time_msg  # noqa: E402
from l2p_ros.nodes.network_monitor_node import NetworkMonitorNode  # noqa: E402
from l2p_ros.nodes.probe_echo import ProbeEchoNode  # noqa: E402
from test.ros_helpers import call_service  # noqa: E402

TIMEOUT_S = 1.0


def start_node(module, tmp_path, node_name=None, **parameters):
    """Start a node the way ``l2p run`` does: ``python -m``, parameters from a YAML file keyed by
    the node's name (so a node named otherwise than pipeline.yaml expects would ignore them)."""
    params_file = tmp_path / f"{module}.yaml"
    params_file.write_text(yaml.safe_dump({node_name or module: {"ros__parameters": parameters}}))
    return subprocess.Popen([sys.executable, "-m", f"l2p_ros.nodes.{module}", "--ros-args", "--params-file",
                             str(params_file)], env=local_dds_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def stop(*processes):
    """Terminate the processes; returns their stderr."""
    errors = []
    for process in processes:
        if process.poll() is None:
            process.terminate()
        try:
            errors.append(process.communicate(timeout=10)[1])
        except subprocess.TimeoutExpired:
            process.kill()
            errors.append(process.communicate()[1])
    return errors


@pytest.fixture(autouse=True, scope="module")
def own_dds_domain():
    """Other test runs and ``l2p run`` on this machine use the same shared-memory DDS and the same
    topic names; a domain of our own keeps their monitors' messages out of these tests."""
    previous = os.environ.get("ROS_DOMAIN_ID")
    os.environ["ROS_DOMAIN_ID"] = str(1 + os.getpid() % 100)  # inherited by the node processes
    yield
    if previous is None:
        del os.environ["ROS_DOMAIN_ID"]
    else:
        os.environ["ROS_DOMAIN_ID"] = previous


@pytest.fixture
def ros_node():
    rclpy.init()
    node = rclpy.create_node("monitor_test")
    try:
        yield node
    finally:
        node.destroy_node()
        rclpy.shutdown()


def spin_until(node, condition, timeout_s):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
        if condition():
            return True
    return False


def test_link_up_with_estimates_then_down_when_the_echo_dies(ros_node, tmp_path):
    states = []
    ros_node.create_subscription(NetworkState, "l2p/network_state", states.append, STATE_QOS)
    echo = start_node("probe_echo", tmp_path, node_name="probe_echo_node")
    monitor = start_node("network_monitor_node", tmp_path, probe_period_s=0.1, publish_period_s=0.1,
                         timeout_s=TIMEOUT_S, probe_payload_bytes=4 << 20)
    try:
        def estimated():
            last = states[-1] if states else None
            return (last is not None and last.link_up and all(math.isfinite(value) for value in (
                last.bandwidth_mbps, last.bandwidth_std_mbps, last.rtt_ms, last.rtt_std_ms)))

        assert spin_until(ros_node, estimated, 20.0), (states[-1:], echo.poll(), monitor.poll())
        up = states[-1]
        for process in (echo, monitor):  # the safety rule: shared memory only, no UDP socket
            assert psutil.Process(process.pid).net_connections(kind="udp") == []
        assert up.bandwidth_mbps > 0 and up.rtt_ms > 0
        assert up.bandwidth_std_mbps >= 0 and up.rtt_std_ms >= 0

        echo.kill()  # a crash, not a polite shutdown
        killed_at = time.monotonic()
        assert spin_until(ros_node, lambda: not states[-1].link_up, TIMEOUT_S + 2.0)
        # timeout_s from the parameter file (the default is 2 s), one publish period, delivery
        assert time.monotonic() - killed_at <= TIMEOUT_S + 0.8
        assert math.isfinite(states[-1].rtt_ms)  # the last estimate is kept while down
    finally:
        stop(echo, monitor)


def test_a_named_link_is_probed_on_its_own_topics(ros_node, tmp_path):
    """A backhaul monitor and its echo (probe_link: backhaul) beside an unnamed uplink monitor with
    no echo at all: only the backhaul is up, so the two links' probes do not mix."""
    uplink, backhaul = [], []
    ros_node.create_subscription(NetworkState, "l2p/network_state", uplink.append, STATE_QOS)
    ros_node.create_subscription(NetworkState, "l2p/backhaul/network_state", backhaul.append, STATE_QOS)
    timing = {"probe_period_s": 0.1, "publish_period_s": 0.1, "timeout_s": TIMEOUT_S}
    for name in ("uplink", "bad"):  # one parameter file per monitor
        (tmp_path / name).mkdir()
    echo = start_node("probe_echo", tmp_path, node_name="probe_echo_node", probe_link="backhaul")
    monitor = start_node("network_monitor_node", tmp_path, probe_link="backhaul", **timing)
    uplink_monitor = start_node("network_monitor_node", tmp_path / "uplink", **timing)
    bad = start_node("network_monitor_node", tmp_path / "bad", probe_link="back/haul")
    try:
        assert spin_until(ros_node, lambda: bool(backhaul) and backhaul[-1].link_up and uplink, 20.0), \
            (backhaul[-1:], uplink[-1:], echo.poll(), monitor.poll())
        spin_until(ros_node, lambda: False, 3 * TIMEOUT_S)
        assert backhaul[-1].link_up and backhaul[-1].rtt_ms > 0
        assert not any(state.link_up for state in uplink)
        assert bad.wait(timeout=30) != 0
    finally:
        errors = stop(echo, monitor, uplink_monitor, bad)
    assert "parameter 'probe_link'='back/haul' is invalid" in errors[3]


def test_load_monitor_publishes_edge_load(ros_node, tmp_path):
    loads = []
    ros_node.create_subscription(EdgeLoad, "l2p/edge_load", loads.append, STATE_QOS)
    queue = ros_node.create_publisher(UInt32, "l2p/edge/queue_length", STATE_QOS)
    monitor = start_node("load_monitor_node", tmp_path, period_s=0.2)
    try:
        def queue_seen():
            queue.publish(UInt32(data=3))
            return bool(loads) and loads[-1].queue_length == 3

        assert spin_until(ros_node, queue_seen, 20.0), (loads[-1:], monitor.poll())
        load = loads[-1]
        assert 0 <= load.cpu_percent <= 100 and 0 < load.memory_percent < 100
        gpu_here = not math.isnan(NvmlReader(0, warn=lambda message: None).read()[0])
        gpu_fields = (load.gpu_percent, load.gpu_memory_percent, load.gpu_power_w)
        assert all(math.isnan(v) for v in gpu_fields) != gpu_here
        if not os.access("/sys/class/powercap/intel-rapl:0/energy_uj", os.R_OK):
            assert math.isnan(load.cpu_package_power_w)
    finally:
        [log] = stop(monitor)
    if not gpu_here:
        assert log.count("GPU fields are NaN") == 1, log  # said once, not every sample


@pytest.mark.parametrize("override, name", [
    ("timeout_s:=0.2", "timeout_s"),
    ("probe_payload_bytes:=0", "probe_payload_bytes"),
    ("smoothing:=1.5", "smoothing"),
    ("publish_period_s:=-1.0", "publish_period_s"),
])
def test_wrong_parameters_fail_naming_the_parameter(override, name):
    rclpy.init(args=["--ros-args", "-p", override])
    try:
        with pytest.raises(ValueError, match=f"parameter '{name}'"):
            NetworkMonitorNode()
    finally:
        rclpy.shutdown()


def test_passive_transfer_receipts_give_the_bandwidth():
    """The cloud side reports received FeatureMaps; the monitor turns them into throughput."""
    # The first payload probe goes out after two periods (6 s), when the receipts below are done:
    # it would measure the shared-memory link, not the 100 Mbit/s the receipts describe.
    rclpy.init(args=["--ros-args", "-p", "probe_period_s:=3.0", "-p", "publish_period_s:=0.1",
                     "-p", "timeout_s:=6.0"])
    monitor, cloud = NetworkMonitorNode(), ProbeEchoNode()
    executor = SingleThreadedExecutor()
    for node in (monitor, cloud):
        executor.add_node(node)
    states = []
    observer = rclpy.create_node("observer")
    observer.create_subscription(NetworkState, "l2p/network_state", states.append, STATE_QOS)
    executor.add_node(observer)
    try:
        deadline = time.monotonic() + 10
        while not (states and states[-1].link_up) and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        assert states and states[-1].link_up
        base_ms = monitor._link.apparent_one_way_ms.value  # what the empty probe measured
        for seq in range(12):
            received_s = now_s()
            feature_map = FeatureMap(frame_seq=seq, payload_bytes=1_000_000)
            # 1 MB taking 80 ms on top of the empty probe's delay: 100 Mbit/s. One after the other,
            # as a link carries them: a frame arriving sooner after the one before it was faster.
            feature_map.timings.edge_sent = to_time_msg(received_s - (80.0 + base_ms) / 1e3)
            cloud.echo.report_transfer(feature_map, received_s)
            spin_deadline = time.monotonic() + 0.1
            while time.monotonic() < spin_deadline:
                executor.spin_once(timeout_sec=0.01)
        deadline = time.monotonic() + 5
        while not (abs(states[-1].bandwidth_mbps - 100.0) < 10.0) and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        assert states[-1].bandwidth_mbps == pytest.approx(100.0, rel=0.1)
    finally:
        for node in (monitor, cloud, observer):
            node.destroy_node()
        rclpy.shutdown()


def test_no_payload_probe_while_frames_measure_the_link():
    """While transfer receipts come, the monitor sends only empty probes (the frames measure the
    link); once they stop, payload probes resume."""
    from l2p_msgs.msg import Probe

    rclpy.init(args=["--ros-args", "-p", "probe_period_s:=0.2", "-p", "timeout_s:=2.0"])
    monitor, cloud = NetworkMonitorNode(), ProbeEchoNode()
    observer = rclpy.create_node("observer")
    probes = []
    observer.create_subscription(Probe, "l2p/probe", lambda probe: probes.append((time.monotonic(), probe.payload_bytes)),
                                 FRAME_QOS)
    executor = SingleThreadedExecutor()
    for node in (monitor, cloud, observer):
        executor.add_node(node)

    def spin_for(seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.01)

    try:
        spin_for(2.0)  # the link is measured by probes first
        assert any(size for _, size in probes), probes
        frames_from = time.monotonic()
        for seq in range(30):  # 3 s of frames, 10 per second, 100 KB at ~100 Mbit/s
            received_s = now_s()
            feature_map = FeatureMap(frame_seq=seq, payload_bytes=100_000)
            feature_map.timings.edge_sent = to_time_msg(received_s - 0.009)
            cloud.echo.report_transfer(feature_map, received_s)
            spin_for(0.1)
        frames_until = time.monotonic()
        spin_for(1.5)
        during = [size for t, size in probes if frames_from + 0.5 < t < frames_until]
        after = [size for t, size in probes if t > frames_until + 0.5]
        assert during and not any(during), during
        assert any(after), after
    finally:
        for node in (monitor, cloud, observer):
            node.destroy_node()
        rclpy.shutdown()


# --- A kernel-shaped link: two network namespaces, a veth pair, tc tbf -----------------------

SHAPED_RATE_MBPS = 10.0
PORT = 47123

ECHO_SERVER = """
import socket, struct, time
server = socket.create_server(("10.77.0.2", %d))
connection, _ = server.accept()
connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
stream = connection.makefile("rb")
while header := stream.read(8):
    seq, payload_bytes = struct.unpack("!II", header)
    stream.read(payload_bytes)
    connection.sendall(struct.pack("!IId", seq, payload_bytes, time.time()))  # the echo, without payload
""" % PORT

PROBER = """
import json, os, socket, struct, time
from l2p_ros.monitoring.estimators import LinkEstimator
from l2p_ros.monitoring.probe import ProbeTracker
payload_bytes = 65536
tracker, link = ProbeTracker(payload_bytes, timeout_s=2.0), LinkEstimator(timeout_s=2.0)
deadline = time.monotonic() + 10
while True:
    try:
        connection = socket.create_connection(("10.77.0.2", %d), timeout=1)
        break
    except OSError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.05)
connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
stream = connection.makefile("rb")
filler = os.urandom(payload_bytes)
for _ in range(24):
    probes = tracker.send(time.monotonic(), time.time())
    for seq, size in probes:  # an empty probe, every second round with a payload probe behind it
        connection.sendall(struct.pack("!II", seq, size) + filler[:size])
    for _ in probes:
        echo_seq, echo_bytes, received_s = struct.unpack("!IId", stream.read(16))
        result = tracker.match(echo_seq, echo_bytes, received_s, time.monotonic())
        link.add_probe(result.payload_bytes, result.rtt_ms, result.apparent_one_way_ms, time.monotonic(),
                       result.dispersion_ms)
state = link.state(time.monotonic())
print(json.dumps({"bandwidth_mbps": state.bandwidth_mbps, "rtt_ms": state.rtt_ms}))
""" % PORT


def ip(*args):
    return subprocess.run(["ip", *args], capture_output=True, text=True)


@pytest.fixture
def shaped_link():
    """Namespaces edge (10.77.0.1) and cloud (10.77.0.2) joined by a veth whose edge side is shaped
    to 10 Mbit/s. Both ends are created inside the namespaces: nothing touches the host's network."""
    if os.geteuid() != 0 or not (shutil.which("ip") and shutil.which("tc")):
        pytest.skip("needs root and the ip and tc tools to build network namespaces")
    tag = os.getpid() % 100000
    edge, cloud = f"l2p-edge-{tag}", f"l2p-cloud-{tag}"
    steps = [("netns", "add", edge), ("netns", "add", cloud),
             ("-n", edge, "link", "add", f"l2pe{tag}", "type", "veth", "peer", "name", f"l2pc{tag}", "netns", cloud),
             ("-n", edge, "addr", "add", "10.77.0.1/30", "dev", f"l2pe{tag}"),
             ("-n", cloud, "addr", "add", "10.77.0.2/30", "dev", f"l2pc{tag}"),
             ("-n", edge, "link", "set", f"l2pe{tag}", "up"), ("-n", cloud, "link", "set", f"l2pc{tag}", "up"),
             ("-n", edge, "link", "set", "lo", "up"), ("-n", cloud, "link", "set", "lo", "up"),
             ("netns", "exec", edge, "tc", "qdisc", "add", "dev", f"l2pe{tag}", "root", "tbf",
              "rate", f"{SHAPED_RATE_MBPS:g}mbit", "burst", "32kbit", "latency", "400ms")]
    try:
        for step in steps:
            done = ip(*step)
            if done.returncode != 0:
                pytest.skip(f"cannot build the shaped link here: ip {' '.join(step)}: {done.stderr.strip()}")
        yield edge, cloud
    finally:
        ip("netns", "del", edge)  # deleting a namespace deletes its veth end, and the pair with it
        ip("netns", "del", cloud)


def test_probe_estimate_on_a_tbf_shaped_link(shaped_link):
    edge, cloud = shaped_link
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    server = subprocess.Popen(["ip", "netns", "exec", cloud, sys.executable, "-c", ECHO_SERVER], cwd=root,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        prober = subprocess.run(["ip", "netns", "exec", edge, sys.executable, "-c", PROBER], cwd=root,
                                capture_output=True, text=True, timeout=30)
        assert prober.returncode == 0, prober.stderr
        estimate = json.loads(prober.stdout)
        assert estimate["bandwidth_mbps"] == pytest.approx(SHAPED_RATE_MBPS, rel=0.3), estimate
        assert 0 < estimate["rtt_ms"] < 5, estimate  # the veth adds no delay of its own
    finally:
        server.kill()
        server.communicate()


def _set(ros_node, node_name: str, name: str, value):
    """One parameter set through the node's real SetParameters service; its result."""
    from rcl_interfaces.srv import SetParameters
    from rclpy.parameter import Parameter

    client = ros_node.create_client(SetParameters, f"/{node_name}/set_parameters")
    assert spin_until(ros_node, lambda: client.service_is_ready(), 30.0)
    response = call_service(ros_node, client, SetParameters.Request(
        parameters=[Parameter(name, value=value).to_parameter_msg()]))
    assert response is not None, "no response to set_parameters"
    [result] = response.results
    return result


def test_monitor_settings_are_live_or_refuse_a_set_with_the_reason(ros_node, tmp_path):
    """``ros2 param set`` on a running monitor: a live setting (the load monitor's period) changes
    what it publishes from then on; a bad value, or a parameter read once at start, is refused with
    the reason, never a reported success that changes nothing."""
    load = start_node("load_monitor_node", tmp_path, period_s=0.2)
    network = start_node("network_monitor_node", tmp_path, probe_period_s=0.5)
    stamps: list[float] = []
    ros_node.create_subscription(EdgeLoad, "l2p/edge_load", lambda msg: stamps.append(time.monotonic()), STATE_QOS)
    try:
        assert spin_until(ros_node, lambda: len(stamps) >= 6, 30.0), load.poll()
        result = _set(ros_node, "load_monitor_node", "period_s", 1.0)
        assert result.successful, result.reason
        spin_until(ros_node, lambda: False, 1.2)  # the old period's last message, if any
        stamps.clear()
        spin_until(ros_node, lambda: False, 3.5)
        assert 2 <= len(stamps) <= 4, stamps  # one a second now (it was five)
        for node, name, value, why in (
                ("load_monitor_node", "period_s", 0.0, "must be > 0"),
                ("load_monitor_node", "gpu_index", 3, "read-only"),
                ("network_monitor_node", "timeout_s", 0.5, "at least twice probe_period_s"),
                ("network_monitor_node", "probe_share", 1.5, "must be below 1"),
                ("network_monitor_node", "smoothing", 0.5, "read-only")):
            result = _set(ros_node, node, name, value)
            assert not result.successful and why in result.reason.replace("read only", "read-only"), \
                (name, result.reason)
        for name, value in (("probe_share", 0.05), ("timeout_s", 3.0)):
            result = _set(ros_node, "network_monitor_node", name, value)
            assert result.successful, (name, result.reason)
    finally:
        _, network_log = stop(load, network)
    assert "parameter set live: timeout_s = 3.0" in network_log


def test_diagnostics_levels_reach_diagnostics_from_running_monitors(ros_node, tmp_path):
    """What rqt_robot_monitor shows, read from /diagnostics: a network monitor whose next tier never
    answers is WARN with the reason; a load monitor that reads the CPU is OK."""
    from diagnostic_msgs.msg import DiagnosticArray

    seen: dict[str, tuple[int, str]] = {}

    def on_diagnostics(array) -> None:
        for status in array.status:
            seen[status.name] = (status.level[0] if isinstance(status.level, bytes) else status.level, status.message)

    ros_node.create_subscription(DiagnosticArray, "/diagnostics", on_diagnostics, 10)
    network = start_node("network_monitor_node", tmp_path, probe_period_s=0.2, timeout_s=0.5)
    load = start_node("load_monitor_node", tmp_path, period_s=0.2)
    names = ("l2p_ros: /network_monitor_node", "l2p_ros: /load_monitor_node")
    try:
        assert spin_until(ros_node, lambda: all(name in seen for name in names), 30.0), seen
        assert spin_until(ros_node, lambda: seen[names[0]][0] == 1, 10.0), seen
    finally:
        stop(network, load)
    assert seen[names[0]] == (1, "link down: the next tier does not answer")
    assert seen[names[1]] == (0, "running")  # sensors this host never had (GPU, RAPL) are no fault
