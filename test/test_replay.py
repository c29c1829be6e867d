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
    summary = run_pipeline(source=bag, image_topic="/front/image", rate_hz=4.0, policy="fixed:7",
                           record=results, summary_json=tmp_path / "summary.json", print_frames=False,
                           log=lambda *_: None, extra={("edge_node", "decision_wait_s"): 5.0,
                                                             ("edge_node", "cloud_timeout_s"): 5.0})
    assert summary["frames_in_edge"] == FRAMES, summary
    assert summary["frames_detected"] == FRAMES and summary["unaccounted"] == 0, summary

    recorded = list(read_bag(results))
    detections = [deserialize(m.msgtype, m.cdr_bytes) for m in recorded if m.topic == "/l2p/detections"]
    decisions = [m for m in recorded if m.topic == "/l2p/decision"]
    assert len(detections) == FRAMES and len(decisions) == FRAMES
    assert {d.executed_on for d in detections} == {"edge+cloud"}
    assert all(d.cut_after_layer == 7 for d in detections)
    assert sum(len(d.detections) for d in detections) > 0  # people in the street scene
    assert any(m.topic == "/l2p/pipeline_stats" for m in recorded)
    assert (tmp_path / "summary.json").is_file()
