"""What a testbed run shows about adaptation, from its results.json (ROS-free).

A run is cut into phases, at each rate change of a link's trace (:func:`phases`) or at each of its
events (:func:`event_phases`: a hog started or stopped, the cloud killed or restarted). Per phase:
the cut the policy settled on (the most frequent decided cut in the phase's second half; in three
tiers the pair of cuts), and the
time to adapt: from the phase's start to the capture of the first frame decided for that cut (None
when the phase needs no other cut, or the policy never settled on it); and the first move: from the
phase's start to the first frame decided for any other cut than the previous phase's (the policy
noticed the change; a policy that spreads frames over edge and link, as greedy does on a slow link
with a busy edge, moves at once but may settle on no single cut). Decisions are those of every
frame (``results["decisions"]``), also of frames dropped later; older results without them fall back
to the detected frames' decisions. Latency per phase: mean and p95 of the frames detected that were
captured in it; the median of the partitioner's edge time factor over its decisions (how much
longer the edge took than predicted; None in results from before stop 30); and, over the frames
run as decided, the median of their predicted latency over the measured (how well the cost model
foresaw the choice it made) and of the RTT the policy decided on. :func:`outage` reads a cloud
outage (experiment 6) off the frames' results.
"""
from __future__ import annotations

import math
import statistics
from collections import Counter

EDGE_ALONE = ("edge", "edge (fallback)")  # executed_on of a frame the edge finished by itself


def _decided(row: dict) -> int:
    return row["decided_cut"] if row.get("decided_cut") is not None else row["cut"]


def _three_tiers(results: dict) -> bool:
    return "fog" in ((results.get("testbed") or {}).get("layout") or {}).get("tiers", ())


def _choice(decision: dict, three_tiers: bool):
    """What a decision chose: its cut, or in three tiers the pair (cut, fog's last layer; -1: none)."""
    return (decision["cut"], decision.get("fog_until_layer", -1)) if three_tiers else decision["cut"]


def _finite(value) -> bool:
    return value is not None and math.isfinite(value)


def _percentile(values: list[float], share: float) -> float:
    return sorted(values)[int(share * (len(values) - 1))]


def _phase_rows(results: dict, bounds: list[float], labels: list[dict]) -> list[dict]:
    """One row per phase [bounds[i], bounds[i+1]), starting with ``labels[i]``."""
    timeline = results["timeline"]
    decided = results.get("decisions") or [{"trace_time_s": row["trace_time_s"], "cut": _decided(row)}
                                            for row in timeline]
    three_tiers = _three_tiers(results)
    out = []
    previous_cut = None
    for index, label in enumerate(labels):
        start, stop = bounds[index], bounds[index + 1]
        rows = [row for row in timeline if start <= row["trace_time_s"] < stop]
        phase_decisions = [row for row in decided if start <= row["trace_time_s"] < stop]
        settled = [_choice(row, three_tiers) for row in phase_decisions if row["trace_time_s"] >= (start + stop) / 2]
        cut = Counter(settled).most_common(1)[0][0] if settled else None
        adapt_s = first_move_s = None
        if index > 0 and cut is not None and cut != previous_cut:
            first = next((row for row in phase_decisions if _choice(row, three_tiers) == cut), None)
            adapt_s = round(first["trace_time_s"] - start, 3) if first else None
        if index > 0 and previous_cut is not None:
            moved = next((row for row in phase_decisions if _choice(row, three_tiers) != previous_cut), None)
            first_move_s = round(moved["trace_time_s"] - start, 3) if moved else None
        totals = [row["total_ms"] for row in rows]
        loads = [row["edge_cpu_percent"] for row in phase_decisions if row.get("edge_cpu_percent") is not None]
        factors = [row["edge_time_factor"] for row in phase_decisions if row.get("edge_time_factor") is not None]
        scvs = [row["link_arrival_scv"] for row in phase_decisions if row.get("link_arrival_scv") is not None]
        backlogs = [row["link_queue_now_ms"] for row in phase_decisions if row.get("link_queue_now_ms") is not None]
        as_decided = [row for row in rows if row.get("decided_cut") == row["cut"]]
        foreseen = [row["predicted_total_ms"] / row["total_ms"] for row in as_decided
                    if _finite(row.get("predicted_total_ms")) and row["total_ms"] > 0]
        rtts = [row["estimated_rtt_ms"] for row in as_decided if _finite(row.get("estimated_rtt_ms"))]
        out.append({**label, "from_s": start, "to_s": stop, "frames_detected": len(rows),
                    "frames_decided": len(phase_decisions), "settled_cut": cut, "adapt_s": adapt_s,
                    "first_move_s": first_move_s,
                    "executed_on": dict(Counter(row["executed_on"] for row in rows)),
                    "edge_cpu_percent_median": round(statistics.median(loads), 1) if loads else None,
                    "edge_time_factor_median": round(statistics.median(factors), 2) if factors else None,
                    "link_arrival_scv_median": round(statistics.median(scvs), 3) if scvs else None,
                    "link_queue_now_ms_median": round(statistics.median(backlogs), 1) if backlogs else None,
                    "predicted_over_measured_median": round(statistics.median(foreseen), 2) if foreseen else None,
                    "decided_rtt_ms_median": round(statistics.median(rtts), 1) if rtts else None,
                    "latency_mean_ms": round(statistics.mean(totals), 1) if totals else None,
                    "latency_p95_ms": round(_percentile(totals, 0.95), 1) if totals else None})
        previous_cut = cut
    return out


