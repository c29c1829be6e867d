"""All l2p_ros nodes on one host, DDS on shared memory only.

    ros2 launch l2p_ros pipeline.launch.py source:=/path/to/video.mp4 policy:=dads
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import describe  # noqa: E402

from l2p_ros.nodes.launch_support import NODES  # noqa: E402


def generate_launch_description():
    return describe(NODES)
