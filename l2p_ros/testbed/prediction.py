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


def simulate_live_run(results: dict, policy: str, model: str = "yolov3-tiny", log=print) -> dict:
    """``{"summary": ..., "timeline": [{trace_time_s, cut, latency_ms, estimated_mbps}...], "rtt_ms"}``."""
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
                          cloud_profile=Path(testbed["cloud_profile"]), cloud_speed_factor=1.0, progress=False, log=log)
    run = evaluation.runs[policy]
    sim = run.log
    timeline = []
    for i in np.flatnonzero(sim.processed):
        partition = sim.partitions[sim.partition[i]]
        timeline.append({"trace_time_s": float(sim.time_s[i]), "cut": partition.cut_after_layer,
                         "latency_ms": float(sim.latency_ms[i]),
                         "estimated_mbps": float(sim.bandwidth_estimate_mbps[i])})
    return {"summary": run.summary, "timeline": timeline, "rtt_ms": rtt_ms}
