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
