"""The SystemState the partitioner assembles from the monitors' reports (ROS-free)."""
import math
from dataclasses import dataclass

import pytest

from l2p_ros.monitoring.state import AssumedLinks, link_estimate, system_state

ASSUMED = AssumedLinks(bandwidth_mbps=20.0, rtt_ms=30.0, fog_cloud_bandwidth_mbps=500.0, fog_cloud_rtt_ms=4.0)


@dataclass
class Link:
    bandwidth_mbps: float
    rtt_ms: float
    link_up: bool = True


@dataclass
class Load:
    cpu_percent: float
    gpu_percent: float = math.nan
    queue_length: int = 0


def test_assumed_links_until_a_monitor_reports():
    state = system_state(0.4, None, None, ASSUMED)
    assert (state.bandwidth_mbps, state.rtt_ms) == (20.0, 30.0)
    assert (state.fog_cloud_bandwidth_mbps, state.fog_cloud_rtt_ms) == (500.0, 4.0)
    assert (state.edge_load, state.edge_queue_length, state.frame_complexity) == (0.0, 0, 0.4)


def test_reported_links_replace_the_assumed_ones():
    state = system_state(0.5, Link(7.5, 12.0), None, ASSUMED, backhaul=Link(90.0, 2.5))
    assert (state.bandwidth_mbps, state.rtt_ms) == (7.5, 12.0)
    assert (state.fog_cloud_bandwidth_mbps, state.fog_cloud_rtt_ms) == (90.0, 2.5)


@pytest.mark.parametrize("report, expected", [
    (Link(50.0, 10.0, link_up=False), (0.0, 10.0)),  # a link down has no bandwidth
    (Link(math.nan, math.nan), (0.0, 30.0)),  # unknown bandwidth is none; unknown RTT keeps the assumed
    (Link(-3.0, -1.0), (0.0, 0.0)),  # never negative
])
def test_link_estimate_of_unusable_reports(report, expected):
    assert link_estimate(report, 20.0, 30.0) == expected


def test_edge_load_is_the_busier_of_cpu_and_gpu_with_unknowns_ignored():
    assert system_state(0.5, None, Load(30.0, 80.0, 2), ASSUMED).edge_load == pytest.approx(0.8)
    assert system_state(0.5, None, Load(30.0), ASSUMED).edge_load == pytest.approx(0.3)
    assert system_state(0.5, None, Load(math.nan), ASSUMED).edge_load == 0.0
    assert system_state(0.5, None, Load(250.0, queue_length=3), ASSUMED).edge_load == 1.0
    assert system_state(0.5, None, Load(10.0, queue_length=3), ASSUMED).edge_queue_length == 3


def test_complexity_is_clamped_to_0_1():
    assert system_state(1.7, None, None, ASSUMED).frame_complexity == 1.0
    assert system_state(-0.2, None, None, ASSUMED).frame_complexity == 0.0
