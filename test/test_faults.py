"""Faults beyond a dead cloud, with real processes: nodes killed mid-run (SIGKILL, as a crash), a slow
consumer of detections. ``l2p run`` goes on where it can, says what died, counts every frame once
and writes its summary with the exit code of what died."""
import os
import signal
import subprocess
import sys
import textwrap
import time

from l2p_ros.nodes.dds import local_dds_env
from l2p_ros.nodes.pipeline_run import run_pipeline

# A consumer of l2p/detections that takes 0.5 s over every message, on the edge's QoS (reliable,
# transient local, depth 32): it must slow nothing down.
SLOW_CONSUMER = textwrap.dedent("""
    import time, rclpy
    from l2p_msgs.msg import DetectionArray
    from l2p_ros.nodes.common import DETECTIONS_QOS
    rclpy.init()
    node = rclpy.create_node("slow_consumer")
    node.create_subscription(DetectionArray, "l2p/detections", lambda msg: time.sleep(0.5), DETECTIONS_QOS)
    try:
        rclpy.spin(node)
    except BaseException:
        pass
""")


def _killer(schedule):
    """A ``during`` callback that SIGKILLs node keys at the given seconds after the first frame."""
    state = {"first_s": None, "left": sorted(schedule.items(), key=lambda item: item[1])}

    def first_frame():
        state["first_s"] = time.monotonic()

    def during(nodes):
        while state["first_s"] is not None and state["left"] and \
                time.monotonic() - state["first_s"] >= state["left"][0][1]:
            key, _ = state["left"].pop(0)
            os.killpg(nodes.running[key].process.pid, signal.SIGKILL)  # a crash, not a stop on purpose
            state[key] = time.time()
    return first_frame, during, state


def test_a_dead_monitor_and_a_dead_partitioner_degrade_the_run_and_a_slow_consumer_slows_nothing(tmp_path):
    frames, rate_hz = 70, 5.0
    consumer = subprocess.Popen([sys.executable, "-c", SLOW_CONSUMER], env=local_dds_env())
    first_frame, during, killed = _killer({"network_monitor_node": 3.0, "partitioner_node": 7.0})
    try:
        summary = run_pipeline(frames=frames, rate_hz=rate_hz, policy="fixed:7", print_frames=False,
                               summary_json=tmp_path / "summary.json", log=lambda *_: None,
                               on_first_frame=first_frame, during=during,
                               extra={("partitioner_node", "state_max_age_s"): 1.5,
                                      ("edge_node", "partitioner_timeout_s"): 1.0,
                                      ("edge_node", "cloud_timeout_s"): 2.0})
    finally:
        consumer.send_signal(signal.SIGINT)
        consumer.wait(10)
    # Both deaths reported with the shell's status of a SIGKILL, the run's own status the first's.
    assert summary["failed_nodes"] == {"network_monitor_node": 137, "partitioner_node": 137}, summary
    assert summary["exit_code"] == 137
    assert (tmp_path / "summary.json").is_file()
    # Every frame counted exactly once, the slow consumer notwithstanding.
    assert summary["frames_in_edge"] == frames and summary["unaccounted"] == 0, summary
    assert summary["frames_detected"] + summary["frames_dropped"] == frames
    assert summary["edge_frames_published"] == summary["frames_detected"], summary  # the edge's count agrees
    # The dead monitor's last state went stale: later decisions say so and use the assumed link.
    monitor_dead_s, partitioner_dead_s = killed["network_monitor_node"], killed["partitioner_node"]
    late = [d for d in summary["decisions"] if monitor_dead_s + 2.0 < d["stamp_s"] < partitioner_dead_s]
    assert late and all(d["stale_inputs"] == ["network"] for d in late), late
    assert all(d["bandwidth_mbps"] == 20.0 for d in late)  # default_bandwidth_mbps
    logs = summary["logs"]
    assert "network state stale" in open(f"{logs}/partitioner_node.log").read()
    # Frames before the partitioner died were split at cut 7; from partitioner_timeout_s after it,
    # the edge runs its default cut (the whole network) and says so.
    timeline = summary["timeline"]
    assert any(r["executed_on"] == "edge+cloud" for r in timeline if r["stamp_s"] < partitioner_dead_s)
    after = [r for r in timeline if r["stamp_s"] > partitioner_dead_s + 1.5]
    assert after and all(r["executed_on"] == "edge" for r in after), after
    assert "partitioner silent" in open(f"{logs}/edge_node.log").read()


def test_a_dead_edge_ends_the_run_with_its_exit_code_and_the_summary_written(tmp_path):
    frames, rate_hz = 40, 5.0
    first_frame, during, _ = _killer({"edge_node": 3.0})
    started = time.monotonic()
    summary = run_pipeline(frames=frames, rate_hz=rate_hz, policy="fixed:7", print_frames=False,
                           summary_json=tmp_path / "summary.json", log=lambda *_: None,
                           on_first_frame=first_frame, during=during, drain_timeout_s=60.0)
    assert summary["failed_nodes"] == {"edge_node": 137} and summary["exit_code"] == 137
    assert (tmp_path / "summary.json").is_file()
    # The run did not wait out its drain for frames nobody can finish; those are unaccounted.
    assert time.monotonic() - started < 120
    assert 0 < summary["frames_detected"] < frames
    assert summary["unaccounted"] > 0, summary


def test_a_dead_load_monitor_and_a_dead_camera_end_the_run_cleanly_with_every_frame_taken_accounted(tmp_path):
    """The load monitor killed: its state goes stale and decisions say so (no load assumed). The
    camera killed: no more frames come, so the run drains what the edge took, accounts every one of
    them and ends with the first death's status and its summary written."""
    frames, rate_hz = 100, 5.0
    first_frame, during, killed = _killer({"load_monitor_node": 1.5, "camera_node": 5.0})
    summary = run_pipeline(frames=frames, rate_hz=rate_hz, policy="fixed:7", print_frames=False,
                           summary_json=tmp_path / "summary.json", log=lambda *_: None,
                           on_first_frame=first_frame, during=during,
                           extra={("partitioner_node", "state_max_age_s"): 1.5})
    assert summary["failed_nodes"] == {"load_monitor_node": 137, "camera_node": 137}, summary
    assert summary["exit_code"] == 137 and (tmp_path / "summary.json").is_file()
    taken = summary["frames_in_edge"]
    assert 10 < taken < frames, summary  # the camera died half-way
    assert summary["unaccounted"] == 0 and summary["frames_detected"] + summary["frames_dropped"] == taken
    late = [d for d in summary["decisions"] if d["stamp_s"] > killed["load_monitor_node"] + 2.0]
    assert late and all(d["stale_inputs"] == ["load"] for d in late), late
    assert "load state stale" in open(f"{summary['logs']}/partitioner_node.log").read()
