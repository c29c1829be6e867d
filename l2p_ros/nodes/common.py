"""What every l2p node shares: QoS profiles, parameter declaration, time stamps, diagnostics.

Image conversion is in ``l2p_ros.nodes.images``, so nodes that never see an image do not load OpenCV.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.node import Node
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import InvalidParameterValueException
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

# Images: sensor-data QoS, depth 1 — a late frame is worth less than the next one.
IMAGE_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                       reliability=ReliabilityPolicy.BEST_EFFORT,
                       durability=DurabilityPolicy.VOLATILE)


def image_qos(reliability: str = "best_effort", depth: int = 1) -> QoSProfile:
    """The camera's publisher QoS. Our subscribers (IMAGE_SUB_QOS, best effort) read either kind; a
    reliable publisher also serves subscribers that keep image_transport's reliable default, which a
    best-effort publisher never matches. ValueError on an unknown reliability or a depth below 1."""
    policies = {"best_effort": ReliabilityPolicy.BEST_EFFORT, "reliable": ReliabilityPolicy.RELIABLE}
    if reliability not in policies:
        raise ValueError(f"reliability must be one of {', '.join(policies)}")
    if depth < 1:
        raise ValueError("depth must be >= 1")
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=policies[reliability],
                      durability=DurabilityPolicy.VOLATILE)


# Subscribers keep a few images: with depth 1, DDS silently overwrites a frame the callback has not
# taken yet; with a short history every frame reaches the node, which drops stale ones itself and
# counts them (invariant 4). Compatible with the depth-1 publisher. Deep enough to outlast a stall:
# when a peer process dies, Fast DDS's shared-memory health check of its port (1 s by default)
# stalls the processes that still send to it; the edge stood still for 1.27 s after the partitioner
# was killed (test_faults), and with depth 5 one frame of the 7 that came meanwhile was lost
# uncounted (CI, stop 35). 16 hold 3.2 s at that test's 5 frames/s, 1.6 s at the camera's 10.
IMAGE_SUB_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=16,
                           reliability=ReliabilityPolicy.BEST_EFFORT,
                           durability=DurabilityPolicy.VOLATILE)
# Feature maps, decisions, detections: every frame must be accounted for, so reliable, with a
# short queue (a long one would only hold stale frames).
FRAME_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=4, reliability=ReliabilityPolicy.RELIABLE)
# Detections: as frames, but a reader that matches a writer late (a cloud restarted mid-run is
# discovered by the edge in its own time: measured, results of 8 frames published before the
# observer matched were lost) still gets the last few seconds' results. Compatible with volatile
# readers (rqt, ros2 topic echo); readers that want the history use this profile too.
DETECTIONS_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=32, reliability=ReliabilityPolicy.RELIABLE,
                            durability=DurabilityPolicy.TRANSIENT_LOCAL)
# Where the next tier (cloud, or a fog finishing a frame) sends a frame's detections: to the edge
# node only, which republishes them on l2p/detections for the vehicle. One writer on the vehicle
# means every reader there sees a result the edge saw: with the cloud writing to each reader itself,
# a cloud killed mid-send delivered a result to the edge but not to the observer (measured).
NEXT_TIER_DETECTIONS_TOPIC = "l2p/cloud_detections"
# Monitors: the latest estimate is what matters.
STATE_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE)


def declare(node: Node, name: str, default: Any, description: str, live: bool = False,
            minimum: float | int | None = None, maximum: float | int | None = None,
            choices: Sequence[str] | None = None) -> Any:
    """Declare a parameter with a description and return its value at start.

    ``minimum``/``maximum``: the values allowed, as a range in the descriptor (``ros2 param
    describe`` shows it, and rclpy refuses a ``ros2 param set`` outside it) and checked here too,
    with an error naming the parameter (a float parameter given an integer escapes rclpy's check).
    ``choices``: the only values allowed (a mode's names), checked here with the same error.

    A parameter is read once, so it is declared read-only: ``ros2 param set`` on a running node is
    refused with the reason, instead of reporting success and changing nothing. ``live``: the node
    applies changes itself (its set-parameters callback validates and applies them, or refuses).

    A float parameter also accepts an integer (``-p rate_hz:=20``), and a string parameter an
    integer (a camera index, ``source:=0``, arrives from a launch argument or YAML as one), which
    rclpy would otherwise reject as a type mismatch; any other type is refused with an error naming
    the parameter.
    """
    if node.has_parameter(name):  # a lifecycle node configured again after a cleanup
        value = node.get_parameter(name).value
    else:
        descriptor = ParameterDescriptor(description=description, read_only=not live,
                                         dynamic_typing=isinstance(default, (float, str)))
        ranged = minimum is not None or maximum is not None
        if ranged and isinstance(default, float):
            descriptor.floating_point_range = [FloatingPointRange(
                from_value=-math.inf if minimum is None else float(minimum),
                to_value=math.inf if maximum is None else float(maximum))]
        elif ranged and isinstance(default, int) and not isinstance(default, bool):
            descriptor.integer_range = [IntegerRange(from_value=-2**63 if minimum is None else int(minimum),
                                                     to_value=2**63 - 1 if maximum is None else int(maximum))]
        try:
            value = node.declare_parameter(name, default, descriptor).value
        except InvalidParameterValueException:  # outside the range: say it our way, with the value given
            # (rclpy's exception does not keep the value; its overrides are where it came from)
            given = getattr(node, "_parameter_overrides", {}).get(name)
            raise parameter_error(node, name, given.value if given is not None else "?",
                                  range_reason(minimum, maximum)) from None
    try:
        value = as_declared(default, value)
    except ValueError as error:
        raise parameter_error(node, name, value, str(error)) from None
    if not in_range(value, minimum, maximum):
        raise parameter_error(node, name, value, range_reason(minimum, maximum))
    if choices is not None and value not in choices:
        raise parameter_error(node, name, value, f"must be one of {', '.join(choices)}")
    return value


def in_range(value, minimum=None, maximum=None) -> bool:
    return (minimum is None or value >= minimum) and (maximum is None or value <= maximum)


def range_reason(minimum=None, maximum=None) -> str:
    if minimum is not None and maximum is not None:
        return f"must be in [{minimum}, {maximum}]"
    return f"must be >= {minimum}" if maximum is None else f"must be <= {maximum}"


def positive(value: float) -> str | None:
    """A live parameter's ``check`` for a value that must be above 0 (a range includes its bound)."""
    return None if value > 0 else "must be > 0"


@dataclass(frozen=True)
class _Live:
    default: Any
    apply: Callable[[Any], None]
    check: Callable[[Any], str | None] | None
    minimum: float | int | None
    maximum: float | int | None

    def reason(self, value) -> str | None:
        if not in_range(value, self.minimum, self.maximum):
            return range_reason(self.minimum, self.maximum)
        return self.check(value) if self.check else None


class LiveParameters:
    """Parameters a running node applies: ``ros2 param set`` converts each as declared and checks it
    (range, then its ``check``); only once every callback of the node accepted the whole request are
    they applied (rclpy's post-set callback, from the next frame or period); otherwise it is refused
    with the reason and nothing changes. Other parameters are left to their own callbacks (a
    read-only one is refused by rclpy itself)."""

    def __init__(self, node: Node):
        self.node = node
        self._specs: dict[str, _Live] = {}
        node.add_on_set_parameters_callback(self._on_set)
        node.add_post_set_parameters_callback(self._after_set)

    def declare(self, name: str, default: Any, description: str, apply: Callable[[Any], None],
                check: Callable[[Any], str | None] | None = None, minimum=None, maximum=None) -> Any:
        """Declare a live parameter; its value at start (checked like a later set; not applied:
        the node uses the value it gets back). ``apply(value)`` takes a value set later;
        ``check(value)``: the reason to refuse it, or None."""
        value = declare(self.node, name, default, description, live=True, minimum=minimum, maximum=maximum)
        spec = _Live(default, apply, check, minimum, maximum)
        why = spec.reason(value)
        if why:
            raise parameter_error(self.node, name, value, why)
        self._specs[name] = spec
        return value

    def _on_set(self, parameters):
        from rcl_interfaces.msg import SetParametersResult

        for parameter in parameters:
            spec = self._specs.get(parameter.name)
            if spec is None:
                continue
            where = f"{parameter.name}={bounded(parameter.value)!r}"
            try:
                value = as_declared(spec.default, parameter.value)
            except ValueError as error:
                return SetParametersResult(successful=False, reason=f"{where}: {error}")
            why = spec.reason(value)
            if why:
                return SetParametersResult(successful=False, reason=f"{where}: {why}")
        return SetParametersResult(successful=True)

    def _after_set(self, parameters) -> None:
        for parameter in parameters:
            spec = self._specs.get(parameter.name)
            if spec is not None:
                value = as_declared(spec.default, parameter.value)
                spec.apply(value)
                self.node.get_logger().info(f"parameter set live: {parameter.name} = {bounded(value)}")


def as_declared(default: Any, value: Any) -> Any:
    """``value`` in the type of ``default`` (float from int, str from int); ValueError otherwise."""
    if isinstance(default, str):
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise ValueError("must be a string")
        return str(value)
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError("must be a number")
        return float(value)
    return value


MAX_LOGGED_CHARS = 300  # a rejected input's own text in a log line (100,000 edge_layers made 689 KB)


def bounded(value: Any, limit: int = MAX_LOGGED_CHARS) -> str:
    """``str(value)``, cut to ``limit`` characters with the number left out said: for log lines
    that quote received input."""
    text = str(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text) - limit} more characters)"


