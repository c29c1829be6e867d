"""Trace-driven simulation of the split pipeline, frame by frame, deterministic for a seed.

Frames arrive at a fixed rate. For each one a policy chooses a partition from the state it may
know: the monitors' ESTIMATES (:mod:`l2p_ros.simulation.estimator`), or the TRUE state for a
policy with ``needs_true_state`` (the oracle). The frame is then played through three FIFO
servers with the TRUE conditions:

- edge: the layers before the cut, idle-machine time from the edge profile, stretched by the
  trace's edge load while it runs (processor sharing, as in the cost model);
- link: the crossing bytes of THIS frame (from the video table) drained at the trace's
  bandwidth while they are sent (a dead link stalls them); then half the RTT to the cloud;
- cloud: the remaining layers (cloud profile), then half the RTT back.

Three tiers (the cost model has a fog profile): the trace's link is the edge -> fog link, and
every offloaded frame goes edge -> link -> half the RTT -> fog -> fog link -> half its RTT ->
cloud -> back over both halves, five FIFO servers. The fog runs layers k+1..j of a partition with
``fog_until_layer = j`` (fog profile) and encodes the crossing at j with the cost model's
``fog_codec``; a two-tier partition is forwarded by the fog unchanged (no fog compute, the edge's
payload on the fog link), and one whose fog range reaches the last layer finishes on the fog
(back over the first link only), exactly as :meth:`CostModel.predict` assumes. The fog -> cloud
link runs at the config's constant ``fog_cloud_bandwidth_mbps`` and ``fog_cloud_rtt_ms`` (the
states the policies see carry the same values). Two-tier worlds play exactly as before.

``frame_costs`` (:mod:`l2p_ros.measure.frame_costs`, measured): every frame's complexity and
decision, and the crossing's encoding, are charged to the edge as work (stretched by its load like
its layers); decoding to the tier that receives the edge's payload and computes on it; in three
tiers, the fog's encoding of its handover to the fog's work and its decoding to the cloud's. The truth's
cost model charges them (:class:`~l2p_ros.policies.cost_model.CostModel`), so this module and every
prediction charge them alike; the policies know them where their model has the same costs
(``World.with_frame_costs``, as ``evaluate`` builds it).

``fleet`` (a :class:`~l2p_ros.policies.cloud_batching.CloudShare`): the cloud is shared with the
simulated vehicle's peers and batches frames that share a partition
(:mod:`l2p_ros.simulation.fleet_cloud`); the policies' cost model knows it when built with the
same share (``World.with_cloud_share``).

Edge-only frames finish on the edge and use neither link nor cloud. A frame waits when the
server before it is busy, so latency grows when frames come faster than a stage runs. Frames not
yet through the vehicle's servers (edge and uplink) form the vehicle queue; a frame arriving to
more than ``max_vehicle_queue`` of them is skipped (never processed, counted). Without
``frame_costs``, encoding, decoding, the frame's complexity and the decision take no time.

The policies see the queue as the live monitors report it: the frames still at the edge as its
queue, and the uplink's backlog in the RTT (the monitor's probes and the frames' receipts wait
behind it). Counting frames waiting for the link as edge queue, as this simulator once did, made
every cost-model policy charge the backlog to running on the edge and none to sending more:
after the link fell to 1 Mbit/s with the edge half busy, greedy kept sending images into the
backlog for 11 s (bench/traces/step_40_1_40_load50.csv).

``live_edge`` plays the vehicle as the live edge node schedules it (measured on the testbed, where
the simulator without it was 21-24% slower than live for the searching policies):
- latest frame wins: the edge holds one waiting frame, and a frame still waiting when the next
  arrives is dropped (``superseded``); ``max_vehicle_queue`` still bounds the frames in the uplink
  (live, the DDS writer keeps the last four);
- the edge's queue the policies see is 0, as the live edge reports it (its timed-out frames only,
  which are not simulated): the frame in service delays every choice alike, and the waiting one is
  replaced by the next (stop 14; before, the waiting frame counted, so the edge looked twice as
  slow whenever it was busy and greedy alternated edge and image at 1 Mbit/s, live and here);
- ``frame_overhead_ms``: the pipeline's fixed time per frame outside the model's compute and the
  link (camera to edge, the decision, encoding and decoding, the result back), as measured live;
- ``edge_background_load``: the share of the edge's CPU the pipeline's other processes take
  (camera, monitors, partitioner), which stretches the edge's layers beside the trace's load but
  which the load monitor does not report (it reads the host, not the edge's quota).

The partitioner's view of the link and the edge (its parameters of the same names; the defaults
here are the simulator's as before, the live node's are ``own-queue`` and calibrated):
- ``link_rtt``: which RTT the policies are charged (:class:`~l2p_ros.monitoring.uplink_rtt.UplinkRtt`
  fed the estimated RTT with the uplink's backlog in it, on the simulated clock): ``smoothed`` as
  estimated, ``floor`` its lowest of the last 10 s, ``own-queue`` that floor and each offloaded
  option the queue its own frames would leave on the link (the deepest backlog seen in the last
  60 s, at least ``link_buffer_ms``, is how long a full link holds a frame);
- ``calibrate_edge``: the estimated load the policies see has folded in how much longer the edge
  took than the profile predicted at that estimate
  (:class:`~l2p_ros.monitoring.edge_speed.EdgeSpeed`), each frame's ratio known once its result is
  back (the live node reads it from the detections), so a load the estimate lags or misses (the
  pipeline's ``edge_background_load``) is learned as the live node learns it;
- ``link_arrivals``: with ``own-queue``, how irregularly frames reach the uplink, for the wait its
  queue charges: ``poisson`` (M/D/1's; the default here, the node's is ``measured``) or ``measured``
  (:class:`~l2p_ros.monitoring.link_arrivals.LinkArrivals` fed when each offloaded frame entered
  the link, known once its result is back, as the live node reads the edge's send stamps from the
  detections);
- ``link_backlog``: with ``own-queue``, ``decided`` caps each option's own queue at the backlog
  the partitioner's own decisions leave on the link now
  (:class:`~l2p_ros.monitoring.link_backlog.LinkBacklog`, fed each decided frame's predicted edge
  and sending times, as the live node does); ``off`` (the default here and live) no cap.
"""
from __future__ import annotations

