"""The vehicle's edge-side nodes in one process, like a ROS 2 component container.

Camera, load and network monitors, partitioner and edge run as the same node classes, on one
executor and one DDS participant, with the same parameter file (each node reads its
own section). On a Jetson-class board this saves what every extra process costs: a DDS participant
(about 270 MB with the large-message profile) and a Python interpreter, and torch is loaded once.

When the camera's source ends, the container stops once the edge has finished its frames (none
waiting, being run or in flight to the next tier), as the separate processes would: the camera's
process ends, the edge keeps going until the run is torn down.

    ros2 run l2p_ros edge_container --ros-args --params-file config/pipeline.yaml
"""
from __future__ import annotations

import threading
import time

# After the camera's source ended: the edge must have been idle this long before the process stops
# (a frame between the scheduler and the worker is not "in flight" for a moment).
IDLE_SETTLE_S = 1.0
# ... and at most this long: a next tier that never answers is the edge's timeout's business.
DRAIN_LIMIT_S = 60.0


def _stop_when_idle(edge, context) -> None:
    """Shut the container down once ``edge`` has been idle for IDLE_SETTLE_S (or DRAIN_LIMIT_S passed)."""
    import rclpy

    deadline = time.monotonic() + DRAIN_LIMIT_S
    idle_since = None
    while time.monotonic() < deadline:
        if edge.idle():
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since >= IDLE_SETTLE_S:
                break
        else:
            idle_since = None
        time.sleep(0.05)
    rclpy.try_shutdown(context=context)


def main(args=None) -> None:
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    from l2p_ros.nodes.camera_node import CameraNode
    from l2p_ros.nodes.edge_node import EdgeNode
    from l2p_ros.nodes.load_monitor_node import LoadMonitorNode
    from l2p_ros.nodes.network_monitor_node import NetworkMonitorNode
    from l2p_ros.nodes.partitioner_node import PartitionerNode

    rclpy.init(args=args)
    nodes = []
    # One executor thread: the network runs on the edge node's worker thread and the camera reads on
    # its own, so callbacks are short. Measured here at 5 frames/s: rclpy's MultiThreadedExecutor
    # (2 threads) lost 9 of 20 frames as stale at 524 ms mean latency, this one none at 64 ms, the
    # same as separate processes (63 ms).
    executor = SingleThreadedExecutor()
    try:
        # The camera last: it publishes once its subscribers (edge, partitioner, ...) are there.
        for node_class in (LoadMonitorNode, NetworkMonitorNode, PartitionerNode, EdgeNode, CameraNode):
            nodes.append(node_class())
            executor.add_node(nodes[-1])
        edge, camera = nodes[3], nodes[4]
        drain = threading.Thread(target=_stop_when_idle, args=(edge, camera.context), name="edge_drain", daemon=True)
        # Started once, however often the camera reports the end (its guard condition can fire again).
        camera.on_source_end = lambda: drain.ident is None and drain.start()
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        executor.shutdown()
        for node in reversed(nodes):
            node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
