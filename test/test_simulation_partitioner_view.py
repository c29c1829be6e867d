"""The simulator gives the policies the partitioner's view of the link and the edge (link_rtt,
calibrate_edge), as the live node builds it from the monitors' reports (ROS-free)."""
import numpy as np
import pytest

from l2p_ros.policies.baselines import FixedCut
from l2p_ros.policies.types import Partition
from l2p_ros.simulation.simulator import SimulationConfig
from test.simulation_fixtures import constant_scenario, small_world


class Recording(FixedCut):
    """A fixed partition that keeps every state it was shown."""

    def __init__(self, partition: Partition):
        super().__init__(partition)
        self.states = []

    def decide(self, state):
        self.states.append(state)
        return super().decide(state)


def _run(partition_of, bandwidth_mbps: float, **options):
    world = small_world()
    scenario = constant_scenario(bandwidth_mbps)
    config = SimulationConfig(fps=10.0, deadline_ms=100.0, **options)
    sim = world.simulator(scenario, 20.0, 0, config)
    policy = Recording(partition_of(world.policy_model.num_layers))
    return sim.run(policy), policy.states


def test_own_queue_charges_the_links_floor_and_a_buffer_the_images_backlog_is_seen_to_hold():
    """The camera-size image at 10 frames/s fills a 2 Mbit/s link: the monitor's RTT carries the
    backlog. The smoothed view passes it on as the RTT; own-queue charges the floor instead and
    tells the cost model how deep a full link was seen to be (at least link_buffer_ms)."""
    def image(num_layers):
        return Partition.image_offload("jpeg-full-q75")

    smoothed_log, smoothed = _run(image, 2.0)
    own_log, own = _run(image, 2.0, link_rtt="own-queue", link_buffer_ms=150.0)
    assert np.array_equal(smoothed_log.latency_ms, own_log.latency_ms, equal_nan=True)  # the same frames played
    backlog_ms = np.array([state.rtt_ms for state in smoothed]) - 20.0
    assert backlog_ms.max() > 150.0  # the link holds more than the assumed buffer
    assert all(state.link_buffer_ms == 0.0 for state in smoothed)
    # Within the floor's 10 s window of the first report: the link's own RTT (the estimator's noise
    # about 20 ms); a link the stream keeps full for longer shows no lower RTT, live or here.
    early = [state for state in own if state.time_s < 9.5]
    assert max(state.rtt_ms for state in early) < 30.0
    assert all(state.frame_interval_ms == 100.0 for state in own)
    assert min(state.link_buffer_ms for state in own) >= 150.0
    # The deepest queue seen so far: at least the RTT over the floor at any decided frame (the
    # monitor also reports while frames are skipped, which these states do not show).
    seen_ms = max(state.rtt_ms for state in smoothed if state.time_s < 9.5) - min(state.rtt_ms for state in early)
    assert seen_ms > 150.0 and early[-1].link_buffer_ms >= seen_ms

def test_calibration_learns_the_edges_load_the_monitor_does_not_see():
    """The pipeline's own processes take half the edge (edge_background_load, which the load
    estimate misses): calibrated, the load the policies see comes to the one that doubles the
    edge's time, from the frames' results; uncalibrated, it stays the trace's none."""
    def edge_only(num_layers):
        return Partition.edge_only(num_layers)

    options = {"live_edge": True, "edge_background_load": 0.5}
    plain_log, plain = _run(edge_only, 20.0, **options)
    log, calibrated = _run(edge_only, 20.0, calibrate_edge=True, **options)
    assert all(state.edge_load < 0.05 for state in plain)
    assert np.all(plain_log.edge_time_factor[plain_log.processed] == 1.0)
    factor = log.edge_time_factor[log.processed]
    assert factor[0] == 1.0  # nothing measured before the first result is back
    assert factor[-1] == pytest.approx(2.0, rel=0.1)
    assert calibrated[-1].edge_load == pytest.approx(0.5, abs=0.05)


def test_measured_arrivals_are_the_offloaded_frames_and_charged_only_when_asked():
    """The image offloaded at 10 frames/s on a fast edge enters the link as regularly as the camera
    sends it: once ten intervals are back, the measured scv is about 0 and, with link_arrivals
    measured, charged; with poisson the policies are charged 1 whatever is measured. Edge only
    sends nothing, so nothing is measured and the charge stays 1."""
    def image(num_layers):
        return Partition.image_offload()

    view = {"link_rtt": "own-queue", "live_edge": True}
    log, measured = _run(image, 20.0, link_arrivals="measured", **view)
    poisson_log, poisson = _run(image, 20.0, **view)
    scv = log.link_arrival_scv[log.processed]
    assert np.isnan(scv[:10]).all()  # fewer than ten intervals back
    assert np.nanmax(scv) < 0.01 and np.isfinite(scv[-50:]).all()
    charged = np.array([state.link_arrival_scv for state in measured])
    assert np.array_equal(np.where(np.isnan(scv), 1.0, scv), charged)
    assert np.array_equal(poisson_log.link_arrival_scv, log.link_arrival_scv, equal_nan=True)
    assert all(state.link_arrival_scv == 1.0 for state in poisson)
    edge_log, edge = _run(lambda n: Partition.edge_only(n), 20.0, link_arrivals="measured", **view)
    assert np.isnan(edge_log.link_arrival_scv).all() and all(state.link_arrival_scv == 1.0 for state in edge)