import heapq
import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from l2p_ros.policies.cloud_batching import CloudShare
from l2p_ros.policies.cost_model import CostModel, send_ms
from l2p_ros.policies.types import INPUT, Partition, Policy, SystemState
from l2p_ros.simulation.estimator import EstimatorConfig, EwmaEstimator
from l2p_ros.simulation.fleet_cloud import IDLE, FleetCloudState
from l2p_ros.simulation.fleet_cloud import serve as fleet_serve
from l2p_ros.measure.frame_costs import FrameCosts
from l2p_ros.monitoring.edge_speed import EdgeSpeed, calibrated_edge_load
from l2p_ros.monitoring.link_arrivals import LINK_ARRIVAL_MODES, LinkArrivals, charged_scv
from l2p_ros.monitoring.link_backlog import LINK_BACKLOG_MODES, LinkBacklog
from l2p_ros.monitoring.uplink_rtt import DEFAULT_LINK_BUFFER_MS, LINK_RTT_MODES, UplinkRtt
from l2p_ros.simulation.traces import Trace
from l2p_ros.simulation.video import FramePayloads, VideoTable


@dataclass(frozen=True)
class SimulationConfig:
    """``fps``: frame arrival rate; ``deadline_ms``: a frame slower than this misses its deadline;
    ``max_vehicle_queue``: frames allowed ahead on the vehicle before an arriving frame is skipped;
    ``fog_cloud_bandwidth_mbps``, ``fog_cloud_rtt_ms``: the fog -> cloud link, used in three tiers
    only (the defaults are :class:`SystemState`'s nominal backhaul); ``fleet``: the cloud is shared
    with that many vehicles and batches their frames (:mod:`l2p_ros.simulation.fleet_cloud`; its
    ``frames_per_s`` must be ``fps``), None: the cloud is the simulated vehicle's alone;
    ``link_rtt``, ``link_buffer_ms``, ``calibrate_edge``, ``link_arrivals``, ``link_backlog``: the
    partitioner's parameters of those names (the module's docstring)."""

    fps: float = 10.0
    deadline_ms: float = 100.0
    max_vehicle_queue: int = 3
    estimator: EstimatorConfig = field(default_factory=EstimatorConfig)
    fog_cloud_bandwidth_mbps: float = 1000.0
    fog_cloud_rtt_ms: float = 5.0
    live_edge: bool = False
    frame_overhead_ms: float = 0.0
    edge_background_load: float = 0.0
    frame_costs: FrameCosts | None = None
    fleet: CloudShare | None = None
    link_rtt: str = "smoothed"
    link_buffer_ms: float = DEFAULT_LINK_BUFFER_MS
    calibrate_edge: bool = False
    link_arrivals: str = "poisson"  # the partitioner's default is measured (module docstring)
    link_backlog: str = "off"

    def __post_init__(self) -> None:
        for name, choices in (("link_rtt", LINK_RTT_MODES), ("link_arrivals", LINK_ARRIVAL_MODES),
                              ("link_backlog", LINK_BACKLOG_MODES)):
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {', '.join(choices)}, got {getattr(self, name)!r}")
        if not (math.isfinite(self.link_buffer_ms) and self.link_buffer_ms > 0):
            raise ValueError(f"link_buffer_ms must be > 0, got {self.link_buffer_ms}")
        if self.fleet is not None and (self.fleet.frames_per_s != self.fps or self.live_edge):
            raise ValueError(f"a fleet's vehicles send at the simulated fps ({self.fps}), got "
                             f"{self.fleet.frames_per_s}; and it is not modelled with live_edge")
        if self.fps <= 0 or self.deadline_ms <= 0 or self.max_vehicle_queue < 0:
            raise ValueError(f"need fps > 0, deadline_ms > 0, max_vehicle_queue >= 0: {self}")
        if self.fog_cloud_bandwidth_mbps <= 0 or self.fog_cloud_rtt_ms < 0:
            raise ValueError(f"need fog_cloud_bandwidth_mbps > 0, fog_cloud_rtt_ms >= 0: {self}")
        if not (self.frame_overhead_ms >= 0 and 0 <= self.edge_background_load < 1):
            raise ValueError(f"need frame_overhead_ms >= 0 and edge_background_load in [0, 1): {self}")
        if not self.live_edge and (self.frame_overhead_ms or self.edge_background_load):
            raise ValueError("frame_overhead_ms and edge_background_load describe the live edge: set live_edge")


