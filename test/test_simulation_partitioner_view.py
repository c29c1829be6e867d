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


def test_a_wrong_view_is_refused_with_what_is_wrong():
    with pytest.raises(ValueError, match="link_rtt must be one of smoothed, floor, own-queue, got 'median'"):
        SimulationConfig(link_rtt="median")
    with pytest.raises(ValueError, match="link_buffer_ms must be > 0"):
        SimulationConfig(link_rtt="own-queue", link_buffer_ms=0.0)
    with pytest.raises(ValueError, match="link_arrivals must be one of poisson, measured, got 'kingman'"):
        SimulationConfig(link_rtt="own-queue", link_arrivals="kingman")


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
    assert view == {"link_rtt": "own-queue", "calibrate_edge": True, "link_buffer_ms": 200.0, "link_arrivals": "poisson"}
    assert "- the partitioner's view: link_rtt own-queue, link buffer at least 200 ms, edge calibrated" in text
    view, text = report(link_rtt="own-queue", link_arrivals="measured")
    assert view["link_arrivals"] == "measured"
    assert "- the partitioner's view: link_rtt own-queue, link buffer at least 200 ms, arrivals measured, " \
        "edge uncalibrated" in text
