"""Replay a rosbag2 bag of driving data through the whole pipeline and record the results.

    ros2 launch l2p_ros replay.launch.py source:=/bags/drive_01 bag_image_topic:=/front/image_raw \\
        output_bag:=/tmp/l2p_results
"""
import sys
from pathlib import Path

from launch.actions import DeclareLaunchArgument, ExecuteProcess
from launch.substitutions import LaunchConfiguration

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import describe  # noqa: E402

from l2p_ros.nodes.launch_support import NODES  # noqa: E402
from l2p_ros.nodes.observer import RECORDED  # noqa: E402


def generate_launch_description():
    record = ExecuteProcess(
        cmd=["ros2", "bag", "record", "-o", LaunchConfiguration("output_bag")] + [f"/{t}" for t, _, _ in RECORDED],
        output="screen")
    return describe(NODES, extra_actions=[
        DeclareLaunchArgument("output_bag", default_value="l2p_results",
                              description="bag that records detections, decisions and stats"),
        record])