@dataclass(frozen=True)
class FrameContext:
    """The frame awaiting a decision: its index, arrival time (s), video-table row, and the state
    as it truly is and as the monitors estimate it. Complexity and queue are known exactly; the
    state's ``edge_queue_length`` counts the frames ahead still at the edge (0 with ``live_edge``,
    as the live edge reports it), and its RTT includes the uplink's backlog."""

    index: int
    time_s: float
    row: int
    true_state: SystemState
    estimated_state: SystemState


@dataclass(frozen=True)
class FrameOutcome:
    """What happened to one decided frame. Times in ms; ``queue_ms`` is the time spent waiting
    for busy servers; ``skipped_after``: frames skipped between this one and the next decision."""

    index: int
    partition: Partition
    latency_ms: float
    edge_ms: float
    send_ms: float
    cloud_ms: float
    queue_ms: float
    payload_bytes: float
    edge_energy_j: float
    deadline_miss: bool
    skipped_after: int
    fog_ms: float = 0.0
    fog_send_ms: float = 0.0


@dataclass
class SimulationLog:
    """Per-frame record of one run, arrays of length N (frames). Skipped frames have
    ``partition == -1`` and NaN latency, energy and decision time.

    ``partition`` indexes ``partitions``; ``decide_s`` is the wall-clock time of the policy's
    decision (the only non-deterministic field); ``latency_ms`` is ``inf`` for a frame whose
    bytes never got through (the link stayed down until the end of the trace). ``superseded``:
    skipped frames that a newer one replaced at the edge (``live_edge``).
    """

    time_s: np.ndarray
    row: np.ndarray
    complexity: np.ndarray
    bandwidth_mbps: np.ndarray
    bandwidth_estimate_mbps: np.ndarray
    rtt_ms: np.ndarray
    edge_load: np.ndarray
    edge_load_estimate: np.ndarray
    vehicle_queue: np.ndarray
    skipped: np.ndarray
    partition: np.ndarray
    latency_ms: np.ndarray
    edge_ms: np.ndarray
    send_ms: np.ndarray
    cloud_ms: np.ndarray
    queue_ms: np.ndarray
    payload_bytes: np.ndarray
    edge_energy_j: np.ndarray
    deadline_miss: np.ndarray
    decide_s: np.ndarray
    partitions: list[Partition]
    num_layers: int
    deadline_ms: float
    fog_ms: np.ndarray | None = None  # three tiers: fog compute and fog -> cloud sending (0 in two tiers)
    fog_send_ms: np.ndarray | None = None
    superseded: np.ndarray | None = None
    edge_time_factor: np.ndarray | None = None  # the calibration the frame's decision saw (1: none)
    link_arrival_scv: np.ndarray | None = None  # the arrivals' scv measured at its decision (NaN: none yet)
    link_queue_now_ms: np.ndarray | None = None  # link_backlog decided: the backlog its decision saw (NaN: off)

    @classmethod
    def empty(cls, n: int, num_layers: int, deadline_ms: float) -> SimulationLog:
        def nan():
            return np.full(n, np.nan)
        return cls(nan(), np.zeros(n, dtype=np.int64), nan(), nan(), nan(), nan(), nan(), nan(),
                   np.zeros(n, dtype=np.int64), np.zeros(n, dtype=bool), np.full(n, -1, dtype=np.int64),
                   nan(), nan(), nan(), nan(), nan(), nan(), nan(), np.zeros(n, dtype=bool), nan(), [],
                   num_layers, deadline_ms, nan(), nan(), np.zeros(n, dtype=bool), nan(), nan(), nan())

    @property
    def processed(self) -> np.ndarray:
        return ~self.skipped

    def partition_labels(self) -> list[str]:
        """Label of each entry of ``partitions`` (``cloud``, ``edge``, ``k``, ``dag:...``)."""
        return [p.name(self.num_layers) for p in self.partitions]


