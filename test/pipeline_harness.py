"""A live pipeline for tests: real node processes on the local DDS profile, watched in-process."""
from __future__ import annotations

import contextlib
import time

from l2p_ros.nodes.dds import use_local_dds

use_local_dds()

import rclpy  # noqa: E402

from l2p_ros.nodes.launcher import NodeSet, work_dir_for  # noqa: E402
from l2p_ros.nodes.observer import PipelineObserver  # noqa: E402
from l2p_ros.nodes.pipeline_run import run_parameters, wait_ready  # noqa: E402


@contextlib.contextmanager
def live_pipeline(overrides: dict, extra_nodes: dict | None = None):
    """Yields (nodes, observer) with every node but the camera running and ready; camera started last.

    ``extra_nodes``: {name: (executable, {parameter: value})}, e.g. a fog instance of cloud_node,
    whose parameters start as a copy of the executable's own section.
    """
    params = run_parameters(None, overrides, log=lambda *_: None)
    for name, (executable, node_overrides) in (extra_nodes or {}).items():
        params[name] = {"ros__parameters": {**params[executable]["ros__parameters"], **node_overrides}}
    rclpy.init()
    observer = PipelineObserver(print_frames=False)
    nodes = NodeSet(params, work_dir_for(None))
    try:
        nodes.start_all(except_nodes=("camera_node",))
        for name, (executable, _) in (extra_nodes or {}).items():
            nodes.start(name, executable)
        wait_ready(observer, nodes, time.monotonic())
        nodes.start("camera_node")
        yield nodes, observer
    finally:
        # Our participant before the nodes: see pipeline_run (Fast DDS deadlock on teardown).
        observer.destroy_node()
        rclpy.shutdown()
        nodes.stop_all()


def spin_until(observer, predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        rclpy.spin_once(observer, timeout_sec=0.05)
        if predicate():
            return True
    return predicate()


def spin_for(observer, seconds: float) -> None:
    spin_until(observer, lambda: False, seconds)
