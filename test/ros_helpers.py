"""Helpers for tests that start real rclpy processes on the shared-memory-only DDS profile."""
from __future__ import annotations

import subprocess
import sys
import textwrap

from l2p_ros.nodes.dds import local_dds_env


def start_python(code: str, *args: str, small_messages: bool = False, profile=None) -> subprocess.Popen:
    """Run ``code`` in a fresh interpreter with the local DDS environment (``small_messages``: the
    smaller-footprint profile; ``profile``: another local profile)."""
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args],
                            env=local_dds_env(small_messages=small_messages, profile=profile),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def call_service(node, client, request, timeout_s: float = 30.0, attempt_s: float = 5.0):
    """Call ``client`` and spin ``node`` until the response arrives; the result, or None after
    ``timeout_s``.

    A service reports ready once its request reader has matched, but its response writer may not
    have matched our reader yet: Fast DDS then drops the response and the future never completes
    (seen as a flaky failure under a loaded full suite). So a request unanswered after ``attempt_s``
    is withdrawn and sent again; the services called this way (parameter sets) are idempotent."""
    import time

    import rclpy

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        future = client.call_async(request)
        attempt_end = min(deadline, time.monotonic() + attempt_s)
        while time.monotonic() < attempt_end and not future.done():
            rclpy.spin_once(node, timeout_sec=0.05)
        if future.done():
            return future.result()
        client.remove_pending_request(future)
    return None
