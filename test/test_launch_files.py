"""Launch files and parameter files agree with what the nodes declare.

``launch``/``launch_ros`` are not installable here, so the launch files are compiled and checked
against the nodes' declared parameters and setup.py's executables instead of being executed, and
the helpers that build their nodes (``launch_support``) are tested alone. Checked by hand on
2026-12-05 against the sources of ros2/launch 3.7.1 and ros2/launch_ros (a stub for the missing
composition_interfaces, a stand-in ``ros2`` for the recorder): replay.launch.py with
``namespace:=car1`` started every node under /car1, recorded /car1/l2p/..., the camera waited for
the edge and the partitioner, and the launch shut down 5 s after the bag ended.
"""
import ast
import py_compile
import re
from pathlib import Path

import pytest
import yaml

from l2p_ros.nodes.launch_support import CLOUD_NODES, EDGE_NODES, launch_arguments

ROOT = Path(__file__).resolve().parents[1]
NODES = EDGE_NODES + CLOUD_NODES
SHARED_DECLARERS = {"load_detector": "model_params.py", "declare_model": "model_params.py",
                    "declare_probe_link": "probe_echo.py", "DetectionOutputs": "outputs.py"}


def _declared_in(path: Path, function: str | None = None) -> set[str]:
    tree = ast.parse(path.read_text())
    scope = tree
    if function:
        scope = next(n for n in ast.walk(tree)
                     if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == function)
    names = set()
    for call in ast.walk(scope):
        if isinstance(call, ast.Call):
            callee = call.func.id if isinstance(call.func, ast.Name) else getattr(call.func, "attr", "")
            method = isinstance(call.func, ast.Attribute)  # LiveParameters.declare(name, ...)
            if callee == "declare" and method and call.args and isinstance(call.args[0], ast.Constant):
                names.add(call.args[0].value)
            elif callee in ("declare", "declare_parameter") and len(call.args) >= 2 \
                    and isinstance(call.args[1], ast.Constant) and isinstance(call.args[1].value, str):
                names.add(call.args[1].value)
            elif callee in ("declare_parameter",) and call.args and isinstance(call.args[0], ast.Constant):
                names.add(call.args[0].value)
            elif callee in SHARED_DECLARERS:
                names |= _declared_in(ROOT / "l2p_ros" / "nodes" / SHARED_DECLARERS[callee], callee)
                if callee == "load_detector":
                    names |= _declared_in(ROOT / "l2p_ros" / "nodes" / "model_params.py", "declare_model")
    return names


def declared_parameters(node: str) -> set[str]:
    path = ROOT / "l2p_ros" / "nodes" / f"{node}.py"
    inherited = _declared_in(ROOT / "l2p_ros" / "nodes" / "lifecycle.py") if "(ManagedNode)" in path.read_text() else set()
    return _declared_in(path) | inherited


@pytest.fixture(scope="module")
def config():
    return yaml.safe_load((ROOT / "config" / "pipeline.yaml").read_text())


@pytest.mark.parametrize("node", NODES)
def test_parameter_file_mirrors_declared_parameters(node, config):
    declared = declared_parameters(node)
    in_file = set((config[node]["ros__parameters"] or {}).keys())
    assert in_file == declared, (f"{node}: only in pipeline.yaml {sorted(in_file - declared)}, "
                                 f"declared but missing from pipeline.yaml {sorted(declared - in_file)}")


def test_every_node_is_an_executable():
    setup = (ROOT / "setup.py").read_text()
    for node in NODES:
        assert re.search(rf'"{node} = l2p_ros\.nodes\.{node}:main"', setup), node
        assert (ROOT / "l2p_ros" / "nodes" / f"{node}.py").is_file()


@pytest.mark.parametrize("launch_file", sorted((ROOT / "launch").glob("*.launch.py")))
def test_launch_files_compile_and_name_real_nodes(launch_file, tmp_path):
    py_compile.compile(str(launch_file), cfile=str(tmp_path / "out.pyc"), doraise=True)
    tree = ast.parse(launch_file.read_text())
    assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in tree.body)


def test_launch_arguments_cover_every_parameter_once():
    arguments = launch_arguments(ROOT / "config" / "pipeline.yaml", NODES)
    targets = [t for entry in arguments.values() for t in entry["targets"]]
    assert len(targets) == len(set(targets))
    for node in NODES:
        assert {p for n, p in targets if n == node} == declared_parameters(node)
    # A shared argument must mean the same thing: same default in every node it sets.
    config = yaml.safe_load((ROOT / "config" / "pipeline.yaml").read_text())
    for name, entry in arguments.items():
        values = {str(config[n]["ros__parameters"][p]) for n, p in entry["targets"]}
        assert len(values) == 1, f"launch argument {name} sets different defaults {values}"


