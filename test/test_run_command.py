"""`l2p run` as a user runs it: Ctrl-C stops every node process and still prints the summary."""
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from l2p_ros.assets import SAMPLE_VIDEO, asset_path


def test_ctrl_c_stops_the_nodes_and_prints_the_summary(tmp_path):
    summary_json = tmp_path / "summary.json"
    process = subprocess.Popen([sys.executable, "-m", "l2p_ros.cli", "run", "--frames", "0",
                                "--summary-json", str(summary_json)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    deadline = time.monotonic() + 180
    for line in process.stdout:  # until the second frame's line: the pipeline is running
        lines.append(line)
        if re.match(r"\s+2 cut ", line) or time.monotonic() > deadline:
            break
    work_dir = next(line.split("logs in ")[1].split(")")[0] for line in lines if "logs in" in line)
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=90)
    assert process.returncode == 0, "".join(lines) + out
    assert "interrupted: stopping the nodes" in out and "summary" in out
    nodes_left = [p for p in psutil.process_iter(["cmdline"]) if work_dir in " ".join(p.info["cmdline"] or [])]
    assert nodes_left == []
    summary = json.loads(summary_json.read_text())["summary"]
    assert summary["interrupted"] is True and summary["frames_detected"] > 0


def test_a_stop_request_interrupts_at_the_next_check_and_a_second_at_once():
    from l2p_ros.nodes.pipeline_run import _StopRequests

    requests = _StopRequests()
    requests.check()  # nothing asked yet
    requests(signal.SIGTERM, None)  # the handler returns: the run stops where it checks, not mid-call
    with pytest.raises(KeyboardInterrupt):
        requests.check()
    with pytest.raises(KeyboardInterrupt):
        requests(signal.SIGINT, None)


def test_a_bottleneck_codec_reaches_the_nodes_that_need_it():
    """``l2p run --codec``: the partitioner decides with it; a bottleneck given as a file is loaded
    by path on both tiers and named by its stem on the wire."""
    from l2p_ros.nodes.pipeline_run import _overrides

    bundled = _overrides(None, None, 0, "fixed:7", None, codec="bn:vtest-street")
    assert bundled == {("partitioner_node", "policy"): "fixed:7", ("partitioner_node", "codec"): "bn:vtest-street"}
    by_path = _overrides(None, None, 0, None, None, codec="bn:/data/my-car.safetensors")
    assert by_path == {("partitioner_node", "codec"): "bn:my-car",
                       ("edge_node", "bottlenecks"): "/data/my-car.safetensors",
                       ("cloud_node", "bottlenecks"): "/data/my-car.safetensors"}
    coded = _overrides(None, None, 0, None, None, codec="bn:/data/my-car.safetensors+ctx")
    assert coded == {("partitioner_node", "codec"): "bn:my-car+ctx",
                     ("edge_node", "bottlenecks"): "/data/my-car.safetensors",
                     ("cloud_node", "bottlenecks"): "/data/my-car.safetensors"}
    assert _overrides(None, None, 0, None, None, codec="int8-channel+zstd") == \
        {("partitioner_node", "codec"): "int8-channel+zstd"}


def test_bad_run_inputs_are_refused_in_one_line_before_any_node_starts(tmp_path):
    """A source or policy the nodes would reject 20-30 s into start-up: one line naming the input, a
    non-zero exit, no traceback, no node started."""
    (tmp_path / "empty").mkdir()
    from l2p_ros.bag import write_image_bag
    from l2p_ros.sources import open_source

    write_image_bag(tmp_path / "bag", open_source(asset_path(SAMPLE_VIDEO), max_frames=2))
    cases = [(["--source", str(tmp_path / "empty")], "--source", "holds no images"),
             (["--source", str(tmp_path / "bag"), "--image-topic", "/wrong"], "--image-topic /wrong",
              "not in the bag"),
             (["--source", str(tmp_path / "missing.avi")], "--source", "does not exist"),
             (["--policy", "nonsense"], "--policy 'nonsense'", "unknown"),
             (["--policy", f"ppo:{tmp_path / 'none.npz'}"], "--policy ppo:", "not found"),
             (["--vehicles", "2", "--clouds", "3"], "--clouds 3 with --vehicles 2", "between 1 and"),
             (["--clouds", "2"], "--clouds 2 with --vehicles 1", "between 1 and"),
             (["--codec", "int9"], "--codec int9", "unknown"),
             (["--codec", "bn:nothing"], "--codec bn:nothing", "not found"),
             # a bottleneck exists at its cut only: greedy (the YAML's) crashed on its first decision
             (["--codec", "bn:vtest-street"], "--codec bn:vtest-street", "--policy fixed:7"),
             (["--codec", "bn:vtest-street", "--policy", "fixed:8"], "--codec bn:vtest-street", "--policy fixed:7"),
             (["--codec", "bn:vtest-street+lz4", "--policy", "fixed:7"], "--codec bn:vtest-street+lz4",
              "take +ctx or nothing")]
    # An RMW this install was not built with (the PyPI wheels: Fast DDS only) ends rcl with exit 102.
    zenoh = {**os.environ, "RMW_IMPLEMENTATION": "rmw_zenoh_cpp"}
    cases.append((["--dds", "environment"], "RMW_IMPLEMENTATION='rmw_zenoh_cpp'", "rmw_zenoh_cpp", zenoh))
    for args, names, reason, *env in cases:
        result = subprocess.run([sys.executable, "-m", "l2p_ros.cli", "run", *args], capture_output=True,
                                text=True, timeout=120, env=env[0] if env else None)
        assert result.returncode == 2, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and names in lines[0] and reason in lines[0], (args, result.stderr)
        assert "starting nodes" not in result.stdout


def test_a_node_that_fails_to_start_ends_the_run_in_one_line_with_its_reason_and_a_summary(tmp_path):
    """A bad value in the user's YAML is found by the node that reads it: a partitioner that exits
    at start, a cloud whose lifecycle configure is refused. Either way one line names the node and
    its reason (its own log line), the exit is non-zero, no traceback, and the summary is written."""
    config = (Path(__file__).resolve().parents[1] / "config" / "pipeline.yaml").read_text()
    cases = {"partitioner_node": (re.sub(r"(?m)^(\s+default_bandwidth_mbps:).*$", r"\1 -3.0", config),
                                  "'default_bandwidth_mbps'=-3.0 is invalid"),
             "cloud_node": (re.sub(r"(?m)^(\s+max_batch:).*$", r"\1 0", config), "'max_batch'=0 is invalid")}
    for node, (text, reason) in cases.items():
        (tmp_path / f"{node}.yaml").write_text(text)
        summary = tmp_path / f"{node}.json"
        result = subprocess.run([sys.executable, "-m", "l2p_ros.cli", "run", "--config", str(tmp_path / f"{node}.yaml"),
                                 "--frames", "2", "--quiet", "--summary-json", str(summary)],
                                capture_output=True, text=True, timeout=180)
        assert result.returncode != 0, (node, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "start-up failed" in lines[0] and node in lines[0] and reason in lines[0], \
            (node, result.stderr)
        assert "Traceback" not in result.stdout + result.stderr
        written = json.loads(summary.read_text())["summary"]
        assert node in written["start_error"] and written["exit_code"] == result.returncode
        assert written["frames_in_edge"] == 0


def test_two_runs_side_by_side_keep_their_frames_apart(tmp_path):
    """Two `l2p run` on one host shared DDS domain 0 and exchanged camera frames and decisions; each
    now claims a domain of its own (printed), so each counts only its own frames and decisions."""
    from l2p_ros.nodes.dds import local_dds_env

    env = local_dds_env()
    env.pop("ROS_DOMAIN_ID", None)  # the default: claim a free domain
    runs = {}
    for name, frames, policy in (("a", 30, "fixed:7"), ("b", 20, "fixed:edge")):
        summary = tmp_path / f"{name}.json"
        runs[name] = (subprocess.Popen(
            [sys.executable, "-m", "l2p_ros.cli", "run", "--frames", str(frames), "--rate-hz", "5", "--policy", policy,
             "--quiet", "--summary-json", str(summary)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True), summary, frames, policy)
    outputs = {}
    for name, (process, summary, frames, policy) in runs.items():
        outputs[name] = process.communicate(timeout=300)[0]
        assert process.returncode == 0, outputs[name]
    domains = set()
    for name, (process, summary_path, frames, policy) in runs.items():
        summary = json.loads(summary_path.read_text())["summary"]
        domains.add(summary["ros_domain_id"])
        assert f"DDS domain {summary['ros_domain_id']} (free on this host)" in outputs[name]
        # Exactly its own frames, all of them, and only its own policy's results.
        assert summary["frames_captured_seen"] == summary["frames_in_edge"] == frames, (name, summary)
        assert summary["unaccounted"] == 0
        # A decision from the other run would show as a frame the edge ran at the other cut by choice;
        # a frame this run's edge finished itself (the cloud slow under a loaded CI host) is a fallback.
        cuts, executed_on = summary["cuts"], summary["executed_on"]
        if policy == "fixed:7":
            assert set(cuts) <= {"7", "23"} and cuts.get("7", 0) > 0, (name, cuts)
            assert cuts.get("23", 0) == executed_on.get("edge (fallback)", 0), (name, cuts, executed_on)
            assert "edge" not in executed_on, (name, executed_on)
        else:
            assert set(cuts) == {"23"} and set(executed_on) == {"edge"}, (name, cuts, executed_on)
    assert len(domains) == 2, domains
