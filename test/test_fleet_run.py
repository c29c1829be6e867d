"""A fleet on one cloud, live: three vehicles (each its own edge set in its own namespace, real node
processes, shared-memory DDS only) send every frame to one cloud node that batches them; every
frame of every vehicle is accounted for, per vehicle. On 2 cores, 16 processes can make an edge
miss a frame (a counted ``stale_frame``); that is accounting, not loss."""
import re
from pathlib import Path

from l2p_ros.assets import SAMPLE_VIDEO, asset_path
from l2p_ros.nodes.pipeline_run import run_pipeline

VEHICLES, FRAMES = 3, 4


def test_three_vehicles_share_one_batching_cloud_and_every_frame_is_accounted(tmp_path):
    summary = run_pipeline(source=asset_path(SAMPLE_VIDEO), frames=FRAMES, rate_hz=1.0, policy="fixed:7",
                           vehicles=VEHICLES, max_batch=VEHICLES, max_wait_ms=50.0, print_frames=False,
                           summary_json=tmp_path / "fleet.json", log=lambda *_: None,
                           extra={("edge_node", "decision_wait_s"): 5.0, ("edge_node", "cloud_timeout_s"): 10.0})
    assert set(summary["vehicles"]) == {"v0", "v1", "v2"}
    for vehicle, own in summary["vehicles"].items():
        assert own["frames_in_edge"] == FRAMES, (vehicle, own)
        assert own["unaccounted"] == 0, (vehicle, own)
        assert own["frames_detected"] + own["frames_dropped"] == FRAMES, (vehicle, own)
        assert own["frames_detected"] >= FRAMES - 1, (vehicle, own)
        detected = own["frames_detected"]
        assert own["executed_on"] == {"edge+cloud": detected}, (vehicle, own)  # finished by the shared cloud
        assert own["cuts"] == {"7": detected}
    assert summary["unaccounted"] == 0
    assert (tmp_path / "fleet.json").is_file()
    # The cloud reports its batches at exit: they hold every frame, none larger than max_batch.
    report = re.search(r"finished (\d+) frames in (\d+) batches \(batch size: count (\{.*\})\)",
                       (Path(summary["logs"]) / "cloud_node.log").read_text())
    assert report, "no batch report in the cloud's log"
    sizes = {int(k): int(v) for k, v in re.findall(r"(\d+): (\d+)", report.group(3))}
    assert int(report.group(1)) == sum(k * v for k, v in sizes.items()) == summary["frames_detected"]
    assert max(sizes) <= VEHICLES
