"""The nodes that run the network take ``device`` and ``precision``; an unusable pair stops the node at
start with the parameter named, before any frame (real node processes, local DDS only)."""
import subprocess
import sys

import pytest
import torch

from l2p_ros.nodes.dds import local_dds_env

CASES = [("tpu", "fp32", "device='tpu' is not a device"), ("cpu", "fp16", "needs a CUDA device")]
if not torch.cuda.is_available():
    CASES.append(("cuda", "fp32", "no CUDA device is usable here"))


@pytest.mark.parametrize("node", ["edge_node", "cloud_node"])
@pytest.mark.parametrize("device, precision, why", CASES)
def test_an_unusable_device_stops_the_node_naming_the_parameter(node, device, precision, why):
    result = subprocess.run([sys.executable, "-m", f"l2p_ros.nodes.{node}", "--ros-args",
                             "-p", f"device:={device}", "-p", f"precision:={precision}"],
                            env=local_dds_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert f"parameter 'device/precision'='{device}/{precision}' is invalid" in result.stderr, result.stderr
    assert why in result.stderr
