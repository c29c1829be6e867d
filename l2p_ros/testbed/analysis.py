"""What a testbed run shows about adaptation, from its results.json (ROS-free).

For every rate change of the trace: the cut the policy settled on in that phase (the most frequent
decided cut in the phase's second half), and the time to adapt: from the change to the capture of
the first frame decided for the new phase's cut (None when the phase needs no other cut, or the
policy never settled on it). Decisions are those of every frame (``results["decisions"]``), also of
frames dropped later; older results without them fall back to the detected frames' decisions.
Latency per phase: mean and p95 of the frames detected that were captured in it.
"""
from __future__ import annotations

import statistics
from collections import Counter


def _decided(row: dict) -> int:
    return row["decided_cut"] if row.get("decided_cut") is not None else row["cut"]


def phases(results: dict) -> list[dict]:
    applied = results["trace"]["applied"]
    end_s = results["trace"]["duration_s"]
    bounds = [entry["trace_time_s"] for entry in applied] + [end_s]
    timeline = results["timeline"]
    decided = results.get("decisions") or [{"trace_time_s": row["trace_time_s"], "cut": _decided(row)}
                                            for row in timeline]
    out = []
    previous_cut = None
    for index, entry in enumerate(applied):
        start, stop = bounds[index], bounds[index + 1]
        rows = [row for row in timeline if start <= row["trace_time_s"] < stop]
        phase_decisions = [row for row in decided if start <= row["trace_time_s"] < stop]
        settled = [row["cut"] for row in phase_decisions if row["trace_time_s"] >= (start + stop) / 2]
        cut = Counter(settled).most_common(1)[0][0] if settled else None
        adapt_s = None
        if index > 0 and cut is not None and cut != previous_cut:
            first = next((row for row in phase_decisions if row["cut"] == cut), None)
            adapt_s = round(first["trace_time_s"] - start, 3) if first else None
        totals = [row["total_ms"] for row in rows]
        out.append({"from_s": start, "to_s": stop, "rate_mbit": entry["bandwidth_mbps"], "frames_detected": len(rows),
                    "frames_decided": len(phase_decisions),
                    "settled_cut": cut, "adapt_s": adapt_s,
                    "executed_on": dict(Counter(row["executed_on"] for row in rows)),
                    "latency_mean_ms": round(statistics.mean(totals), 1) if totals else None,
                    "latency_p95_ms": round(sorted(totals)[int(0.95 * (len(totals) - 1))], 1) if totals else None})
        previous_cut = cut
    return out