def test_the_decided_backlog_is_what_the_decided_frames_leave_on_the_link():
    """The camera-size image at 10 frames/s over 2 Mbit/s fills the link: with link_backlog decided
    each state carries the backlog the frames decided before it leave as the partitioner predicts
    them (none at the first frame, then growing by what the link cannot carry while the vehicle
    takes every frame), the log the same; edge only leaves none; off caps nothing."""
    def image(num_layers):
        return Partition.image_offload("jpeg-full-q75")

    view = {"link_rtt": "own-queue", "live_edge": True}
    log, decided = _run(image, 2.0, link_backlog="decided", **view)
    now_ms = np.array([state.link_queue_now_ms for state in decided])
    assert now_ms[0] == 0.0 and np.all(np.diff(now_ms[:4]) > 50.0), now_ms[:4]
    assert np.array_equal(log.link_queue_now_ms[log.processed], now_ms)
    _, edge = _run(lambda n: Partition.edge_only(n), 2.0, link_backlog="decided", **view)
    assert all(state.link_queue_now_ms == 0.0 for state in edge)
    off_log, off = _run(image, 2.0, **view)
    assert all(state.link_queue_now_ms is None for state in off) and np.isnan(off_log.link_queue_now_ms).all()


def test_capped_at_the_decided_backlog_greedy_mixes_the_image_and_the_edge_where_together_they_win():
    """A Jetson-class edge (a quarter of the committed profile's speed) at 1 Mbit/s, no bottleneck:
    priced as if chosen for every frame, the image is charged a full buffer and greedy runs nearly
    every frame on the edge, which cannot keep up; capped at the link's queue when it gets there,
    it sends the image while the link has room and runs the edge while it has not."""
    from l2p_ros.simulation.evaluation import evaluate
    from l2p_ros.simulation.world import build_world
    from test.simulation_fixtures import COMMITTED_EDGE_PROFILE

    world = build_world("yolov3-tiny", edge_profile=COMMITTED_EDGE_PROFILE, edge_speed_factor=0.25,
                        log=lambda *args: None)
    runs = {}
    for backlog in ("off", "decided"):
        view = {"link_rtt": "own-queue", "calibrate_edge": True, "link_arrivals": "measured", "link_backlog": backlog}
        evaluation = evaluate(constant_scenario(1.0), policies=["greedy"], minutes=0.5, world=world,
                              simulation_options=view, hindsight_s=0, progress=False, log=lambda *args: None)
        runs[backlog] = evaluation.runs["greedy"].summary
    off, decided = runs["off"], runs["decided"]
    assert off["cut_histogram"].get("cloud", 0) < 0.25 * off["processed_frames"]
    assert decided["processed_frames"] >= off["processed_frames"]
    shares = {cut: count / decided["processed_frames"] for cut, count in decided["cut_histogram"].items()}
    assert shares.get("cloud", 0) > 0.3 and shares.get("edge", 0) > 0.3, shares
    assert decided["latency_ms"]["mean"] < 0.75 * off["latency_ms"]["mean"], (decided, off)


def test_a_wrong_view_is_refused_with_what_is_wrong():
    with pytest.raises(ValueError, match="link_rtt must be one of smoothed, floor, own-queue, got 'median'"):
        SimulationConfig(link_rtt="median")
    with pytest.raises(ValueError, match="link_buffer_ms must be > 0"):
        SimulationConfig(link_rtt="own-queue", link_buffer_ms=0.0)
    with pytest.raises(ValueError, match="link_arrivals must be one of poisson, measured, got 'kingman'"):
        SimulationConfig(link_rtt="own-queue", link_arrivals="kingman")
    with pytest.raises(ValueError, match="link_backlog must be one of off, decided, got 'kept'"):
        SimulationConfig(link_rtt="own-queue", link_backlog="kept")


def test_the_report_says_the_view_when_it_is_not_the_simulators_default():
    from l2p_ros.simulation.evaluation import evaluate
    from l2p_ros.simulation.report import markdown_table

    def report(**view):
        evaluation = evaluate(constant_scenario(2.0), policies=["greedy"], minutes=0.1, world=small_world(),
                              simulation_options=view, hindsight_s=0, progress=False, log=lambda *args: None)
        return evaluation.meta["scenario"]["partitioner_view"], markdown_table(evaluation)

    view, text = report()
    assert view == {"link_rtt": "smoothed", "calibrate_edge": False} and "partitioner's view" not in text
    view, text = report(link_rtt="own-queue", calibrate_edge=True)
    assert view == {"link_rtt": "own-queue", "calibrate_edge": True, "link_buffer_ms": 200.0, "link_arrivals": "poisson",
                    "link_backlog": "off"}
    assert "- the partitioner's view: link_rtt own-queue, link buffer at least 200 ms, edge calibrated" in text
    view, text = report(link_rtt="own-queue", link_arrivals="measured")
    assert view["link_arrivals"] == "measured"
    assert "- the partitioner's view: link_rtt own-queue, link buffer at least 200 ms, arrivals measured, " \
        "edge uncalibrated" in text
    view, text = report(link_rtt="own-queue", link_backlog="decided")
    assert view["link_backlog"] == "decided"
    assert "- the partitioner's view: link_rtt own-queue, link buffer at least 200 ms, own queue capped at the " \
        "decided backlog, edge uncalibrated" in text
