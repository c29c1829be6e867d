"""``l2p evaluate``: results.json keyed by policy, the paper-layout table, the plots."""
import json

import numpy as np
import pytest

from l2p_ros.cli import main
from l2p_ros.simulation import traces
from l2p_ros.simulation.evaluation import evaluate
from l2p_ros.simulation.traces import Trace
from test.simulation_fixtures import FRAMES_PER_CLIP, small_world

EXPECTED = {"edge-only", "cloud-only", "static-optimal", "best-fixed", "heuristic", "greedy", "dads", "dnnsplit",
            "score", "oracle"}


def test_evaluate_writes_results_table_and_plots(tmp_path, capsys):
    out = tmp_path / "eval"
    assert main(["evaluate", "--minutes", "0.2", "--seed", "3", "--video-frames", str(FRAMES_PER_CLIP),
                 "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["simulated"] is True and results["scenario"]["name"] == "l2p-paper"
    assert set(results["policies"]) == EXPECTED
    assert results["sources"]["cloud_profile"]["derived"] is True
    assert results["sources"]["cloud_profile"]["speed_factor"] == 20.0
    assert results["sources"]["edge_profile"]["derived"] is False
    for name, summary in results["policies"].items():
        latency = summary["latency_ms"]
        assert latency["p50"] <= latency["p95"] <= latency["p99"], name
        assert summary["frames"] == 120 and sum(summary["cut_histogram"].values()) == summary["processed_frames"]
        # Every frame not finished on the edge went under one codec.
        assert sum(summary["codec_histogram"].values()) == summary["processed_frames"] - summary["cut_histogram"].get("edge", 0)
        assert summary["edge_energy_j_per_frame"] > 0 and summary["decisions_per_s"] > 0
        assert {"deadline_misses", "skipped_frames", "improvement_over_static_optimal_pct"} <= set(summary)
    assert results["policies"]["static-optimal"]["improvement_over_static_optimal_pct"] == 0.0
    table = (out / "results.md").read_text()
    assert "| Method | Mean latency (ms) | Std (ms) | Improvement over static optimal |" in table
    assert all(f"| {name} |" in table for name in EXPECTED)
    for plot in ("latency_cdf.png", "timeline.png"):
        assert (out / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Improvement over static optimal" in capsys.readouterr().out


def test_a_derived_slower_edge_slows_the_edge_not_the_cloud(tmp_path):
    runs = {}
    for factor in ("1", "0.25"):
        out = tmp_path / factor
        assert main(["evaluate", "--minutes", "0.2", "--policies", "edge-only,cloud-only", "--edge-speed-factor", factor,
                     "--video-frames", str(FRAMES_PER_CLIP), "--out", str(out)]) == 0
        runs[factor] = json.loads((out / "results.json").read_text())
    measured, derived = runs["1"]["sources"], runs["0.25"]["sources"]
    assert measured["edge_profile"]["derived"] is False
    assert derived["edge_profile"]["derived"] is True and derived["edge_profile"]["speed_factor"] == 0.25
    assert derived["edge_profile"]["machine"]["measured_on"] == measured["edge_profile"]["machine"]
    assert derived["edge_profile"]["full_pass_ms_median"] == 4 * measured["edge_profile"]["full_pass_ms_median"]
    assert derived["cloud_profile"]["full_pass_ms"] == measured["cloud_profile"]["full_pass_ms"]
    table = (tmp_path / "0.25" / "results.md").read_text()
    assert "- edge profile: DERIVED (0.25x the measured edge profile)" in table
    assert "- cloud profile: DERIVED (20x the measured edge profile)" in table

    def mean_ms(factor, policy):
        return runs[factor]["policies"][policy]["latency_ms"]["mean"]

    assert mean_ms("0.25", "cloud-only") == mean_ms("1", "cloud-only")
    assert mean_ms("0.25", "edge-only") > 3 * mean_ms("1", "edge-only")


def test_evaluate_a_trace_file(tmp_path):
    t = traces.time_grid(20.0, 1.0)
    path = tmp_path / "link.csv"
    Trace(t, traces.throttled_mbps(t, 40.0, 2.0, 5.0, 15.0), np.full(len(t), 10.0), np.zeros(len(t))).save(path)
    evaluation = evaluate(path, policies=["cloud-only", "greedy", "oracle"], seed=1, world=small_world(),
                          progress=False)
    assert evaluation.meta["scenario"]["name"] == "trace:link.csv"
    assert evaluation.meta["scenario"]["minutes"] == 20.0 / 60
    greedy = evaluation.runs["greedy"].log
    throttled = (greedy.time_s >= 6) & (greedy.time_s < 15)
    labels = greedy.partition_labels()
    assert {labels[p] for p in greedy.partition[throttled & greedy.processed]} == {"edge"}  # 2 Mbit/s: stay home
    assert evaluation.mean_ms("oracle") <= evaluation.mean_ms("cloud-only")


def test_evaluate_reports_bad_input(tmp_path, capsys):
    assert main(["evaluate", "--scenario", "nowhere", "--video-frames", str(FRAMES_PER_CLIP),
                 "--out", str(tmp_path)]) == 2
    assert "unknown scenario 'nowhere'" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("time_s,bandwidth_mbps\n0,x\n")
    assert main(["evaluate", "--trace", str(bad), "--out", str(tmp_path)]) == 2
    assert "bad.csv:2: column 'bandwidth_mbps'" in capsys.readouterr().err
    for factor in ("0", "-1", "nan", "inf"):
        with pytest.raises(SystemExit):
            main(["evaluate", "--edge-speed-factor", factor, "--out", str(tmp_path)])
        assert "argument --edge-speed-factor: must be > 0" in capsys.readouterr().err


def test_cost_model_policies_leave_a_congested_link_for_a_busy_edge():
    """The link falls from 40 to 1 Mbit/s for 20 s while the edge is half busy: an image then takes
    ~200 ms to send and the edge ~2x its profile. The policies see the uplink's backlog in the RTT
    and the frames at the edge as its queue, so they run on the edge within a second or two of the
    drop and stay there until the link is back. (When the simulator counted frames waiting for
    the link as edge queue, greedy kept sending images into the backlog for 11 s.)"""
    from pathlib import Path

    trace = Path(__file__).resolve().parents[1] / "bench" / "traces" / "step_40_1_40_load50.csv"
    evaluation = evaluate(trace, policies=["greedy", "dads", "oracle"], minutes=1, seed=0, world=small_world(),
                          progress=False, log=lambda *args: None)
    oracle_ms = evaluation.runs["oracle"].summary["latency_ms"]["mean"]
    for name in ("greedy", "dads"):
        log = evaluation.runs[name].log
        slow = (log.time_s >= 22.0) & (log.time_s < 40.0) & log.processed
        on_edge = np.array([log.partitions[p].is_edge_only(log.num_layers) for p in log.partition[slow]])
        assert on_edge.mean() >= 0.9, (name, on_edge.mean())
        assert evaluation.runs[name].summary["latency_ms"]["mean"] <= 1.15 * oracle_ms, name



def test_the_policies_predict_what_the_simulator_charges():
    """evaluate() gives the policies the frame costs the simulator plays (in a three-tier world
    too): on a link where sending the image is a little faster than the edge until the ~5 ms of
    encoding and decoding are counted, greedy keeps the frames on the edge with the costs charged
    and sends them without."""
    from dataclasses import replace

    from l2p_ros.measure.frame_costs import committed_frame_costs, load_frame_costs
    from l2p_ros.policies.types import Partition, SystemState
    from l2p_ros.simulation.scenarios import FogTier
    from test.simulation_fixtures import constant_scenario

    costs = load_frame_costs(committed_frame_costs("yolov3-tiny"))
    world = small_world()
    charged = world.with_frame_costs(costs)
    assert charged.policy_model.frame_costs is costs and world.policy_model.frame_costs is None
    tiered = charged.for_scenario(replace(constant_scenario(20.0), fog=FogTier()))
    assert tiered.policy_model.has_fog and tiered.policy_model.frame_costs is costs

    def break_even_mbps(model):  # where image offload and edge only are predicted alike (rtt 20 ms)
        image, edge = Partition.image_offload(), Partition.edge_only(model.num_layers)
        low, high = 0.1, 1000.0
        for _ in range(60):
            middle = (low * high) ** 0.5
            state = SystemState(bandwidth_mbps=middle, rtt_ms=20.0, frame_complexity=0.5)
            faster = model.predict(image, state).total_ms < model.predict(edge, state).total_ms
            low, high = (low, middle) if faster else (middle, high)
        return high

    plain_mbps, charged_mbps = break_even_mbps(world.policy_model), break_even_mbps(charged.policy_model)
    assert charged_mbps > 1.1 * plain_mbps  # the costs make offloading dearer
    between = constant_scenario((plain_mbps * charged_mbps) ** 0.5, fps=2.0)
    cuts = {frame_costs: evaluate(between, policies=["greedy"], minutes=0.5, world=world, frame_costs=frame_costs,
                                  hindsight_s=0, progress=False, log=lambda *args: None
                                  ).runs["greedy"].summary["cut_histogram"]
            for frame_costs in ("committed", None)}
    assert max(cuts["committed"], key=cuts["committed"].get) == "edge", cuts
    assert max(cuts[None], key=cuts[None].get) == "cloud", cuts
