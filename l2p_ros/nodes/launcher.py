"""``l2p run``: start the node set as separate processes from one parameter YAML, without ros2cli.

Mirrors ``launch/pipeline.launch.py`` for installs that have no ``ros2 launch`` (like the PyPI
wheels): the same executables, the same parameter file, the single-host DDS profile.
"""
from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import yaml

from l2p_ros.nodes.dds import EDGE_CONTAINER_PROFILE, node_dds_env
from l2p_ros.nodes.launch_support import NODES, SMALL_MESSAGE_NODES


def _dds_env(executable: str, dds_mode: str) -> dict[str, str]:
    """``local``: the single-host DDS profile sized for what the executable sends; ``environment``: ours."""
    if executable == "edge_container":
        return node_dds_env(dds_mode, profile=EDGE_CONTAINER_PROFILE)
    return node_dds_env(dds_mode, small_messages=executable in SMALL_MESSAGE_NODES)


def config_dir() -> Path:
    """The installed share/l2p_ros/config, else the source tree's config/ (editable installs)."""
    candidates = []
    try:
        from ament_index_python.packages import get_package_share_directory

        candidates.append(Path(get_package_share_directory("l2p_ros")) / "config")
    except Exception:  # not a ROS install, or the package index does not know l2p_ros
        pass
    candidates += [Path(sys.prefix) / "share" / "l2p_ros" / "config", Path(__file__).resolve().parents[2] / "config"]
    for candidate in candidates:
        if (candidate / "pipeline.yaml").is_file():
            return candidate
    raise FileNotFoundError("pipeline.yaml not found in " + ", ".join(map(str, candidates)))


def load_parameters(path: Path | None = None) -> dict:
    path = path or config_dir() / "pipeline.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"parameter file not found: {path}")
    data = yaml.safe_load(path.read_text()) or {}
    for node, section in data.items():
        if not isinstance(section, dict) or "ros__parameters" not in section:
            raise ValueError(f"{path}: section '{node}' must hold 'ros__parameters'")
    return data


def set_parameter(params: dict, node: str, name: str, value) -> None:
    params.setdefault(node, {}).setdefault("ros__parameters", {})[name] = value


@dataclass
class RunningNode:
    name: str
    process: subprocess.Popen
    log_path: Path


