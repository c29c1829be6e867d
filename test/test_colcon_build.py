"""The repository builds with colcon as on a real ROS 2 install: both packages, executables, share files."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXECUTABLES = ("l2p", "camera_node", "partitioner_node", "network_monitor_node", "load_monitor_node",
               "edge_node", "cloud_node", "probe_echo_node")


@pytest.mark.skipif(shutil.which("colcon") is None, reason="colcon is not installed")
def test_colcon_builds_both_packages_from_a_workspace(tmp_path):
    source = tmp_path / "src" / "l2p_ros"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".venv", ".git", "build", "install", "log", "out",
                                                                  "__pycache__", "*.egg-info", ".pytest_cache"))
    env = dict(os.environ, AMENT_PREFIX_PATH=sys.prefix)  # the ROS 2 wheels live in the venv
    result = subprocess.run(
        ["colcon", "build", "--base-paths", "src/l2p_ros", "src/l2p_ros/msg",
         "--cmake-args", "-DBUILD_TESTING=OFF", f"-DPython3_EXECUTABLE={sys.executable}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    install = tmp_path / "install"
    for name in EXECUTABLES:
        assert (install / "l2p_ros" / "lib" / "l2p_ros" / name).is_file(), name
    share = install / "l2p_ros" / "share"
    assert (share / "ament_index" / "resource_index" / "packages" / "l2p_ros").is_file()
    assert {p.name for p in (share / "l2p_ros" / "launch").glob("*.launch.py")} == {
        p.name for p in (ROOT / "launch").glob("*.launch.py")}
    assert (share / "l2p_ros" / "config" / "pipeline.yaml").is_file()
    built_msgs = install / "l2p_msgs" / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / \
        "site-packages" / "l2p_msgs" / "msg" / "_feature_map.py"
    assert built_msgs.is_file()
