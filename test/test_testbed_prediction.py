"""The simulator's prediction of a live testbed run, calibrated on two fixed-policy runs (ROS-free)."""
import pytest

from l2p_ros.simulation.simulator import SimulationConfig
from l2p_ros.testbed import prediction
from test.simulation_fixtures import small_world


def _results(live_rows, simulated_rows, change_s=20.0):
    return {"timeline": live_rows, "simulated": {"timeline": simulated_rows},
            "trace": {"applied": [{"trace_time_s": 0.0}, {"trace_time_s": change_s}]},
            "testbed": {"edge_profile": "edge.yaml"}}


def test_calibration_measures_the_overhead_and_the_edges_own_load(monkeypatch):
    profile = small_world().edge_profile
    monkeypatch.setattr(prediction, "load_profile", lambda path: profile)
    times = [0.5 + 0.1 * i for i in range(300)]  # 0.5-30.4 s: warm-up and second phase left out
    cloud_only = _results([{"trace_time_s": t, "total_ms": 100.0 if t < 20 else 900.0} for t in times],
                          [{"trace_time_s": t, "latency_ms": 60.0 if t < 20 else 700.0} for t in times])
    cloud_only["timeline"][0]["total_ms"] = 5000.0  # a warm-up frame
    edge_only = _results([{"trace_time_s": t, "edge_ms": profile.total_ms / 0.4} for t in times], [])
    options = prediction.live_edge_calibration(cloud_only, edge_only)
    assert options["frame_overhead_ms"] == pytest.approx(40.0)
    assert options["edge_background_load"] == pytest.approx(0.6)
    SimulationConfig(**options)  # a valid configuration as it is


def test_committed_testbed_runs_reproduce_the_documented_prediction(monkeypatch):
    """docs/testbed.md's simulated columns of experiment 5 come from the repository: the recorded
    live runs in bench/results/testbed_step_runs/ (with the trace, profiles and policy file they
    name) give bench/results/testbed_policies_prediction.json's calibration and figures again."""
    import gzip
    import json
    from pathlib import Path

    from l2p_ros.simulation import world as world_module
    from l2p_ros.simulation.video import load_table

    root = Path(__file__).resolve().parents[1]
    table = load_table(root / "models" / "profiles" / "video-yolov3-tiny-416-pretrained-vtest+Megamind-n60.npz")
    monkeypatch.setattr(world_module, "video_table", lambda *args, **kwargs: table)
    monkeypatch.chdir(root)  # the runs name their files by repository path
    runs = {}
    for path in sorted((root / "bench" / "results" / "testbed_step_runs").glob("*.json.gz")):
        results = json.loads(gzip.decompress(path.read_bytes()))
        runs[results["summary"]["policy"]] = results
    documented = json.loads((root / "bench" / "results" / "testbed_policies_prediction.json").read_text())
    rows = {row["policy"]: row for row in documented["policies"]}
    assert set(runs) == set(rows) and documented["resimulated"]
    for name in ("cloud-only", "greedy"):  # today's model-only prediction, as the table was made
        runs[name]["simulated"] = prediction.simulate_live_run(runs[name], name, log=lambda *args: None)
        assert runs[name]["simulated"]["summary"]["latency_ms"]["mean"] == \
            pytest.approx(rows[name]["model_only_mean_ms"], abs=0.05)
    options = prediction.live_edge_calibration(runs["cloud-only"], runs["edge-only"])
    assert options == pytest.approx(documented["calibration"])
    calibrated = prediction.simulate_live_run(runs["greedy"], "greedy", log=lambda *args: None, options=options)
    assert calibrated["summary"]["latency_ms"]["mean"] == pytest.approx(rows["greedy"]["calibrated_mean_ms"], abs=0.05)


@pytest.mark.parametrize("run, cut", [
    ("dads_bn-sample-scenes_calibrated_own-queue_stop33-2mbit-r2", "-1"),  # the image, which keeps up
    ("greedy_bn-sample-scenes_calibrated_own-queue_stop33-1mbit-r1", "7"),  # the bottleneck
    ("dnnsplit_bn-sample-scenes_stop33-1mbit-r1", "23")])  # the old defaults: the whole network on the edge
def test_the_simulator_given_a_runs_own_view_chooses_as_it_did_live(monkeypatch, run, cut):
    """Experiment 9's live runs (bench/results/testbed_views_runs/, each with the partitioner's
    link_rtt and calibrate_edge it ran with): simulated as the live edge schedules frames, the
    policy's most frequent cut on the slow link is the live run's. With DADS at 2 Mbit/s the view
    decides it: the monitor's smoothed RTT and the profile's edge keep it on the bottleneck."""
    import gzip
    import json
    from pathlib import Path

    from l2p_ros.simulation import world as world_module
    from l2p_ros.simulation.video import load_table

    root = Path(__file__).resolve().parents[1]
    table = load_table(root / "models" / "profiles" / "video-yolov3-tiny-416-pretrained-vtest+Megamind-n60.npz")
    monkeypatch.setattr(world_module, "video_table", lambda *args, **kwargs: table)
    monkeypatch.chdir(root)
    results = json.loads(gzip.decompress((root / "bench" / "results" / "testbed_views_runs" / f"{run}.json.gz")
                                         .read_bytes()))
    calibration = json.loads((root / "bench" / "results" / "testbed_policies_prediction.json").read_text())["calibration"]
    policy = results["summary"]["policy"]
    live = prediction.second_phase(results["timeline"], results, "total_ms")
    simulated = prediction.simulate_live_run(results, policy, log=lambda *args: None, options=calibration)
    assert next(iter(live["cuts"])) == cut
    assert next(iter(prediction.second_phase(simulated["timeline"], results, "latency_ms")["cuts"])) == cut
    if policy == "dads":
        smoothed = prediction.simulate_live_run(results, policy, log=lambda *args: None,
                                                options={**calibration, "link_rtt": "smoothed", "calibrate_edge": False})
        assert next(iter(prediction.second_phase(smoothed["timeline"], results, "latency_ms")["cuts"])) == "7"