def test_setup_installs_launch_and_config():
    setup = (ROOT / "setup.py").read_text()
    assert 'glob("launch/*.py")' in setup and 'glob("config/*.yaml")' in setup


def test_a_users_parameter_file_wins_over_packaged_defaults_but_not_over_given_arguments(config):
    from l2p_ros.nodes.launch_support import node_parameters

    arguments = launch_arguments(ROOT / "config" / "pipeline.yaml", NODES)
    users = {"partitioner_node": {"ros__parameters": {"policy": "dads", "codec": "int8"}},
             "camera_node": {"ros__parameters": {"rate_hz": 5.0}}}
    # Arguments left at their packaged defaults do not touch the user's file.
    untouched = {name: entry["default"] for name, entry in arguments.items()}
    assert node_parameters(users, "partitioner_node", arguments, untouched) == {"policy": "dads", "codec": "int8"}
    # Given ones do, typed as ros2 launch types them (source:=0 is camera index 0).
    given = {**untouched, "policy": "score", "source": "0", "rate_hz": "2.5"}
    assert node_parameters(users, "partitioner_node", arguments, given)["policy"] == "score"
    camera = node_parameters(users, "camera_node", arguments, given)
    assert camera == {"rate_hz": 2.5, "source": 0}
    # Without a user's file the packaged one is read the same way.
    assert node_parameters(config, "edge_node", arguments, untouched) == config["edge_node"]["ros__parameters"]


def test_remaps_and_namespaced_topics():
    from l2p_ros.nodes.launch_support import parse_remaps, qualified_topic

    assert parse_remaps("") == []
    assert parse_remaps("camera/image_raw:=/front/image, l2p/detections:=dets") == [
        ("camera/image_raw", "/front/image"), ("l2p/detections", "dets")]
    with pytest.raises(ValueError, match="'camera/image_raw' is not from:=to"):
        parse_remaps("camera/image_raw")
    assert qualified_topic("", "l2p/detections") == "/l2p/detections"
    assert qualified_topic("/car1/", "l2p/detections") == "/car1/l2p/detections"
    assert qualified_topic("car1", "/absolute") == "/absolute"


def test_every_launch_file_offers_the_common_arguments():
    """The arguments are declared by _common.describe, which every launch file builds on."""
    common = (ROOT / "launch" / "_common.py").read_text()
    assert "COMMON_ARGUMENTS" in common and '"single_host_dds"' in common
    for launch_file in (ROOT / "launch").glob("*.launch.py"):
        assert "describe(" in launch_file.read_text(), launch_file.name
    from l2p_ros.nodes.launch_support import COMMON_ARGUMENTS

    assert {name for name, _, _ in COMMON_ARGUMENTS} == {"namespace", "params_file", "use_sim_time", "log_level",
                                                         "remaps"}
    replay = (ROOT / "launch" / "replay.launch.py").read_text()
    assert '"--topics"' in replay and "shutdown_after_camera=True" in replay


def test_the_diagnostics_analyzers_group_every_nodes_status_once():
    """config/diagnostics.yaml (diagnostic_aggregator) matches each node's status name, under a
    namespace too, with exactly one analyzer."""
    analyzers = yaml.safe_load((ROOT / "config" / "diagnostics.yaml").read_text())["analyzers"]["ros__parameters"]
    groups = {key: value for key, value in analyzers.items() if isinstance(value, dict)}
    assert all(g["type"] == "diagnostic_aggregator/GenericAnalyzer" for g in groups.values())
    publishing = [path.stem for path in (ROOT / "l2p_ros" / "nodes").glob("*_node.py")
                  if "Diagnostics(" in path.read_text()]
    assert set(NODES) <= set(publishing)
    names = [f"l2p_ros: {ns}/{node}" for node in publishing for ns in ("", "/car1", "/v0")]
    names += ["l2p_ros: /fog_node", "l2p_ros: /probe_echo_node"]  # the testbed's fog, a standalone echo
    for name in names:
        matched = [key for key, group in groups.items() if any(part in name for part in group["contains"])]
        assert len(matched) == 1, (name, matched)
    for key, group in groups.items():
        assert any(part in name for name in names for part in group["contains"]), f"{key} matches nothing"
