"""The edge-side nodes in one process (``l2p run --single-edge-process``), live: the same node
classes on one executor and one DDS participant (the edge-container profile: 4 MB messages), every
frame accounted. Cut 0 in fp32 sends 11 MB feature maps, so they cross fragmented."""
from pathlib import Path

from l2p_ros.assets import SAMPLE_VIDEO, asset_path
from l2p_ros.nodes.pipeline_run import run_pipeline

FRAMES = 6


def test_one_edge_process_finishes_every_frame_through_the_cloud(tmp_path):
    summary = run_pipeline(source=asset_path(SAMPLE_VIDEO), frames=FRAMES, rate_hz=2.0, policy="fixed:0",
                           single_edge_process=True, print_frames=False, log=lambda *_: None,
                           extra={("partitioner_node", "codec"): "fp32", ("edge_node", "decision_wait_s"): 5.0,
                                  ("edge_node", "cloud_timeout_s"): 10.0})
    assert summary["frames_in_edge"] == FRAMES, summary
    assert summary["frames_detected"] == FRAMES and summary["unaccounted"] == 0, summary
    assert summary["executed_on"] == {"edge+cloud": FRAMES} and summary["cuts"] == {"0": FRAMES}
    logs = Path(summary["logs"])
    assert sorted(p.name for p in logs.glob("*.log")) == ["cloud_node.log", "edge_container.log"]
    container = (logs / "edge_container.log").read_text()
    for line in ("partitioner ready", "edge ready", "source ended: published 6 frames"):
        assert line in container, container
