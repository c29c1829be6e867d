"""The vehicle side: camera, monitors, partitioner and edge node.

No DDS profile is forced here: for a real two-host setup export a FASTDDS_DEFAULT_PROFILES_FILE
with a UDP transport on the vehicle-to-cloud interface before launching (same on the cloud host).

    ros2 launch l2p_ros edge.launch.py source:=/dev/video0 policy:=greedy
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import describe  # noqa: E402

from l2p_ros.nodes.launch_support import EDGE_NODES  # noqa: E402


def generate_launch_description():
    return describe(EDGE_NODES, single_host_dds=False)
