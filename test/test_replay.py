"""Bag replay through the live pipeline: bags written with rosbags in, a recorded result bag out."""
import pytest

from l2p_ros.assets import SAMPLE_VIDEO, asset_path
from l2p_ros.bag import deserialize, read_bag, write_image_bag
from l2p_ros.nodes.pipeline_run import run_pipeline
from l2p_ros.sources import open_source

FRAMES = 6


@pytest.mark.parametrize("storage, compressed", [("mcap", False), ("sqlite3", True)])
def test_a_bag_replays_through_the_pipeline_and_the_results_bag_reads_back(tmp_path, storage, compressed):
    bag = tmp_path / "drive"
    written = write_image_bag(bag, open_source(asset_path(SAMPLE_VIDEO), max_frames=FRAMES), storage=storage,
                              compressed=compressed, topic="/front/image")
    assert written == FRAMES
    results = tmp_path / "results"
    logs = tmp_path / "logs"  # a previous run's log there is replaced, not appended to
    logs.mkdir()
    (logs / "cloud_node.log").write_text("a previous run's log\n")
    summary = run_pipeline(source=bag, image_topic="/front/image", rate_hz=4.0, policy="fixed:7",
                           record=results, summary_json=tmp_path / "summary.json", log_dir=logs, print_frames=False,
                           log=lambda *_: None, extra={("edge_node", "decision_wait_s"): 5.0,
                                                             ("edge_node", "cloud_timeout_s"): 5.0})
    assert summary["frames_in_edge"] == FRAMES, summary
    assert summary["frames_detected"] == FRAMES and summary["unaccounted"] == 0, summary
    assert summary["edge_frames_published"] == FRAMES, summary  # the edge's own count agrees

    recorded = list(read_bag(results))
    detections = [deserialize(m.msgtype, m.cdr_bytes) for m in recorded if m.topic == "/l2p/detections"]
    decisions = [m for m in recorded if m.topic == "/l2p/decision"]
    assert len(detections) == FRAMES and len(decisions) == FRAMES
    assert {d.executed_on for d in detections} == {"edge+cloud"}
    assert all(d.cut_after_layer == 7 for d in detections)
    assert sum(len(d.detections) for d in detections) > 0  # people in the street scene
    assert any(m.topic == "/l2p/pipeline_stats" for m in recorded)
    assert (tmp_path / "summary.json").is_file()
    assert summary["logs"] == str(logs) and (logs / "params.yaml").is_file()
    assert "previous run" not in (logs / "cloud_node.log").read_text()
    assert {path.name for path in logs.glob("*.log")} >= {"camera_node.log", "edge_node.log", "cloud_node.log"}


def test_frames_with_hour_old_stamps_report_their_true_latency(tmp_path):
    """Latency runs from the edge's ingest stamp, not from header.stamp: a bag whose frames were stamped
    an hour ago (what `ros2 bag play` publishes) reported total_ms of 3,600,071 when it did."""
    import time

    hour_ago_s = time.time() - 3600.0
    frames = [(hour_ago_s + i * 0.1, frame_id, image)
              for i, (_, frame_id, image) in enumerate(open_source(asset_path(SAMPLE_VIDEO), max_frames=FRAMES))]
    bag = tmp_path / "old"
    write_image_bag(bag, frames)
    summary = run_pipeline(source=bag, rate_hz=4.0, policy="fixed:7", print_frames=False, log=lambda *_: None,
                           extra={("camera_node", "use_recorded_stamps"): True,
                                  ("edge_node", "decision_wait_s"): 5.0, ("edge_node", "cloud_timeout_s"): 5.0})
    assert summary["frames_detected"] == FRAMES and summary["unaccounted"] == 0, summary
    # The source's stamps reach the user unchanged ...
    assert [round(row["stamp_s"], 3) for row in summary["timeline"]] == [round(s, 3) for s, _, _ in frames]
    # ... and the latency is the pipeline's, seconds at most on a loaded machine, not an hour.
    assert all(0 < row["total_ms"] < 30_000 for row in summary["timeline"]), summary["timeline"]