def parameter_error(node: Node, name: str, value: Any, why: str) -> ValueError:
    """A clear error for a wrong parameter: which one, its value, and why."""
    message = f"{node.get_name()}: parameter '{name}'={value!r} is invalid: {why}"
    node.get_logger().error(message)
    return ValueError(message)


def to_time_msg(seconds: float) -> Time:
    whole = int(seconds)
    return Time(sec=whole, nanosec=int(round((seconds - whole) * 1e9)) % 1_000_000_000)


StampKey = tuple[int, int]


# DetectionArray.executed_on of a frame the edge finished by itself: as decided, or after its
# next tier did not answer (or could not be reached).
EXECUTED_ON_EDGE = "edge"
EXECUTED_ON_EDGE_FALLBACK = "edge (fallback)"


def stamp_key(header) -> StampKey:
    """A frame's identity across nodes: its header stamp (unique per frame, set by the camera)."""
    return header.stamp.sec, header.stamp.nanosec


def from_time_msg(stamp: Time) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def now_s() -> float:
    return time.time()


class Diagnostics:
    """Publishes one DiagnosticStatus for a node on /diagnostics at a fixed period."""

    def __init__(self, node: Node, period_s: float = 1.0):
        self._node = node
        self._publisher = node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._values: dict[str, str] = {}
        self._level = DiagnosticStatus.OK
        self._message = "running"
        node.create_timer(period_s, self.publish)

    def update(self, level: bytes | int = DiagnosticStatus.OK, message: str | None = None, **values: Any) -> None:
        """Set the status (0 OK, 1 WARN, 2 ERROR, or DiagnosticStatus constants) and key values."""
        self._level = bytes([level]) if isinstance(level, int) else level
        if message is not None:
            self._message = message
        self._values.update({k: str(v) for k, v in values.items()})

    def publish(self) -> None:
        # Named by the fully qualified node name, so the vehicles of a fleet (namespaces) stay apart
        # in rqt_robot_monitor and config/diagnostics.yaml can group them.
        status = DiagnosticStatus(level=self._level, name=f"l2p_ros: {self._node.get_fully_qualified_name()}",
                                  message=self._message, hardware_id=self._node.get_fully_qualified_name())
        status.values = [KeyValue(key=k, value=v) for k, v in sorted(self._values.items())]
        array = DiagnosticArray(status=[status])
        array.header.stamp = self._node.get_clock().now().to_msg()
        self._publisher.publish(array)


def run_node(node_class, args=None) -> None:
    """Entry point body shared by every node: init, spin, clean shutdown on Ctrl-C or SIGTERM.

    The DDS configuration comes from the environment (``l2p run`` and the launch files set the
    single-host default), so the same executable also runs in a real two-host deployment.
    """
    import rclpy
    from rclpy.executors import ExternalShutdownException

    rclpy.init(args=args)
    node = None
    try:
        node = node_class()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()


__all__ = ["IMAGE_QOS", "IMAGE_SUB_QOS", "FRAME_QOS", "DETECTIONS_QOS", "STATE_QOS", "NEXT_TIER_DETECTIONS_TOPIC", "declare", "parameter_error", "to_time_msg",
           "from_time_msg", "stamp_key", "StampKey", "now_s", "Diagnostics", "bounded", "as_declared",
           "run_node"]
