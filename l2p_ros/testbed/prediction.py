"""The simulator's prediction for a live testbed run: the same trace, policy, frame rate, profiles
and video, so that live and simulated latency can be set side by side.

What the simulator is told about the testbed: the uplink follows the trace; the RTT is the median
the live run's network monitor measured (the testbed adds no delay of its own); the edge carries
no other load; the video is the busy street (the sample video the live run loops) throughout.
"""
from __future__ import annotations

import math
import statistics
from pathlib import Path

import numpy as np

from l2p_ros.measure.profile import load_profile


def partitioner_view(parameters: dict) -> dict:
    """The partitioner's view of the link and the edge in a run's ``partitioner_node`` parameters, as
    :class:`SimulationConfig` fields; where the parameters leave one out, the node's own default."""
    from l2p_ros.monitoring.edge_speed import DEFAULT_CALIBRATE_EDGE
    from l2p_ros.monitoring.link_arrivals import DEFAULT_LINK_ARRIVALS
    from l2p_ros.monitoring.link_backlog import DEFAULT_LINK_BACKLOG
    from l2p_ros.monitoring.uplink_rtt import DEFAULT_LINK_BUFFER_MS, DEFAULT_LINK_RTT

    return {"link_rtt": str(parameters.get("link_rtt", DEFAULT_LINK_RTT)),
            "link_buffer_ms": float(parameters.get("link_buffer_ms", DEFAULT_LINK_BUFFER_MS)),
            "calibrate_edge": bool(parameters.get("calibrate_edge", DEFAULT_CALIBRATE_EDGE)),
            "link_arrivals": str(parameters.get("link_arrivals", DEFAULT_LINK_ARRIVALS)),
            "link_backlog": str(parameters.get("link_backlog", DEFAULT_LINK_BACKLOG))}


def simulate_live_run(results: dict, policy: str, model: str = "yolov3-tiny", log=print,
                      options: dict | None = None) -> dict:
    """``{"summary": ..., "timeline": [{trace_time_s, cut, latency_ms, estimated_mbps}...], "rtt_ms"}``;
    the policies see what the run's partitioner saw (``testbed.partitioner_view``: :func:`partitioner_view`;
    a run recorded before stop 34 has none and is simulated as the simulator's default, the monitor's
    RTT and the profile's edge, which is how those runs ran); ``options``: further
    :class:`SimulationConfig` fields (:func:`live_edge_calibration`'s), over the run's view."""
    from l2p_ros.simulation.evaluation import evaluate
    from l2p_ros.simulation.scenarios import Scenario
    from l2p_ros.simulation.traces import Trace, load_trace
    from l2p_ros.simulation.video import HIGH_COMPLEXITY_CLIP

    testbed = results["testbed"]
    rtts = [row["estimated_rtt_ms"] for row in results["timeline"]
            if row.get("estimated_rtt_ms") is not None and math.isfinite(row["estimated_rtt_ms"])]
    rtt_ms = statistics.median(rtts) if rtts else 1.0
    recorded = load_trace(results["trace"]["path"])
    trace = Trace(recorded.time_s, recorded.bandwidth_mbps, np.full(len(recorded), rtt_ms),
                  np.zeros(len(recorded)), note=f"testbed trace {Path(results['trace']['path']).name}, RTT {rtt_ms:.2f} ms")
    duration_s = results["trace"]["duration_s"]
    scenario = Scenario(f"testbed:{Path(results['trace']['path']).name}", "the live testbed run's trace",
                        duration_s / 60, lambda _d, _rng: trace, lambda _d, _rng: [(0.0, HIGH_COMPLEXITY_CLIP)],
                        fps=testbed["rate_hz"])
    evaluation = evaluate(scenario, model, [policy], edge_profile=Path(testbed["edge_profile"]),
                          cloud_profile=Path(testbed["cloud_profile"]), cloud_speed_factor=1.0,
                          bottlenecks=testbed.get("bottlenecks", ()),
                          simulation_options={**testbed.get("partitioner_view", {}), **(options or {})},
                          progress=False, log=log)
    run = evaluation.runs[policy]
    sim = run.log
    timeline = []
    for i in np.flatnonzero(sim.processed):
        partition = sim.partitions[sim.partition[i]]
        timeline.append({"trace_time_s": float(sim.time_s[i]), "cut": partition.cut_after_layer,
                         "latency_ms": float(sim.latency_ms[i]),
                         "estimated_mbps": float(sim.bandwidth_estimate_mbps[i])})
    return {"summary": run.summary, "timeline": timeline, "rtt_ms": rtt_ms}


