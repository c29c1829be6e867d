"""`l2p run` as a user runs it: Ctrl-C stops every node process and still prints the summary."""
import json
import re
import signal
import subprocess
import sys
import time

import psutil


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
    assert _overrides(None, None, 0, None, None, codec="int8-channel+zstd") == \
        {("partitioner_node", "codec"): "int8-channel+zstd"}


def test_bad_run_inputs_are_refused_in_one_line_before_any_node_starts(tmp_path):
    """A source or policy the nodes would reject 20-30 s into start-up: one line naming the input, a
    non-zero exit, no traceback, no node started."""
    (tmp_path / "empty").mkdir()
    cases = [(["--source", str(tmp_path / "empty")], "--source", "holds no images"),
             (["--source", str(tmp_path / "missing.avi")], "--source", "does not exist"),
             (["--policy", "nonsense"], "--policy 'nonsense'", "unknown"),
             (["--policy", f"ppo:{tmp_path / 'none.npz'}"], "--policy ppo:", "not found")]
    for args, names, reason in cases:
        result = subprocess.run([sys.executable, "-m", "l2p_ros.cli", "run", *args], capture_output=True,
                                text=True, timeout=120)
        assert result.returncode == 2, (args, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and names in lines[0] and reason in lines[0], (args, result.stderr)
        assert "starting nodes" not in result.stdout