@dataclass(frozen=True)
class _Played:
    """One frame played through the servers (:meth:`Simulator._play`); times in ms unless _s."""

    latency_ms: float
    service_ms: float
    edge_ms: float
    send_ms: float
    cloud_ms: float
    payload: float
    energy_j: float
    fog_ms: float
    fog_send_ms: float
    vehicle_done_s: float
    free_s: tuple  # the servers' next free times after it, as Simulator._servers
    fleet_cloud: FleetCloudState = IDLE  # with a fleet: the shared cloud after it
    sent_s: float = math.nan  # when it entered the uplink's queue (NaN: it never crossed it)


class Simulator:
    """One episode: ``rows`` (N,) gives the video-table row of each frame; ``model`` supplies the
    profiles and power model; ``seed`` drives the estimator's noise.

    Step by step (the gymnasium env): read :attr:`pending`, call :meth:`step` with a partition,
    until :attr:`done`. All at once: :meth:`run` with a policy.
    """

    def __init__(self, model: CostModel, table: VideoTable, trace: Trace, rows: np.ndarray,
                 config: SimulationConfig, seed: int | np.random.SeedSequence):
        if table.model["num_layers"] != model.num_layers:
            raise ValueError(f"video table is of a {table.model['num_layers']}-layer model, "
                             f"the cost model of a {model.num_layers}-layer one")
        self.config = config
        self.model = model  # the partitioner's cost model, for its own backlog (link_backlog)
        self.table = table
        self.trace = trace
        self.rows = np.asarray(rows, dtype=np.int64)
        self.payloads = FramePayloads(table)
        # The truth for this episode: this frame's own bytes. Each simulator has its own, so
        # several can run side by side (vectorised environments) without sharing a current row.
        self.true_model = CostModel(model.graph, model.edge_profile, model.cloud_profile, model.power,
                                    self.payloads, model.max_edge_load, cloud_power=model.cloud_power,
                                    fog_profile=model.fog_profile, fog_power=model.fog_power,
                                    fog_codec=model.fog_codec,
                                    bottlenecks={name: (cut, None) for name, (cut, _) in model.bottlenecks.items()},
                                    frame_costs=config.frame_costs)
        self._has_fog = model.has_fog
        self.estimator = EwmaEstimator(trace, config.estimator, np.random.default_rng(seed))
        self._link_bytes_per_s = trace.bandwidth_mbps * 1e6 / 8
        # Work sharing the edge: the trace's load and the pipeline's own (live_edge), independent shares.
        busy = 1.0 - (1.0 - trace.edge_load) * (1.0 - config.edge_background_load)
        self._edge_rate = 1.0 / np.array([model.edge_slowdown(u) for u in busy])
        self._partition_ids: dict[Partition, int] = {}
        self.log = SimulationLog.empty(len(self.rows), model.num_layers, config.deadline_ms)
        self._edge_free_s = self._link_free_s = self._cloud_free_s = 0.0
        self._fog_free_s = self._fog_link_free_s = 0.0
        self._fleet_cloud = IDLE  # the shared cloud, with a fleet
        self._vehicle_done_s: list[float] = []  # when each accepted frame leaves the vehicle
        self._edge_done_s: list[float] = []  # when each accepted frame leaves the edge's server
        self._next = 0
        # The partitioner's view (module docstring), on the simulated clock.
        self._clock_s = 0.0
        self.uplink_rtt = UplinkRtt(config.link_rtt, config.link_buffer_ms, clock=lambda: self._clock_s)
        self.edge_speed = EdgeSpeed(clock=lambda: self._clock_s)
        self._edge_reports: list[tuple[float, float, float]] = []  # heap of (result back s, measured, predicted ms)
        self.link_arrivals = LinkArrivals(clock=lambda: self._clock_s)
        self._sent_reports: list[tuple[float, float]] = []  # heap of (result back s, entered the uplink s)
        self.link_backlog = LinkBacklog(1.0 / config.fps, latest_frame_wins=config.live_edge,
                                        clock=lambda: self._clock_s)
        self._monitor_load = 0.0  # the pending frame's estimated load, before calibration
        self.pending: FrameContext | None = None
        self._advance()

    @property
    def _fog_link(self) -> dict:
        """The fog -> cloud link in the states (constant; known to the policies as it is)."""
        config = self.config
        return {"fog_cloud_bandwidth_mbps": config.fog_cloud_bandwidth_mbps,
                "fog_cloud_rtt_ms": config.fog_cloud_rtt_ms}

    @property
    def num_frames(self) -> int:
        return len(self.rows)

    @property
    def done(self) -> bool:
        return self.pending is None

    def _advance(self) -> int:
        """Make the next frame that is not skipped pending; returns how many were skipped."""
        skipped = 0
        fps = self.config.fps
        while self._next < self.num_frames:
            n, t = self._next, self._next / fps
            row = int(self.rows[n])
            self._vehicle_done_s = [d for d in self._vehicle_done_s if d > t]
            self._edge_done_s = [d for d in self._edge_done_s if d > t]
            bandwidth, rtt, load = self.trace.at(t)
            est_bandwidth, est_rtt, est_load = self.estimator.estimate(t)
            backlog_ms = max(0.0, self._link_free_s - t) * 1e3
            est_rtt += backlog_ms  # probes and receipts wait behind the uplink's backlog
            state_rtt, edge_factor, arrival_scv = self._partitioner_view(t, est_bandwidth, est_rtt)
            drop = len(self._vehicle_done_s) > self.config.max_vehicle_queue
            if self.config.live_edge:
                queue = int(self._edge_free_s > t)  # the frame waits in the edge's slot
                # Still waiting when the next frame arrives: the next one replaces it.
                superseded = n + 1 < self.num_frames and self._edge_free_s > (n + 1) / fps
                drop = drop or superseded
                # What the live edge reports: its timed-out frames, which are not simulated. The
                # frame in service delays every choice alike, so it is not charged per choice.
                reported_queue = 0
            else:
                queue = reported_queue = len(self._edge_done_s)  # frames ahead still at the edge
                superseded = False
            complexity = float(self.table.complexity[row])
            log = self.log
            log.time_s[n], log.row[n], log.complexity[n], log.vehicle_queue[n] = t, row, complexity, queue
            log.bandwidth_mbps[n], log.rtt_ms[n], log.edge_load[n] = bandwidth, rtt, load
            log.bandwidth_estimate_mbps[n], log.edge_load_estimate[n] = est_bandwidth, est_load
            log.edge_time_factor[n] = edge_factor
            log.link_arrival_scv[n] = math.nan if arrival_scv is None else arrival_scv
            if drop:
                log.skipped[n] = True
                log.superseded[n] = superseded
                skipped += 1
                self._next += 1
                continue
            self._payloads_at(row)
            self._monitor_load = est_load
            own_queue = {"link_buffer_ms": self.uplink_rtt.buffer_ms, "frame_interval_ms": 1e3 / fps,
                         "link_arrival_scv": charged_scv(arrival_scv, self.config.link_arrivals)} \
                if self.uplink_rtt.buffer_ms > 0 else {}
            if own_queue and self.config.link_backlog == "decided":
                own_queue["link_queue_now_ms"] = log.link_queue_now_ms[n] = self.link_backlog.queue_ms
            self.pending = FrameContext(
                n, t, row, self.true_state(n, reported_queue, backlog_ms),
                SystemState(bandwidth_mbps=est_bandwidth, rtt_ms=state_rtt,
                            edge_load=calibrated_edge_load(est_load, edge_factor),
                            edge_queue_length=reported_queue, frame_complexity=complexity, time_s=t,
                            **self._fog_link, **own_queue))
            return skipped
        self.pending = None
        return skipped

    def _partitioner_view(self, t: float, est_bandwidth: float, est_rtt: float) -> tuple[float, float, float | None]:
        """At ``t``: the RTT the policies are charged (``link_rtt``), the edge's calibration
        factor (1 without ``calibrate_edge``) and the arrivals' measured scv (None: too few yet),
        from the reports that have reached the partitioner."""
        self._clock_s = t
        reports = self._edge_reports
        while reports and reports[0][0] <= t:
            _, measured_ms, predicted_ms = heapq.heappop(reports)
            self.edge_speed.add(measured_ms, predicted_ms)
        while self._sent_reports and self._sent_reports[0][0] <= t:
            self.link_arrivals.add(heapq.heappop(self._sent_reports)[1])
        if est_bandwidth > 0:  # the monitor's link is up
            self.uplink_rtt.add(est_rtt)
        floor_ms = self.uplink_rtt.floor_ms
        rtt = est_rtt if floor_ms is None else min(est_rtt, floor_ms)
        return rtt, self.edge_speed.factor if self.config.calibrate_edge else 1.0, self.link_arrivals.scv

    def step(self, partition: Partition, decide_s: float = math.nan) -> FrameOutcome:
        """Play the pending frame with ``partition`` under the true conditions, then move on."""
        if self.pending is None:
            raise RuntimeError("the simulation is over: no frame is pending")
        frame = self.pending
        played = self._play(partition, frame.time_s, frame.row, self._servers(), self._fleet_cloud)
        (self._edge_free_s, self._link_free_s, self._cloud_free_s, self._fog_free_s,
         self._fog_link_free_s) = played.free_s
        self._fleet_cloud = played.fleet_cloud
        self._vehicle_done_s.append(played.vehicle_done_s)
        if self.config.link_backlog == "decided":  # what the partitioner expects of its decision
            predicted = self.model.predict(partition, frame.estimated_state)  # on the clock of its decision
            self.link_backlog.decided(predicted.edge_ms, predicted.send_ms, self.uplink_rtt.buffer_ms)
        if self.config.calibrate_edge and math.isfinite(played.latency_ms):  # its result reaches the partitioner
            predicted_ms = self.true_model.placement(partition).edge_ms * self.true_model.edge_slowdown(self._monitor_load)
            heapq.heappush(self._edge_reports, (frame.time_s + played.latency_ms / 1e3, played.edge_ms, predicted_ms))
        if math.isfinite(played.sent_s) and math.isfinite(played.latency_ms):
            heapq.heappush(self._sent_reports, (frame.time_s + played.latency_ms / 1e3, played.sent_s))
        self._edge_done_s.append(self._edge_free_s)  # FIFO: the edge is next free when this frame leaves it
        latency_ms, service_ms = played.latency_ms, played.service_ms
        n, log = frame.index, self.log
        partition_id = self._partition_ids.get(partition)
        if partition_id is None:
            partition_id = self._partition_ids[partition] = len(log.partitions)
            log.partitions.append(partition)
        log.partition[n] = partition_id
        log.latency_ms[n], log.edge_ms[n], log.send_ms[n] = latency_ms, played.edge_ms, played.send_ms
        log.cloud_ms[n], log.queue_ms[n], log.payload_bytes[n] = played.cloud_ms, latency_ms - service_ms, played.payload
        log.edge_energy_j[n], log.deadline_miss[n] = played.energy_j, latency_ms > self.config.deadline_ms
        log.decide_s[n] = decide_s
        log.fog_ms[n], log.fog_send_ms[n] = played.fog_ms, played.fog_send_ms
        self._next = n + 1
        skipped = self._advance()
        return FrameOutcome(n, partition, latency_ms, played.edge_ms, played.send_ms, played.cloud_ms,
                            latency_ms - service_ms, played.payload, played.energy_j, bool(log.deadline_miss[n]),
                            skipped, played.fog_ms, played.fog_send_ms)

    def _servers(self) -> tuple[float, float, float, float, float]:
        """When each server is next free (s): edge, uplink, cloud, fog, fog -> cloud link."""
        return self._edge_free_s, self._link_free_s, self._cloud_free_s, self._fog_free_s, self._fog_link_free_s

    def true_state(self, index: int, queue: int = 0, uplink_backlog_ms: float = 0.0) -> SystemState:
        """The true conditions when frame ``index`` arrives, with ``queue`` frames ahead of it at the
        edge and the uplink busy ``uplink_backlog_ms`` longer (in the RTT, as the monitors see it)."""
        t = index / self.config.fps
        bandwidth, rtt, load = self.trace.at(t)
        return SystemState(bandwidth_mbps=bandwidth, rtt_ms=rtt + uplink_backlog_ms, edge_load=load,
                           edge_queue_length=queue,
                           frame_complexity=float(self.table.complexity[self.rows[index]]), time_s=t,
                           **self._fog_link)

    def unqueued_latency_ms(self, partition: Partition, index: int) -> float:
        """Frame ``index``'s latency with ``partition`` were every server idle when it arrives: what
        no policy can beat with that partition. Each server is FIFO and its finish time never
        falls when its start is later (the work is fixed and the rates are positive or zero), so
        waiting for a busy server, or for better conditions, only ever ends later."""
        row = int(self.rows[index])
        self._payloads_at(row)
        return self._play(partition, index / self.config.fps, row, (0.0,) * 5).latency_ms

    def true_model_for(self, index: int) -> CostModel:
        """The true cost model with frame ``index``'s own payload sizes."""
        self._payloads_at(int(self.rows[index]))
        return self.true_model

    def _payloads_at(self, row: int) -> None:
        if self.payloads.row != row:
            self.payloads.row = row
            self.true_model.tensor_bytes.cache_clear()  # its per-tensor bytes were another frame's

    def _play(self, partition: Partition, t: float, row: int, free_s: tuple,
              fleet_cloud: FleetCloudState = IDLE) -> _Played:
        """One frame arriving at ``t`` (video row ``row``) through servers next free at ``free_s``
        (:meth:`_servers`) and, with a fleet, the shared cloud ``fleet_cloud``, under the true
        conditions. The true model's payloads must be at ``row``."""
        if partition.fog_until_layer is not None and not self._has_fog:
            raise ValueError("three-tier partitions need a three-tier world (a fog profile); this one has two tiers")
        edge_free_s, link_free_s, cloud_free_s, fog_free_s, fog_link_free_s = free_s
        plan = self.true_model.placement(partition)  # cut, idle-edge ms, fog and cloud ms, frame costs in
        trace = self.trace
        edge_start = max(t, edge_free_s)
        edge_done = trace.time_to_complete(self._edge_rate, edge_start, plan.edge_ms / 1e3)
        edge_free_s = edge_done
        fog_ms = fog_send_ms = fog_rtt_ms = 0.0
        if plan.local:
            payload, send_s, rtt_ms, finish, vehicle_done = 0.0, 0.0, 0.0, edge_done, edge_done
            cloud_ms, sent_s = plan.cloud_ms, math.nan
        else:
            payload = float(self.table.payload_bytes(row, plan.cut, partition.codec))
            link_start, sent_s = max(edge_done, link_free_s), edge_done
            link_done = trace.time_to_complete(self._link_bytes_per_s, link_start, payload)
            link_free_s = vehicle_done = link_done
            send_s = link_done - link_start
            rtt_ms = trace.at(link_start)[1]
            arrival_s = link_done + rtt_ms / 2e3  # at the next tier
            fog_finishes = self._has_fog and plan.handover is None
            fog_computes = self._has_fog and plan.handover is not plan.cut
            cloud_ms = plan.cloud_ms
            if self._has_fog:
                fog_ms = plan.fog_ms
                fog_free_s = max(arrival_s, fog_free_s) + fog_ms / 1e3
            if self._has_fog and not fog_finishes:
                if plan.handover is plan.cut:  # forwarded as it is
                    fog_payload = payload
                else:
                    fog_payload = float(self.table.payload_bytes(row, plan.handover, self.true_model.fog_codec))
                fog_send_ms = send_ms(fog_payload, self.config.fog_cloud_bandwidth_mbps)
                fog_rtt_ms = self.config.fog_cloud_rtt_ms
                fog_link_free_s = max(fog_free_s, fog_link_free_s) + fog_send_ms / 1e3
                arrival_s = fog_link_free_s + fog_rtt_ms / 2e3  # at the cloud
            if fog_finishes:
                finish = fog_free_s + rtt_ms / 2e3
            elif self.config.fleet is None:
                cloud_free_s = max(arrival_s, cloud_free_s) + cloud_ms / 1e3
                finish = cloud_free_s + fog_rtt_ms / 2e3 + rtt_ms / 2e3
            else:  # batched with the peers' frames of the same partition
                image = plan.cut.after_layer == INPUT and not fog_computes
                done_s, fleet_cloud, _ = fleet_serve(self.config.fleet, fleet_cloud, arrival_s, (partition,),
                                                     cloud_ms, image)
                cloud_free_s = fleet_cloud.free_s
                finish = done_s + fog_rtt_ms / 2e3 + rtt_ms / 2e3
        edge_ms = (edge_done - edge_start) * 1e3
        latency_ms = (finish - t) * 1e3 + self.config.frame_overhead_ms
        if self._has_fog:  # as the cost model: the edge idles through both hops and the fog
            wait_ms = rtt_ms + fog_ms + fog_send_ms + fog_rtt_ms + cloud_ms
            service_ms = edge_ms + send_s * 1e3 + wait_ms
        else:  # two tiers: the very sums of before, bit for bit
            wait_ms = rtt_ms + cloud_ms
            service_ms = edge_ms + send_s * 1e3 + rtt_ms + cloud_ms
        service_ms += self.config.frame_overhead_ms
        energy = self.true_model.power.energy_j(edge_ms, send_s * 1e3, wait_ms)
        return _Played(latency_ms, service_ms, edge_ms, send_s * 1e3, cloud_ms, payload, energy, fog_ms,
                       fog_send_ms, vehicle_done, (edge_free_s, link_free_s, cloud_free_s, fog_free_s, fog_link_free_s),
                       fleet_cloud, sent_s)

    def run(self, policy: Policy, on_frames: Callable[[int], None] | None = None) -> SimulationLog:
        """Let ``policy`` decide every frame; ``on_frames(k)`` reports progress (k frames passed)."""
        policy.reset()
        passed = 0
        while self.pending is not None:
            frame = self.pending
            state = frame.true_state if policy.needs_true_state else frame.estimated_state
            start = time.perf_counter()
            partition = policy.decide(state)
            decide_s = time.perf_counter() - start
            self.step(partition, decide_s)
            if on_frames:
                advanced = self._next - passed
                passed = self._next
                on_frames(advanced)
        return self.log
