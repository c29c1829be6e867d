"""The soak's short version: the whole pipeline on a looping source, the observer folding old frames
(bench/soak.py runs it for 10 minutes; docs/reliability.md)."""
from l2p_ros.assets import SAMPLE_VIDEO, asset_path
from l2p_ros.bag import write_image_bag
from l2p_ros.nodes import pipeline_run
from l2p_ros.sources import open_source


def test_a_looping_run_counts_every_frame_while_the_observer_keeps_only_recent_ones(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline_run, "LOOP_RETAIN_S", 3.0)  # fold after 3 s instead of a minute
    bag = tmp_path / "short"
    write_image_bag(bag, open_source(asset_path(SAMPLE_VIDEO), max_frames=15))
    frames, rate_hz = 90, 10.0
    summary = pipeline_run.run_pipeline(source=bag, frames=frames, rate_hz=rate_hz, loop=True, policy="fixed:7",
                                        print_frames=False, log=lambda *_: None)
    # The 15-frame bag played six times over, every frame counted once.
    assert summary["frames_in_edge"] == frames and summary["unaccounted"] == 0, summary
    assert summary["frames_detected"] + summary["frames_dropped"] == frames
    # Whole records of the last few seconds only (3 s of frames and the drain), the rest folded.
    assert 0 < len(summary["timeline"]) <= 5 * rate_hz, len(summary["timeline"])
    assert sum(row["frames"] for row in summary["latency_per_minute"]) == summary["frames_detected"]
    assert summary["failed_nodes"] == {} and summary["exit_code"] == 0
