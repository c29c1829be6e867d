"""Builds launch descriptions for l2p_ros (imported by the *.launch.py files next to it).

Every launch file takes each node parameter as an argument (named as in ``launch_support``), plus
``namespace``, ``params_file``, ``use_sim_time``, ``log_level``, ``remaps`` and ``single_host_dds``.
The nodes are built once the arguments are known (an OpaqueFunction): a user's parameter file is
read whole and only the arguments given on the command line override it, and each node gets its
parameters as a dict, so they apply under any namespace (a file's ``camera_node:`` key would match
the root namespace only).
"""
import os

import yaml
from launch import LaunchDescription
from launch.actions import (DeclareLaunchArgument, EmitEvent, LogInfo, OpaqueFunction, RegisterEventHandler,
                            SetEnvironmentVariable, TimerAction)
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from ament_index_python.packages import get_package_share_directory

from l2p_ros.nodes.dds import LOCAL_PROFILE, SMALL_MESSAGE_PROFILE
from l2p_ros.nodes.fastdds_shm import sweep
from l2p_ros.nodes.launch_support import (COMMON_ARGUMENTS, SMALL_MESSAGE_NODES, launch_arguments, node_parameters,
                                          parse_remaps)

PARAMS_FILE = f"{get_package_share_directory('l2p_ros')}/config/pipeline.yaml"
# After the camera's source ends: time for the last frames to finish before a replay shuts down.
DRAIN_S = 5.0


def _value(context, name: str) -> str:
    return LaunchConfiguration(name).perform(context)


def _nodes(context, nodes, arguments, shutdown_after_camera, camera_actions):
    params_file = _value(context, "params_file") or PARAMS_FILE
    with open(params_file) as file:
        params = yaml.safe_load(file) or {}
    given = {name: _value(context, name) for name in arguments}
    single_host = _value(context, "single_host_dds").lower() == "true"
    use_sim_time = _value(context, "use_sim_time").lower() == "true"
    remaps = parse_remaps(_value(context, "remaps"))
    actions = []
    if single_host:
        # Shared memory only: nothing leaves this host (see README, "DDS stays on this machine").
        actions.append(SetEnvironmentVariable("FASTDDS_DEFAULT_PROFILES_FILE", str(LOCAL_PROFILE)))
        domain_id = int(os.environ.get("ROS_DOMAIN_ID", "").strip() or 0)
        # Files of dead processes keep the nodes from discovering each other, or hold memory
        # (l2p_ros.nodes.fastdds_shm); others may be starting in a user's domain, so files touched
        # in the last seconds are spared.
        swept = sweep(domain_id, min_age_s=5.0)
        if swept.ports or swept.segments:
            actions.append(LogInfo(msg=f"removed {swept} (DDS domain {domain_id})"))
    for node in nodes:
        values = {**node_parameters(params, node, arguments, given), "use_sim_time": use_sim_time}
        # Single host: nodes that send only small messages get the smaller-footprint SHM profile.
        env = ({"FASTDDS_DEFAULT_PROFILES_FILE": str(SMALL_MESSAGE_PROFILE)}
               if single_host and node in SMALL_MESSAGE_NODES else None)
        action = Node(package="l2p_ros", executable=node, name=node, namespace=_value(context, "namespace") or None,
                      output="screen", parameters=[values], remappings=remaps, additional_env=env,
                      ros_arguments=["--log-level", _value(context, "log_level")])
        actions.append(action)
        if node == "camera_node" and shutdown_after_camera:
            # A finite source (a bag) ends the launch once the last frames had time to finish.
            actions.append(RegisterEventHandler(OnProcessExit(target_action=action, on_exit=[
                TimerAction(period=DRAIN_S, actions=[EmitEvent(event=Shutdown(reason="the camera's source ended"))])])))
    return actions + list(camera_actions(context) if camera_actions else [])


def describe(nodes, single_host_dds=True, extra_arguments=(), shutdown_after_camera=False, more_actions=None,
             argument_defaults=None):
    """Every parameter of ``nodes`` as a launch argument, the common arguments, and the nodes.

    ``more_actions(context)``: further actions built once the arguments are known (a recorder).
    ``argument_defaults``: this launch file's own defaults for some arguments (they differ from the
    packaged parameter file's, so they apply as if given).
    """
    arguments = launch_arguments(PARAMS_FILE, nodes)
    actions = [DeclareLaunchArgument(name, default_value=(argument_defaults or {}).get(name, entry["default"]),
                                     description=f"sets {', '.join(f'{n}.{p}' for n, p in entry['targets'])}")
               for name, entry in arguments.items()]
    actions += [DeclareLaunchArgument(name, default_value=default, description=description)
                for name, default, description in COMMON_ARGUMENTS]
    actions.append(DeclareLaunchArgument(
        "single_host_dds", default_value=str(single_host_dds).lower(),
        description="true: DDS on shared memory only, nothing leaves this host; false: the environment's "
                    "DDS configuration (FASTDDS_DEFAULT_PROFILES_FILE, RMW_IMPLEMENTATION) for several hosts"))
    actions += list(extra_arguments)
    actions.append(OpaqueFunction(function=_nodes, args=[nodes, arguments, shutdown_after_camera, more_actions]))
    return LaunchDescription(actions)
