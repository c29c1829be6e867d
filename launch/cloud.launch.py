"""The server side: the cloud node (it also answers the network monitor's probes).

    ros2 launch l2p_ros cloud.launch.py model:=yolov3 weights:=/models/yolov3.weights
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import describe  # noqa: E402

from l2p_ros.nodes.launch_support import CLOUD_NODES  # noqa: E402


def generate_launch_description():
    return describe(CLOUD_NODES, single_host_dds=False)
