"""What the launch files and ``l2p run`` share: the node list, and launch arguments mirroring parameters.

Launch arguments are named after the parameters they set; a parameter name used by several nodes
with the same meaning (``model``, ``input_size``, ...) is one argument for all of them, and the few
names that mean different things per node are renamed in ``RENAMED``.
"""
from __future__ import annotations

from pathlib import Path

import yaml

# (node, parameter) -> launch argument name, where the plain name would be ambiguous.
RENAMED = {
    ("camera_node", "image_topic"): "bag_image_topic",
    ("camera_node", "output_topic"): "camera_topic",
    ("cloud_node", "output_topic"): "fog_output_topic",
    ("edge_node", "threads"): "edge_threads",
    ("cloud_node", "threads"): "cloud_threads",
    ("edge_node", "device"): "edge_device",
    ("cloud_node", "device"): "cloud_device",
    ("edge_node", "precision"): "edge_precision",
    ("cloud_node", "precision"): "cloud_precision",
    ("edge_node", "image_topic"): "camera_topic",
    ("partitioner_node", "image_topic"): "camera_topic",
}
# The one node list, in start order: the edge node comes last, since it waits for the next tier's reader
# to be matched before it takes frames. Launch files and ``l2p run`` both start these.
NODES = ("camera_node", "load_monitor_node", "network_monitor_node", "partitioner_node", "cloud_node", "edge_node")
CLOUD_NODES = ("cloud_node",)
EDGE_NODES = tuple(node for node in NODES if node not in CLOUD_NODES)
# Nodes that send only small messages run on the single-host DDS profile sized for them
# (dds.SMALL_MESSAGE_PROFILE): a quarter of the memory per process.
SMALL_MESSAGE_NODES = ("load_monitor_node", "network_monitor_node")


def argument_name(node: str, parameter: str) -> str:
    return RENAMED.get((node, parameter), parameter)


def launch_arguments(params_file: str | Path, nodes: tuple[str, ...]) -> dict[str, dict]:
    """Launch argument name -> {"default": str, "targets": [(node, parameter), ...]} for ``nodes``."""
    data = yaml.safe_load(Path(params_file).read_text()) or {}
    arguments: dict[str, dict] = {}
    for node in nodes:
        for parameter, value in (data.get(node, {}).get("ros__parameters") or {}).items():
            name = argument_name(node, parameter)
            default = str(value).lower() if isinstance(value, bool) else str(value)
            entry = arguments.setdefault(name, {"default": default, "targets": []})
            entry["targets"].append((node, parameter))
    return arguments


# Launch arguments every launch file offers besides the parameters: (name, default, description).
# ``single_host_dds`` defaults per file (on for the one-host files, off for edge/cloud).
COMMON_ARGUMENTS = (
    ("namespace", "", "namespace of every node (one vehicle or camera of several); topics are relative"),
    ("params_file", "", "parameter YAML (pipeline.yaml's layout) instead of the packaged one; "
                        "arguments given on the command line still override it"),
    ("use_sim_time", "false", "nodes take ROS time from /clock (ros2 bag play --clock)"),
    ("log_level", "info", "log level of every node (debug, info, warn, error, fatal)"),
    ("remaps", "", "remappings for every node, comma-separated from:=to pairs"),
)


def node_parameters(params: dict, node: str, arguments: dict[str, dict], given: dict[str, str]) -> dict:
    """The parameters ``node`` starts with: its section of ``params`` (the parameter file), then every
    launch argument the user gave that sets one of its parameters (``given``: argument name -> text;
    an argument left at its packaged default does not override the file: a user's params_file wins
    over the packaged defaults). Texts are read as YAML, as ``ros2 launch`` reads typed values."""
    values = dict((params.get(node) or {}).get("ros__parameters") or {})
    for name, entry in arguments.items():
        if name in given and given[name] != entry["default"]:
            for target, parameter in entry["targets"]:
                if target == node:
                    values[parameter] = yaml.safe_load(given[name]) if given[name] != "" else ""
    return values


def parse_remaps(text: str) -> list[tuple[str, str]]:
    """``"a:=b,c:=d"`` -> [("a", "b"), ("c", "d")]; a malformed pair is an error naming it."""
    remaps = []
    for pair in filter(None, (part.strip() for part in text.split(","))):
        source, sep, target = pair.partition(":=")
        if not sep or not source or not target:
            raise ValueError(f"remaps: {pair!r} is not from:=to")
        remaps.append((source, target))
    return remaps


def qualified_topic(namespace: str, topic: str) -> str:
    """A relative topic as seen from ``namespace`` (what a recorder outside it must ask for)."""
    if topic.startswith("/"):
        return topic
    namespace = namespace.strip("/")
    return f"/{namespace}/{topic}" if namespace else f"/{topic}"
