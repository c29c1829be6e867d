"""The SystemState a policy sees, assembled from the monitors' latest reports.

ROS-free: a report is anything with the fields of ``l2p_msgs/NetworkState`` (``bandwidth_mbps``,
``rtt_ms``, ``link_up``) or ``l2p_msgs/EdgeLoad`` (``cpu_percent``, ``gpu_percent``,
``queue_length``), so the partitioner passes its messages as they are and tests pass plain objects.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from l2p_ros.monitoring.edge_speed import calibrated_edge_load
from l2p_ros.policies.types import SystemState


class LinkReport(Protocol):
    bandwidth_mbps: float
    rtt_ms: float
    link_up: bool


class LoadReport(Protocol):
    cpu_percent: float
    gpu_percent: float
    queue_length: int


@dataclass(frozen=True)
class AssumedLinks:
    """What is assumed until a monitor reports: the uplink and, in three tiers, the fog -> cloud link."""

    bandwidth_mbps: float = 20.0
    rtt_ms: float = 20.0
    fog_cloud_bandwidth_mbps: float = 1000.0
    fog_cloud_rtt_ms: float = 5.0


def link_estimate(report: LinkReport | None, assumed_bandwidth_mbps: float, assumed_rtt_ms: float) -> tuple[float, float]:
    """(bandwidth Mbit/s, RTT ms) of a monitored link, or the assumed values until its monitor
    reports: a link down or an unknown bandwidth counts as 0, an unknown RTT keeps the assumed one."""
    bandwidth_mbps, rtt_ms = assumed_bandwidth_mbps, assumed_rtt_ms
    if report is not None:
        bandwidth_mbps = report.bandwidth_mbps if report.link_up else 0.0
        rtt_ms = report.rtt_ms if math.isfinite(report.rtt_ms) else rtt_ms
    return max(bandwidth_mbps, 0.0) if math.isfinite(bandwidth_mbps) else 0.0, max(rtt_ms, 0.0)


def monitor_load(load: LoadReport | None) -> float:
    """The edge load 0..1 a load report says: the busier of CPU and GPU, unknown values ignored;
    0 without a report."""
    if load is None:
        return 0.0
    busy = [v for v in (load.cpu_percent, load.gpu_percent) if math.isfinite(v)]
    return min(max(max(busy, default=0.0) / 100.0, 0.0), 1.0)


def system_state(complexity: float, uplink: LinkReport | None, load: LoadReport | None,
                 assumed: AssumedLinks, backhaul: LinkReport | None = None,
                 edge_time_factor: float = 1.0, rtt_floor_ms: float | None = None,
                 link_buffer_ms: float = 0.0, frame_interval_ms: float = 0.0,
                 link_arrival_scv: float = 1.0, link_queue_now_ms: float | None = None) -> SystemState:
    """The state for one frame: the links (reported or assumed), the edge load and queue, and the
    frame's complexity, clamped to 0..1. The load is the monitor's (:func:`monitor_load`) with
    ``edge_time_factor`` folded in (:func:`~l2p_ros.monitoring.edge_speed.calibrated_edge_load`:
    how many times longer the edge takes than the monitor's load predicts). ``rtt_floor_ms``
    (:class:`~l2p_ros.monitoring.rtt_floor.RttFloor`) caps a reported uplink's RTT; an assumed
    link keeps its assumed RTT. ``link_buffer_ms`` > 0 (with ``frame_interval_ms``, the camera's
    period) has the cost model charge each option the queue its own frames would leave on the
    uplink (:class:`~l2p_ros.monitoring.link_buffer.LinkBuffer` says how deep a full one is, and
    ``link_arrival_scv``, :class:`~l2p_ros.monitoring.link_arrivals.LinkArrivals`, how irregularly
    frames reach it), capped by ``link_queue_now_ms`` (:class:`~l2p_ros.monitoring.link_backlog.
    LinkBacklog`; None: no cap)."""
    bandwidth, rtt = link_estimate(uplink, assumed.bandwidth_mbps, assumed.rtt_ms)
    if uplink is not None and rtt_floor_ms is not None:
        rtt = min(rtt, rtt_floor_ms)
    fog_bandwidth, fog_rtt = link_estimate(backhaul, assumed.fog_cloud_bandwidth_mbps, assumed.fog_cloud_rtt_ms)
    edge_load = calibrated_edge_load(monitor_load(load), edge_time_factor)
    queue = 0 if load is None else int(load.queue_length)
    return SystemState(bandwidth_mbps=bandwidth, rtt_ms=rtt, edge_load=edge_load, edge_queue_length=queue,
                       frame_complexity=min(max(complexity, 0.0), 1.0),
                       fog_cloud_bandwidth_mbps=fog_bandwidth, fog_cloud_rtt_ms=fog_rtt,
                       link_buffer_ms=link_buffer_ms, frame_interval_ms=frame_interval_ms,
                       link_arrival_scv=link_arrival_scv, link_queue_now_ms=link_queue_now_ms)
