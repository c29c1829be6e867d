"""Imports point one way (docs/architecture.md): each module is imported in a fresh interpreter and
what it pulled in is checked. A policy decides with numpy alone; the core never loads ROS; a node
that does not run the network never loads torch."""
import json
import pkgutil
import subprocess
import sys

import pytest

import l2p_ros

ROS_LAYER = "l2p_ros.nodes"


def loaded_after_import(module: str, watched: list[str]) -> list[str]:
    """Which of ``watched`` are in sys.modules after ``import module`` in a fresh interpreter."""
    code = (f"import sys, json; import {module}; "
            f"print(json.dumps([m for m in {watched!r} if m in sys.modules]))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_policy_registry_needs_neither_torch_nor_cv2_nor_the_simulation():
    assert loaded_after_import("l2p_ros.policies.registry", ["torch", "cv2", "l2p_ros.simulation", "gymnasium",
                                                             "zstandard", "l2p_ros.monitoring"]) == []


@pytest.mark.parametrize("module", ["l2p_ros.nodes.partitioner_node", "l2p_ros.nodes.network_monitor_node",
                                    "l2p_ros.nodes.load_monitor_node", "l2p_ros.nodes.camera_node"])
def test_nodes_that_do_not_run_the_network_do_not_load_torch(module):
    assert loaded_after_import(module, ["torch", "l2p_ros.model.darknet", "l2p_ros.simulation"]) == []


def test_a_bottleneck_file_is_read_without_torch():
    """The partitioner weighs a bottleneck's cut from its file alone (cut, bytes per frame)."""
    code = ("import sys; from l2p_ros.bottleneck_file import read_bottleneck; "
            "info, _ = read_bottleneck('vtest-street'); print(info.cut_after_layer, 'torch' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["7", "False"]


CORE_MODULES = sorted(name for _, name, _ in pkgutil.walk_packages(l2p_ros.__path__, "l2p_ros.")
                      if not name.startswith(ROS_LAYER) and name not in ("l2p_ros.cli", "l2p_ros.demo"))


def test_the_core_is_listed():
    assert {"l2p_ros.measure.profile", "l2p_ros.deployment", "l2p_ros.edge_scheduler",
            "l2p_ros.policies.registry", "l2p_ros.simulation.world"} <= set(CORE_MODULES)


def test_no_core_module_imports_ros():
    code = ("import sys, json, importlib\n"
            f"for name in {CORE_MODULES!r}:\n"
            "    importlib.import_module(name)\n"
            "print(json.dumps(sorted(m for m in sys.modules if m == 'rclpy' or m.startswith('l2p_msgs')"
            f" or m.startswith({ROS_LAYER!r}))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
