"""Builds launch descriptions for l2p_ros (imported by the *.launch.py files next to it)."""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

from ament_index_python.packages import get_package_share_directory

from l2p_ros.nodes.dds import LOCAL_PROFILE, SMALL_MESSAGE_PROFILE
from l2p_ros.nodes.launch_support import SMALL_MESSAGE_NODES, launch_arguments

PARAMS_FILE = f"{get_package_share_directory('l2p_ros')}/config/pipeline.yaml"


def describe(nodes, single_host_dds=True, extra_actions=()):
    """Every parameter of ``nodes`` as a launch argument, each node with the YAML plus overrides."""
    arguments = launch_arguments(PARAMS_FILE, nodes)
    actions = [DeclareLaunchArgument(name, default_value=entry["default"],
                                     description=f"sets {', '.join(f'{n}.{p}' for n, p in entry['targets'])}")
               for name, entry in arguments.items()]
    if single_host_dds:
        # Shared memory only: nothing leaves this host (see README, "DDS stays on this machine").
        actions.append(SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", str(LOCAL_PROFILE)))
    for node in nodes:
        overrides = {parameter: ParameterValue(LaunchConfiguration(name), value_type=None)
                     for name, entry in arguments.items() for n, parameter in entry["targets"] if n == node}
        # Single host: nodes that send only small messages get the smaller-footprint SHM profile.
        env = ({"FASTDDS_DEFAULT_PROFILES_FILE": str(SMALL_MESSAGE_PROFILE)}
               if single_host_dds and node in SMALL_MESSAGE_NODES else None)
        actions.append(Node(package="l2p_ros", executable=node, name=node, output="screen",
                            parameters=[PARAMS_FILE, overrides], additional_env=env))
    return LaunchDescription(actions + list(extra_actions))