def phase_bounds_s(results: dict, phase: int) -> tuple[float, float]:
    """When the run's trace set its ``phase``-th rate (from 0) and when it set the next (inf: never)."""
    applied = results["trace"]["applied"]
    return applied[phase]["trace_time_s"], applied[phase + 1]["trace_time_s"] if len(applied) > phase + 1 else math.inf


def second_phase(rows: list[dict], results: dict, latency_key: str) -> dict:
    """Of ``rows`` (a live run's ``timeline`` or its simulation's, latency under ``latency_key``) between
    the trace's second and third rates: frames, mean latency and cuts (shares of the frames, the
    most frequent first)."""
    start_s, end_s = phase_bounds_s(results, 1)
    phase = [row for row in rows if start_s <= row["trace_time_s"] < end_s and row.get(latency_key) is not None]
    cuts: dict[str, int] = {}
    for row in phase:
        cuts[str(row["cut"])] = cuts.get(str(row["cut"]), 0) + 1
    return {"frames": len(phase),
            "mean_ms": round(statistics.mean(row[latency_key] for row in phase), 1) if phase else None,
            "cuts": {cut: round(count / len(phase), 3) for cut, count in sorted(cuts.items(), key=lambda c: -c[1])},
            "mbps": results["trace"]["applied"][1]["bandwidth_mbps"]}


# Frames this early in a run are left out of calibration: the pipeline is still warming up.
WARM_UP_S = 2.0


def _first_phase(rows: list[dict], results: dict, key: str) -> list[float]:
    """``key`` of the rows between the warm-up and the trace's first change of rate."""
    end_s = phase_bounds_s(results, 0)[1]
    return [row[key] for row in rows
            if WARM_UP_S <= row["trace_time_s"] < end_s and row.get(key) is not None and math.isfinite(row[key])]


def live_edge_calibration(cloud_only: dict, edge_only: dict) -> dict:
    """The live pipeline's costs that the model leaves out, measured on two live runs with fixed
    policies on the same testbed (their ``results.json``, with the model-only prediction in
    ``simulated``), as :class:`SimulationConfig` fields for predicting other policies:

    - ``frame_overhead_ms``: cloud-only frames, live median latency minus the simulated median, at
      the trace's first rate (camera to edge, decision, encoding, decoding, the result back);
    - ``edge_background_load``: edge-only frames, from how much longer the edge's layers take live
      than the profile measured alone under the same CPU limit (``1 - profile / live``): the share
      the pipeline's other processes take of the edge.
    """
    live_ms = statistics.median(_first_phase(cloud_only["timeline"], cloud_only, "total_ms"))
    simulated_ms = statistics.median(_first_phase(cloud_only["simulated"]["timeline"], cloud_only, "latency_ms"))
    live_edge_ms = statistics.median(_first_phase(edge_only["timeline"], edge_only, "edge_ms"))
    profile_edge_ms = load_profile(edge_only["testbed"]["edge_profile"]).total_ms
    return {"live_edge": True, "frame_overhead_ms": max(0.0, live_ms - simulated_ms),
            "edge_background_load": min(0.95, max(0.0, 1.0 - profile_edge_ms / live_edge_ms))}
