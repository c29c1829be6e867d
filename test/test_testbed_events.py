"""Scheduled testbed events (l2p_ros.testbed.events), the NodeSet's kill and restart they use, and
what the analysis reads off a run with them (l2p_ros.testbed.analysis). Real processes; no root."""
import sys
import time

import psutil
import pytest

from l2p_ros.nodes.launcher import NodeSet
from l2p_ros.testbed.analysis import event_phases, outage, phases
from l2p_ros.testbed.events import CpuHog, EventSchedule, Window


class HereInstead:
    """A placement that runs ``replacement`` on this host instead of the node (no ROS needed)."""

    def __init__(self, replacement: list[str]):
        self.replacement = replacement

    def command(self, argv):
        return self.replacement

    def env(self):
        return {}


SLEEPER = HereInstead([sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"])


def test_window_parses_start_stop_and_names_what_is_wrong():
    assert Window.parse("20:40") == Window(20.0, 40.0)
    assert Window.parse("0.5:1") == Window(0.5, 1.0)
    for text, reason in (("40", "START:STOP"), ("40:20", "start < stop"), ("a:b", "START:STOP"), ("-1:3", "0 <=")):
        with pytest.raises(ValueError, match=reason):
            Window.parse(text)


def test_schedule_runs_each_due_action_once_in_time_order():
    ran = []
    schedule = EventSchedule()
    schedule.add(2.0, "second", lambda context: ran.append(("second", context)))
    schedule.add(1.0, "first", lambda context: ran.append(("first", context)))
    schedule.tick(0.5, "ctx")
    assert ran == [] and schedule.pending == [(1.0, "first"), (2.0, "second")]
    schedule.tick(2.5, "ctx")
    schedule.tick(3.0, "ctx")
    assert ran == [("first", "ctx"), ("second", "ctx")]
    assert [(e["event"], e["planned_s"], e["trace_time_s"]) for e in schedule.fired] == [
        ("first", 1.0, 2.5), ("second", 2.0, 2.5)]


def test_schedule_records_a_watched_happening_once_it_holds():
    schedule = EventSchedule()
    state = {"ready": True}
    schedule.watch(5.0, "ready", lambda context: context["ready"])
    schedule.tick(4.0, state)  # holds, but not watched yet
    state["ready"] = False
    schedule.tick(5.5, state)
    state["ready"] = True
    schedule.tick(6.0, state)
    schedule.tick(7.0, state)
    assert schedule.fired == [{"trace_time_s": 6.0, "planned_s": None, "event": "ready"}]


def test_a_node_killed_on_purpose_is_no_failure_and_starts_again_with_its_log_kept(tmp_path):
    nodes = NodeSet({}, tmp_path, nodes=("cloud_node",), placements={"cloud_node": SLEEPER})
    with nodes:
        first = nodes.start("cloud_node").process
        time.sleep(0.5)
        assert nodes.kill("cloud_node") == -9 and first.poll() == -9
        assert nodes.failed() == []
        second = nodes.start("cloud_node").process
        time.sleep(0.5)
        assert second.pid != first.pid and second.poll() is None
        assert (tmp_path / "cloud_node.log").read_text().count("up") == 2
        second.kill()
        second.wait()
        assert nodes.failed() and "cloud_node exited with -9" in nodes.failed()[0]  # a crash not asked for


def test_cpu_hog_busies_a_core_until_stopped():
    hog = CpuHog(HereInstead([sys.executable, "-c", "while True: pass"]))
    hog.start()
    try:
        process = psutil.Process(hog.process.pid)
        process.cpu_percent()
        time.sleep(1.0)
        assert process.cpu_percent() > 50
    finally:
        pid = hog.process.pid
        hog.stop()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    hog.stop()  # twice is fine


def _row(t, cut, executed_on, total_ms=100.0):
    return {"trace_time_s": t, "cut": cut, "decided_cut": cut, "executed_on": executed_on, "total_ms": total_ms}


def _results(timeline, decisions, events, applied=((0.0, 40.0),), duration_s=30.0):
    return {"timeline": timeline, "decisions": decisions, "events": events,
            "trace": {"duration_s": duration_s,
                      "applied": [{"trace_time_s": t, "bandwidth_mbps": r} for t, r in applied]}}


def test_event_phases_settle_and_time_the_move_off_a_loaded_edge():
    # Edge only (23) until a hog starts at 10 s; the first decision for the image comes 0.7 s later.
    decisions = [{"trace_time_s": t / 10, "cut": 23 if t < 107 or t >= 205 else -1, "edge_cpu_percent": 30.0,
                  "edge_time_factor": 1.0 if t < 50 else 2.0,
                  "link_arrival_scv": None if t < 110 else 0.1 if t < 210 else 0.3,
                  "link_queue_now_ms": None if t < 100 else float(t % 10) * 10} for t in range(300)]
    timeline = [_row(d["trace_time_s"], d["cut"], "edge" if d["cut"] == 23 else "cloud") for d in decisions[::5]]
    events = [{"trace_time_s": 10.0, "event": "edge hog started"}, {"trace_time_s": 20.0, "event": "edge hog stopped"}]
    rows = event_phases(_results(timeline, decisions, events))
    assert [(r["after"], r["settled_cut"], r["adapt_s"]) for r in rows] == [
        (None, 23, None), ("edge hog started", -1, 0.7), ("edge hog stopped", 23, 0.5)]
    assert rows[1]["executed_on"] == {"edge": 2, "cloud": 18} and rows[0]["edge_cpu_percent_median"] == 30.0
    assert [r["edge_time_factor_median"] for r in rows] == [1.5, 2.0, 2.0]  # 50 decisions at 1, 50 at 2 first
    # Not measured until 11 s (None: the edge ran every frame), then 0.1 and from 21 s 0.3.
    assert [r["link_arrival_scv_median"] for r in rows] == [None, 0.1, 0.3]
    # The decided backlog: off (None) for the first 10 s, then 0..90 ms evenly.
    assert [r["link_queue_now_ms_median"] for r in rows] == [None, 45.0, 45.0]
    assert [r["rate_mbit"] for r in phases(_results(timeline, decisions, events))] == [40.0]


def test_phases_say_how_well_the_choice_was_foreseen_and_on_which_rtt():
    """Over the frames run as decided: predicted latency over measured, and the RTT decided on;
    a frame the edge finished itself though the image was decided, and one without a prediction,
    are left out."""
    timeline = [{**_row(t, -1, "cloud", total_ms=200.0), "predicted_total_ms": 100.0 + 10 * t,
                 "estimated_rtt_ms": 30.0 + t} for t in range(5)]
    timeline.append({**_row(5.0, 23, "edge (fallback)", total_ms=900.0), "decided_cut": -1,
                     "predicted_total_ms": 100.0, "estimated_rtt_ms": 500.0})
    timeline.append({**_row(6.0, -1, "cloud", total_ms=200.0), "predicted_total_ms": float("nan"),
                     "estimated_rtt_ms": None})
    row, = phases(_results(timeline, [], []))
    assert row["predicted_over_measured_median"] == 0.6  # 100..140 ms over 200
    assert row["decided_rtt_ms_median"] == 32.0
    old, = phases(_results([_row(0.0, -1, "cloud")], [], []))  # results from before stop 33
    assert old["predicted_over_measured_median"] is None and old["decided_rtt_ms_median"] is None


def test_outage_times_local_fallback_the_gap_and_the_return_to_the_cloud():
    timeline = ([_row(t / 10, -1, "cloud") for t in range(0, 100)]  # results 0.1 s after capture
                + [_row(10.0, -1, "edge (fallback)", total_ms=600)]  # timed out, finished locally at 10.6
                + [_row(t / 10, 23, "edge", total_ms=500) for t in range(110, 200, 5)]
                + [_row(20.0, -1, "edge", total_ms=300), _row(20.4, -1, "cloud", total_ms=80)])
    events = [{"trace_time_s": 9.95, "event": "cloud_node killed"}, {"trace_time_s": 20.0, "event": "cloud_node started"},
              {"trace_time_s": 20.3, "event": "cloud_node ready"}]
    result = outage(_results(timeline, [], events))
    assert result["cloud_ready_after_restart_s"] == pytest.approx(0.3)
    assert result["first_cloud_result_after_ready_s"] == pytest.approx(0.18)
    assert result["first_local_result_after_kill_s"] == pytest.approx(0.65)
    assert result["longest_gap_during_outage_s"] == pytest.approx(0.9)  # 10.6 (fallback) -> 11.5 (first edge-only)
    assert result["first_cloud_result_after_restart_s"] == pytest.approx(0.48)
    assert result["executed_on_during_outage"] == {"edge (fallback)": 1, "edge": 18}
    with pytest.raises(ValueError, match="no cloud outage"):
        outage(_results(timeline, [], []))


def test_three_tier_phases_follow_the_backhaul_and_settle_on_pairs_of_cuts():
    # The image goes to the fog throughout; the fog passes it on (-1) until the backhaul drops at 10 s,
    # then finishes it (23) from 10.4 s.
    decisions = [{"trace_time_s": t / 10, "cut": -1, "fog_until_layer": 23 if 104 <= t < 200 else -1}
                 for t in range(300)]
    timeline = [_row(d["trace_time_s"], -1, "fog" if d["fog_until_layer"] == 23 else "fog+cloud")
                for d in decisions[::10]]
    results = _results(timeline, decisions, [])
    results["testbed"] = {"layout": {"tiers": ["edge", "fog", "cloud"]}}
    results["backhaul"] = {"applied": [{"trace_time_s": 0.0, "bandwidth_mbps": 20.0},
                                       {"trace_time_s": 10.0, "bandwidth_mbps": 1.0},
                                       {"trace_time_s": 20.0, "bandwidth_mbps": 20.0}]}
    rows = phases(results, link="backhaul")
    assert [(r["rate_mbit"], r["settled_cut"], r["adapt_s"]) for r in rows] == [
        (20.0, (-1, -1), None), (1.0, (-1, 23), 0.4), (20.0, (-1, -1), 0.0)]
    assert [r["settled_cut"] for r in phases(results)] == [(-1, -1)]  # the uplink's one phase
    with pytest.raises(ValueError, match="no 'backhaul' trace"):
        phases(_results(timeline, decisions, []), link="backhaul")