class NodeSet:
    """The pipeline's processes; stops them all on exit (SIGINT, then SIGTERM, then SIGKILL)."""

    def __init__(self, params: dict, work_dir: Path, nodes: tuple[str, ...] = NODES, placements: dict | None = None,
                 dds_mode: str = "local"):
        """``placements``: node name -> where it runs (a :class:`l2p_ros.testbed.placement.TierPlacement`:
        its ``command`` wraps the argv, its ``env`` replaces the single-host DDS environment); nodes
        not named run here under ``dds_mode`` (``dds.DDS_MODES``: the single-host profile, or this
        process's environment as it is)."""
        self.placements = placements or {}
        self.dds_mode = dds_mode
        self.params_file = work_dir / "params.yaml"
        self.params_file.write_text(yaml.safe_dump(params, sort_keys=False))
        self.work_dir = work_dir
        self.nodes = nodes
        self.running: dict[str, RunningNode] = {}
        self.stopped_on_purpose: set[str] = set()  # stopped by stop()/kill() mid-run: not a failure
        self.namespaces_written: set[str] = set()

    def start(self, name: str, executable: str | None = None, namespace: str = "") -> RunningNode:
        """Start node ``name``; ``executable`` (default: the same) lets one run twice, e.g. a fog cloud_node;
        ``namespace``: a fleet vehicle's, with the same parameters (its key is ``<namespace>/<name>``)."""
        key = f"{namespace}/{name}" if namespace else name
        log_path = self.work_dir / f"{key.replace('/', '.')}.log"
        # A restarted node (one this set ran before) has its log go on after its first life's; a
        # previous run's log in a reused folder is replaced.
        log = log_path.open("a" if key in self.running else "w")
        self.stopped_on_purpose.discard(key)
        remaps = ["-r", f"__node:={name}"] if executable not in (None, name) else []
        if namespace:
            remaps += ["-r", f"__ns:=/{namespace}"]
        argv = [sys.executable, "-m", f"l2p_ros.nodes.{executable or name}", "--ros-args", *remaps,
                "--params-file", str(self._params_file(namespace))]
        placement = self.placements.get(name)
        process = subprocess.Popen(placement.command(argv) if placement else argv,
                                   env=placement.env() if placement else _dds_env(executable or name, self.dds_mode),
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.running[key] = RunningNode(key, process, log_path)
        return self.running[key]

    def _params_file(self, namespace: str) -> Path:
        """The parameter file, its node keys fully qualified under ``namespace`` (rcl matches those)."""
        if not namespace:
            return self.params_file
        path = self.work_dir / f"params-{namespace}.yaml"
        if namespace not in self.namespaces_written:  # this run's, not one a reused folder kept
            self.namespaces_written.add(namespace)
            params = yaml.safe_load(self.params_file.read_text())
            path.write_text(yaml.safe_dump({f"/{namespace}/{node}": section for node, section in params.items()},
                                           sort_keys=False))
        return path

    def start_all(self, except_nodes: tuple[str, ...] = ()) -> None:
        for name in self.nodes:
            if name not in except_nodes:
                self.start(name)

    def exited_with_error(self) -> dict[str, int]:
        """Node key -> exit code of every node that exited with an error (not stopped on purpose);
        a signal's death is -signal, as subprocess reports it."""
        return {node.name: node.process.returncode for node in self.running.values()
                if node.process.poll() not in (None, 0) and node.name not in self.stopped_on_purpose}

    def failed(self) -> list[str]:
        """Nodes that exited with an error, with the tail of their log."""
        return [f"{name} exited with {code}:\n{self.running[name].log_path.read_text()[-1500:]}"
                for name, code in self.exited_with_error().items()]

    def stop(self, name: str, timeout_s: float = 5.0) -> int | None:
        """Stop node ``name`` (SIGINT, then SIGTERM, then SIGKILL); its exit code."""
        node = self.running.get(name)
        self.stopped_on_purpose.add(name)
        if node is None or node.process.poll() is not None:
            return None if node is None else node.process.returncode
        for sig, wait_s in ((signal.SIGINT, timeout_s), (signal.SIGTERM, 2.0), (signal.SIGKILL, 2.0)):
            node.process.send_signal(sig)
            try:
                return node.process.wait(wait_s)
            except subprocess.TimeoutExpired:
                continue
        return node.process.returncode

    def kill(self, name: str) -> int | None:
        """Kill node ``name`` as a crash would (SIGKILL: nothing of it runs on); its exit code.
        ``start`` brings it back."""
        node = self.running.get(name)
        self.stopped_on_purpose.add(name)
        if node is None or node.process.poll() is not None:
            return None if node is None else node.process.returncode
        os.killpg(node.process.pid, signal.SIGKILL)  # its own session: the placement's wrapper too
        return node.process.wait()

    def stop_all(self) -> None:
        for name in reversed(list(self.running)):
            self.stop(name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop_all()


def prepared_parameters(config: Path | None, overrides: dict[tuple[str, str], object]) -> dict:
    params = copy.deepcopy(load_parameters(config))
    for (node, name), value in overrides.items():
        set_parameter(params, node, name, value)
    return params


def work_dir_for(log_dir: Path | None) -> Path:
    """Where a run's node logs and parameter files go: ``log_dir`` (created), or a new folder under
    the system's temporary directory (kept after the run: its path is in the summary)."""
    if log_dir is None:
        return Path(tempfile.mkdtemp(prefix="l2p-run-"))
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    return log_dir
