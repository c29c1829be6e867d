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