def phases(results: dict, link: str = "trace") -> list[dict]:
    """A phase per rate the trace set (``rate_mbit``): the uplink's (``trace``) or in three tiers the
    fog -> cloud link's (``backhaul``). There ``settled_cut`` is a pair (cut, fog's last layer)."""
    if not results.get(link):
        raise ValueError(f"no {link!r} trace in these results")
    applied = results[link]["applied"]
    bounds = [entry["trace_time_s"] for entry in applied] + [results["trace"]["duration_s"]]
    return _phase_rows(results, bounds, [{"rate_mbit": entry["bandwidth_mbps"]} for entry in applied])


def event_phases(results: dict) -> list[dict]:
    """A phase from the start and after each event (``after``: the event that began it, None first)."""
    events = results.get("events") or []
    bounds = [0.0] + [event["trace_time_s"] for event in events] + [results["trace"]["duration_s"]]
    return _phase_rows(results, bounds, [{"after": None}] + [{"after": event["event"]} for event in events])


def outage(results: dict) -> dict:
    """A cloud outage read off the results: how soon after the kill the edge delivered a frame it
    finished alone, the longest time without any result during the outage, and how soon after the
    restart (and after the restarted node said it was ready) a frame captured then was finished in the
    cloud again. Times are result times (capture
    + total latency), seconds since the trace started."""
    events = {event["event"]: event["trace_time_s"] for event in results.get("events") or []}
    if "cloud_node killed" not in events or "cloud_node started" not in events:
        raise ValueError("no cloud outage in these results (events: cloud_node killed, cloud_node started)")
    killed_s, restarted_s = events["cloud_node killed"], events["cloud_node started"]
    ready_s = events.get("cloud_node ready")
    delivered = sorted((row["trace_time_s"] + row["total_ms"] / 1e3, row) for row in results["timeline"])
    local = [at_s for at_s, row in delivered if at_s >= killed_s and row["executed_on"] in EDGE_ALONE]
    during = [killed_s] + [at_s for at_s, _ in delivered if killed_s <= at_s <= restarted_s] + [restarted_s]
    back = [at_s for at_s, row in delivered if row["trace_time_s"] >= restarted_s and row["executed_on"] == "cloud"]
    outage_rows = [row for _, row in delivered if killed_s <= row["trace_time_s"] < restarted_s]
    return {"killed_s": killed_s, "restarted_s": restarted_s,
            "first_local_result_after_kill_s": round(local[0] - killed_s, 3) if local else None,
            "longest_gap_during_outage_s": round(max(b - a for a, b in zip(during, during[1:])), 3),
            "first_cloud_result_after_restart_s": round(back[0] - restarted_s, 3) if back else None,
            "cloud_ready_after_restart_s": round(ready_s - restarted_s, 3) if ready_s is not None else None,
            "first_cloud_result_after_ready_s": round(back[0] - ready_s, 3) if back and ready_s is not None else None,
            "executed_on_during_outage": dict(Counter(row["executed_on"] for row in outage_rows))}
