"""Replay a rosbag2 bag of driving data through the whole pipeline, record the results, and stop
when the bag has been played (and its last frames had time to finish).

    ros2 launch l2p_ros replay.launch.py source:=/bags/drive_01 bag_image_topic:=/front/image_raw \\
        output_bag:=/tmp/l2p_results [namespace:=car1]
"""
import sys
from pathlib import Path

from launch.actions import DeclareLaunchArgument, ExecuteProcess
from launch.substitutions import LaunchConfiguration

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import describe  # noqa: E402

from l2p_ros.nodes.launch_support import NODES, qualified_topic  # noqa: E402
from l2p_ros.nodes.observer import RECORDED  # noqa: E402


def _recorder(context):
    # The nodes' topics are relative; the recorder asks for them under the run's namespace.
    namespace = LaunchConfiguration("namespace").perform(context)
    topics = [qualified_topic(namespace, topic) for topic, _, _ in RECORDED]
    return [ExecuteProcess(cmd=["ros2", "bag", "record", "-o", LaunchConfiguration("output_bag").perform(context),
                                "--topics", *topics], output="screen")]


def generate_launch_description():
    # The camera waits for the edge and the partitioner: a bag's frames are not lost to start-up.
    output_bag = DeclareLaunchArgument("output_bag", default_value="l2p_results",
                                       description="bag that records detections, decisions and stats")
    return describe(NODES, shutdown_after_camera=True, more_actions=_recorder, extra_arguments=[output_bag],
                    argument_defaults={"min_subscribers": "2"})
