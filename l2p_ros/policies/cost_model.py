"""Predicted latency and energy of any partition, from measured (or labelled derived) profiles.

For a frame cut by a partition, with the monitors' state:

- ``edge_ms``: edge-profile layer medians of the edge layers, stretched by the edge load: other
  work holding a fraction ``u`` of the edge leaves this inference ``1 - u`` of it (processor
  sharing), so it takes ``1 / (1 - u)`` times as long. ``u`` is capped (``max_edge_load``) so a
  saturated edge is very slow but not infinitely so. Profiles are measured on an idle machine.
- ``queue_ms``: the frame waits for the ``edge_queue_length`` frames ahead of it at the edge,
  each taken to need this partition's ``edge_ms`` (as they do when the policy keeps its choice
  while the queue drains). This is why offloading pays off as a queue builds: the edge part of
  every waiting frame shrinks too. It delays the frame but costs it no energy (the edge is busy
  with the other frames, whose energy they carry).
- ``send_ms``: ``payload_bytes * 8 / bandwidth``: the link is busy this long (a pipeline stage).
- ``rtt_ms``: paid once per offloaded frame (payload out, detections back); it delays the frame
  but does not occupy the link, so it counts in latency and not in throughput.
- ``link_queue_ms``: with ``state.link_buffer_ms > 0`` only, the wait in the uplink's queue that
  the option's own frames would build once chosen (:func:`own_link_queue_ms`), capped where the
  state knows the link's queue (``link_queue_now_ms``) at what of it is left when the option's
  head is done (``link_queue_now_ms - edge_ms``); the state's RTT is
  then the link's without a queue. Otherwise 0, and whatever queue the current choice built is in
  the monitor's RTT, charged to every option alike.
- ``cloud_ms``: cloud-profile medians of the remaining layers.
- Edge only sends nothing: the edge post-processes locally, so send,
  RTT and cloud are 0.

Three tiers (``fog_profile`` given): the deployment is edge -> fog -> cloud, and every offloaded
frame crosses both links, as in the live pipeline (the fog answers the edge's probes and passes a
frame it has nothing to run on unchanged). A partition ``(k, j)`` runs 0..k on the edge, k+1..j on
the fog (``fog_ms``, fog-profile medians), then ``fog_send_ms`` puts the crossing at j, encoded
with ``fog_codec`` (the fog node's parameter), on the fog -> cloud link and ``fog_rtt_ms`` is that
link's RTT; the cloud runs the rest and post-processes. A two-tier partition ``k`` on a fog
deployment is ``(k, k)``: the fog forwards the edge's payload as it is. A partition whose fog
range reaches the last layer (``j = L - 1``) is finished on the fog, which post-processes and
publishes the detections itself: nothing crosses the fog -> cloud link and the cloud is idle.

Frame costs (``frame_costs``, a measured :class:`~l2p_ros.measure.frame_costs.FrameCosts`; None:
none): what the layers and the link leave out, charged as the simulator charges them. The edge
measures every frame's complexity and decides (``edge_ms``, every partition, edge only included)
and encodes what it sends (``edge_ms``); the tier that next computes decodes it (``cloud_ms``, or
``fog_ms`` where the fog computes); in three tiers the fog encodes its handover with ``fog_codec``
(``fog_ms``) and the cloud decodes it (``cloud_ms``). Encoding counts as edge work, so it is
stretched by the edge's load like the layers.

Energy: ``edge_energy_j`` from the edge power model (compute, transmit, idle while waiting for the
answer). ``offload_energy_j`` is what the fog (compute and transmit) and the cloud (compute) spend
on the frame; their idle power is not charged, as they are shared. ``total_energy_j`` adds both.

Payload bytes come from ``payload_bytes_fn(cut, codec, complexity)`` for chain cuts; by default
the edge profile's bytes for its one profiled frame (complexity ignored); a
``payload_fit.PayloadFit`` fits them on real frames. A payload function may also offer
``payload_bytes_many(after_layers, codec, complexity)`` (an array of chain cut indices in, their
bytes out), as a PayloadFit does: then the per-frame searches ask for all their cuts in one numpy
call instead of one Python call each. Every crossing tensor is
encoded as its own record, so payload bytes add up over tensors, and per-tensor bytes follow
exactly from the chain cuts (:meth:`CostModel.tensor_bytes`); DAG cuts and the DADS min-cut use those.

:class:`PartitionTable` predicts a fixed list of partitions at once with numpy, for the policies
that search one every frame; :meth:`CostModel.predict` is the one-partition reference it equals.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from functools import cached_property
from typing import Callable, Sequence

import numpy as np

from l2p_ros.measure.frame_costs import FrameCosts
from l2p_ros.measure.profile import Profile, ProfileError
from l2p_ros.model.graph import INPUT, Cut, LayerGraph
from l2p_ros.policies.cloud_batching import CloudShare
from l2p_ros.policies.energy import CLOUD_POWER, FOG_POWER, PowerModel
from l2p_ros.policies.types import DEFAULT_TENSOR_CODEC, Partition, SystemState

PayloadBytesFn = Callable[[Cut, str, float], float]  # (chain cut, codec, complexity 0..1) -> bytes


@dataclass(frozen=True)
class Prediction:
    """One frame's predicted stage times (ms), bytes on the wire and energy (J).

    Fields are floats for one partition (:meth:`CostModel.predict`), or arrays with one entry per
    partition (:meth:`PartitionTable.predict`). The ``fog_*`` fields are 0 in two tiers.
    """

    edge_ms: float
    send_ms: float
    rtt_ms: float
    cloud_ms: float
    payload_bytes: float
    edge_energy_j: float
    queue_ms: float = 0.0
    fog_ms: float = 0.0
    fog_send_ms: float = 0.0
    fog_rtt_ms: float = 0.0
    fog_payload_bytes: float = 0.0
    offload_energy_j: float = 0.0
    link_queue_ms: float = 0.0

    @property
    def transfer_ms(self):
        return self.link_queue_ms + self.send_ms + self.rtt_ms + self.fog_send_ms + self.fog_rtt_ms

    @property
    def total_ms(self):
        """Latency from the frame's arrival at the edge to its detections."""
        return self.queue_ms + self.edge_ms + self.transfer_ms + self.fog_ms + self.cloud_ms

    @property
    def bottleneck_ms(self):
        """The slowest pipeline stage: frames can be processed no faster than one per this."""
        return np.maximum.reduce([self.edge_ms, self.send_ms, self.fog_ms, self.fog_send_ms, self.cloud_ms])

    @property
    def total_energy_j(self):
        """Edge, fog and cloud energy of the frame."""
        return self.edge_energy_j + self.offload_energy_j


def send_ms(payload_bytes: float, bandwidth_mbps: float) -> float:
    """Milliseconds to put ``payload_bytes`` on a ``bandwidth_mbps`` link (inf without a link)."""
    if payload_bytes <= 0:
        return 0.0
    return payload_bytes * 8 / (bandwidth_mbps * 1e3) if bandwidth_mbps > 0 else float("inf")


def send_ms_array(payload_bytes: np.ndarray, bandwidth_mbps: float) -> np.ndarray:
    """:func:`send_ms` of every entry."""
    if bandwidth_mbps > 0:
        return np.where(payload_bytes > 0, payload_bytes * (8 / (bandwidth_mbps * 1e3)), 0.0)
    return np.where(payload_bytes > 0, np.inf, 0.0)


def own_link_queue_ms(sending_ms, edge_ms, frame_interval_ms: float, buffer_ms: float, arrival_scv: float = 1.0):
    """The mean wait in the uplink's queue of a stream of frames that each take ``sending_ms`` on
    the link, once the option is chosen for every frame (floats or arrays alike).

    Frames reach the link one per ``max(frame_interval_ms, edge_ms)`` (an edge slower than the
    camera takes the latest frame and drops the rest, so it never queues them). Below a full link
    (utilisation ``rho < 1``) the wait is Kingman's for G/D/1, ``rho / (1 - rho) * arrival_scv / 2
    * sending_ms``, where ``arrival_scv`` is the squared coefficient of variation of the time
    between frames reaching the link (:class:`~l2p_ros.monitoring.link_arrivals.LinkArrivals`
    measures it). At its default of 1 (frames as if they came at random) that is M/D/1's wait,
    exactly; a camera's regular frames wait less, so M/D/1 errs long at moderate load, while near a
    full link the monitor's probes and the headers, which ``rho`` leaves out, make a queue anyway.
    At ``rho >= 1`` the queue grows until the link's buffer is full and frames wait ``buffer_ms``;
    the wait never exceeds it. Nothing is sent, nothing waits.

    Why not the monitor's RTT: it measures the queue the *current* choice builds. Sending the image
    over a 1 Mbit/s link it fills took it from 25-40 ms to 90-380 ms on the testbed, and charging
    that to a bottleneck of a third of the bytes, whose frames would let the queue drain, made the
    policies keep the image (docs/testbed.md, experiment 8).
    """
    sending_ms = np.asarray(sending_ms, dtype=float)
    interval_ms = np.maximum(frame_interval_ms, np.asarray(edge_ms, dtype=float))
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = np.where(interval_ms > 0, sending_ms / interval_ms, np.inf)
        below_full = rho / (1.0 - rho) * (arrival_scv / 2.0) * sending_ms
    wait_ms = np.where(rho < 1.0, below_full, buffer_ms)
    wait_ms = np.where(sending_ms > 0, np.minimum(wait_ms, buffer_ms), 0.0)
    return float(wait_ms) if wait_ms.ndim == 0 else wait_ms


@dataclass(frozen=True)
class Placement:
    """What a partition fixes whatever the state: where it is cut and its compute times (ms).

    ``cut``: edge -> next tier. ``handover``: where the cloud takes over in three tiers (``cut``
    itself when the fog only forwards); None in two tiers, for edge only and where the fog
    finishes the network. ``edge_ms`` is on an idle edge. ``local``: edge only, nothing is sent.
    With frame costs the times include them (:class:`CostModel`): encoding in the sender's,
    decoding in the receiver's.
    """

    cut: Cut
    handover: Cut | None
    edge_ms: float
    fog_ms: float
    cloud_ms: float
    local: bool


class CostModel:
    """Predicts any partition of ``graph`` from an edge and a cloud profile (and a fog profile for
    three tiers, whose crossing at the fog is encoded with ``fog_codec``).

    ``bottlenecks``: learned bottleneck codecs, each usable at one chain cut only, as
    ``{codec name: (cut after layer, payload bytes per frame)}`` (the bytes its file records from
    its held-out frames; None: ask ``payload_bytes_fn``, as the simulator's truth does for each
    frame's own bytes); :meth:`bottleneck_partitions` offers them to the policies.

    ``cloud_share``: the cloud serves a batching fleet (:mod:`l2p_ros.policies.cloud_batching`): a
    partition's cloud time is its expected time there with the other vehicles' frames, infinite
    where the cloud cannot keep up with the fleet sending it. DADS weighs the cloud's layers at
    their one-frame times in its cut, and compares its choice with the others by this prediction.

    ``frame_costs``: measured complexity, decision, encoding and decoding times, charged where they
    run (module docstring); None charges none.
    """

    def __init__(self, graph: LayerGraph, edge_profile: Profile, cloud_profile: Profile,
                 power: PowerModel = PowerModel(), payload_bytes_fn: PayloadBytesFn | None = None,
                 max_edge_load: float = 0.95, *, cloud_power: PowerModel = CLOUD_POWER,
                 fog_profile: Profile | None = None, fog_power: PowerModel = FOG_POWER,
                 fog_codec: str = DEFAULT_TENSOR_CODEC, bottlenecks: dict[str, tuple[int, float]] | None = None,
                 cloud_share: CloudShare | None = None, frame_costs: FrameCosts | None = None):
        profiles = {"edge": edge_profile, "cloud": cloud_profile, "fog": fog_profile}
        for role, profile in profiles.items():
            if profile is not None and len(profile.layers) != graph.num_layers:
                raise ProfileError(f"{role} profile has {len(profile.layers)} layers, "
                                   f"the network {graph.num_layers}")
        self.graph = graph
        self.edge_profile = edge_profile
        self.cloud_profile = cloud_profile
        self.fog_profile = fog_profile
        self.power = power
        self.cloud_power = cloud_power
        self.fog_power = fog_power
        self.fog_codec = fog_codec
        self.bottlenecks = dict(bottlenecks or {})
        for name, (after_layer, payload) in self.bottlenecks.items():
            if not 0 <= after_layer < graph.num_layers - 1 or not (payload is None or payload > 0):
                raise ValueError(f"bottleneck {name}: cut {after_layer} must be inside the network and its "
                                 f"payload > 0 bytes, got {payload}")
        self.max_edge_load = max_edge_load
        self.cloud_share = cloud_share
        self.frame_costs = frame_costs
        self.edge_layer_ms = np.array([l.latency_ms_median for l in edge_profile.layers])
        self.cloud_layer_ms = np.array([l.latency_ms_median for l in cloud_profile.layers])
        self.fog_layer_ms = None if fog_profile is None else np.array([l.latency_ms_median for l in fog_profile.layers])
        self.payload_bytes_fn = payload_bytes_fn or self.profiled_payload_bytes
        self._payload_bytes_many = getattr(payload_bytes_fn, "payload_bytes_many", None)
        self._profiled_bytes = {cut.after_layer: cut.payload_bytes for cut in edge_profile.cuts}
        self.chain_cuts = self.graph.chain_cuts()  # index k + 1 is the cut after layer k
        # Complexity is a float; bound the caches rather than grow them with every frame.
        self.tensor_bytes = functools.lru_cache(maxsize=64)(self._tensor_bytes)
        self.placement = functools.lru_cache(maxsize=4096)(self._placement)

    @property
    def num_layers(self) -> int:
        return self.graph.num_layers

    @property
    def has_fog(self) -> bool:
        return self.fog_layer_ms is not None

    def chain_cut(self, after_layer: int) -> Cut:
        return self.chain_cuts[after_layer + 1]

    def profiled_payload_bytes(self, cut: Cut, codec: str, complexity: float) -> float:
        """The edge profile's bytes for its one profiled frame; ``complexity`` is not used."""
        sizes = self._profiled_bytes.get(cut.after_layer)
        if sizes is None:
            raise ProfileError(f"profile has no cut after layer {cut.after_layer}")
        if codec not in sizes:
            raise ProfileError(f"profile has no payload size for codec {codec} at cut {cut.after_layer}; "
                               f"it has {sorted(sizes)}")
        return float(sizes[codec])

    @cached_property
    def _tensors_from_chain(self) -> np.ndarray:
        """``T`` with ``tensor bytes = T @ chain-cut payloads`` (cuts 0..last).

        Chain cut k carries tensor k and the tensors of earlier layers still needed later, so
        ``payload = M @ tensor bytes`` with ``M`` unit lower triangular (``M[k, t] = 1`` when t
        crosses cut k); its inverse has integer entries, so ``T`` is exact.
        """
        n = self.num_layers
        crossing = np.eye(n)
        for k in range(n):
            cut = self.chain_cut(k)
            if INPUT in cut.crossing:
                raise ProfileError(f"the image crosses cut {k}: per-tensor sizes need it read by layer 0 only")
            crossing[k, list(cut.crossing)] = 1.0
        return np.rint(np.linalg.inv(crossing))

    def _tensor_bytes(self, codec: str, complexity: float) -> np.ndarray:
        """Bytes of each layer's output (index = layer) on the wire under ``codec``."""
        sizes = self._tensors_from_chain @ self.chain_payload_bytes(np.arange(self.num_layers), codec, complexity)
        negative = np.flatnonzero(sizes < -1e-6)  # below round-off of fitted (fractional) bytes
        if negative.size:
            raise ProfileError(f"{codec}: cut {negative[0]} sends fewer bytes than its earlier tensors alone; "
                               "payload sizes must add up over the crossing tensors")
        sizes = np.maximum(sizes, 0.0)
        sizes.flags.writeable = False  # shared through the cache
        return sizes

    def bottleneck_partitions(self) -> list[Partition]:
        """One two-tier partition per learned bottleneck, at its own cut."""
        return [Partition.chain(after_layer, name) for name, (after_layer, _) in sorted(self.bottlenecks.items())]

    def _bottleneck_bytes(self, after_layers, codec: str) -> float | None:
        """A bottleneck's fixed bytes per frame (None: the payload function's), checking the cut."""
        cut, payload = self.bottlenecks[codec]
        if np.any(np.asarray(after_layers) != cut):
            raise ValueError(f"codec {codec} works at cut {cut} only, not {sorted(set(np.ravel(after_layers)) - {cut})}")
        return payload

    def chain_payload_bytes(self, after_layers: np.ndarray, codec: str, complexity: float) -> np.ndarray:
        """Payload bytes of the chain cuts after ``after_layers`` (an int array)."""
        if codec in self.bottlenecks:
            fixed = self._bottleneck_bytes(after_layers, codec)
            if fixed is not None:
                return np.full(len(after_layers), fixed)
            return np.array([self.payload_bytes_fn(self.chain_cut(k), codec, complexity) for k in after_layers])
        if self._payload_bytes_many is not None:
            return np.asarray(self._payload_bytes_many(after_layers, codec, complexity), dtype=float)
        return np.array([self.payload_bytes_fn(self.chain_cut(k), codec, complexity) for k in after_layers], dtype=float)

    def payload_bytes(self, cut: Cut, codec: str, complexity: float) -> float:
        if codec in self.bottlenecks:
            if cut.after_layer is None:
                raise ValueError(f"codec {codec} works at cut {self.bottlenecks[codec][0]} only, not at a DAG cut")
            fixed = self._bottleneck_bytes([cut.after_layer], codec)
            if fixed is not None:
                return fixed
        if cut.after_layer is not None:
            return self.payload_bytes_fn(cut, codec, complexity)
        return float(self.tensor_bytes(codec, complexity)[list(cut.crossing)].sum())

    @property
    def per_frame_edge_ms(self) -> float:
        """The edge's work on every frame besides the layers and encoding (complexity, decision)."""
        return 0.0 if self.frame_costs is None else self.frame_costs.edge_per_frame_ms

    def edge_node_ms(self, partition: Partition) -> float:
        """What the edge node itself spends on a frame of ``partition`` on an idle edge: its layers
        and encoding (the frame's complexity and decision run in the partitioner)."""
        return self.placement(partition).edge_ms - self.per_frame_edge_ms

    def codec_ms(self, codec: str, cut: Cut) -> tuple[float, float]:
        """(encoding ms on the sending tier, decoding ms on the receiving one) of a frame's
        crossing at ``cut`` under ``codec``; (0, 0) without frame costs. Tensor codecs' times
        follow the crossing tensors' fp32 size."""
        if self.frame_costs is None:
            return 0.0, 0.0
        fp32_bytes = self.crossing_fp32_bytes(cut)
        return self.frame_costs.encode_ms(codec, fp32_bytes), self.frame_costs.decode_ms(codec, fp32_bytes)

    def crossing_fp32_bytes(self, cut: Cut) -> float:
        """fp32 bytes of the layer outputs crossing ``cut`` (0 for the image)."""
        return float(sum(self.edge_profile.layers[i].output_bytes for i in cut.crossing if i != INPUT))

    def edge_slowdown(self, edge_load: float) -> float:
        """How many times longer the edge takes at this load than when profiled (idle)."""
        return 1.0 / (1.0 - min(edge_load, self.max_edge_load))

    def _placement(self, partition: Partition) -> Placement:
        if partition.fog_until_layer is not None and not self.has_fog:
            raise ValueError("three-tier partitions need a fog profile (CostModel(..., fog_profile=...))")
        if partition.cut_after_layer is not None:
            cut = self.chain_cut(partition.cut_after_layer)
        else:
            cut = partition.to_cut(self.graph)
        on_edge = np.zeros(self.num_layers, dtype=bool)
        on_edge[list(cut.edge_layers)] = True
        edge_ms = float(self.edge_layer_ms[on_edge].sum()) + self.per_frame_edge_ms
        if on_edge.all():
            return Placement(cut, None, edge_ms, 0.0, 0.0, True)
        encode_ms, decode_ms = self.codec_ms(partition.codec, cut)
        edge_ms += encode_ms
        if not self.has_fog:
            return Placement(cut, None, edge_ms, 0.0, self._at_cloud(
                float(self.cloud_layer_ms[~on_edge].sum()) + decode_ms, cut.after_layer == INPUT), False)
        handover = cut if partition.fog_until_layer is None else self.chain_cut(partition.fog_until_layer)
        before_cloud = np.zeros(self.num_layers, dtype=bool)
        before_cloud[list(handover.edge_layers)] = True
        fog_ms = float(self.fog_layer_ms[before_cloud & ~on_edge].sum())
        if before_cloud.all():  # the fog finishes: no handover to the cloud
            return Placement(cut, None, edge_ms, fog_ms + decode_ms, 0.0, False)
        cloud_ms = float(self.cloud_layer_ms[~before_cloud].sum())
        if handover is cut:  # the fog forwards the edge's payload as it is: the cloud decodes it
            cloud_ms += decode_ms
        else:  # the fog decodes the edge's payload, computes, and encodes its handover for the cloud
            fog_encode_ms, fog_decode_ms = self.codec_ms(self.fog_codec, handover)
            fog_ms += decode_ms + fog_encode_ms
            cloud_ms += fog_decode_ms
        return Placement(cut, handover, edge_ms, fog_ms, self._at_cloud(cloud_ms, handover.after_layer == INPUT),
                         False)

    def _at_cloud(self, single_ms: float, image: bool) -> float:
        """The cloud's time for a frame: its layers' (one frame alone), or with a fleet sharing it."""
        return single_ms if self.cloud_share is None else self.cloud_share.frame_ms(single_ms, image)

    def predict(self, partition: Partition, state: SystemState) -> Prediction:
        place = self.placement(partition)
        edge_ms = place.edge_ms * self.edge_slowdown(state.edge_load)
        queue_ms = state.edge_queue_length * edge_ms
        if place.local:
            return Prediction(edge_ms, 0.0, 0.0, 0.0, 0.0, self.power.energy_j(edge_ms, 0.0, 0.0), queue_ms=queue_ms)
        payload = self.payload_bytes(place.cut, partition.codec, state.frame_complexity)
        sending_ms = send_ms(payload, state.bandwidth_mbps)
        fog_payload = fog_sending_ms = fog_rtt_ms = 0.0
        if place.handover is place.cut:  # the fog forwards the payload as it is
            fog_payload = payload
        elif place.handover is not None:
            fog_payload = self.payload_bytes(place.handover, self.fog_codec, state.frame_complexity)
        if place.handover is not None:
            fog_sending_ms = send_ms(fog_payload, state.fog_cloud_bandwidth_mbps)
            fog_rtt_ms = state.fog_cloud_rtt_ms
        link_queue_ms = self.link_queue_ms(sending_ms, edge_ms, state)
        wait_ms = link_queue_ms + state.rtt_ms + place.fog_ms + fog_sending_ms + fog_rtt_ms + place.cloud_ms
        return Prediction(
            edge_ms, sending_ms, state.rtt_ms, place.cloud_ms, payload,
            self.power.energy_j(edge_ms, sending_ms, wait_ms), queue_ms, place.fog_ms, fog_sending_ms,
            fog_rtt_ms, fog_payload,
            self.offload_energy_j(place.fog_ms, fog_sending_ms, place.cloud_ms), link_queue_ms)

    @staticmethod
    def link_queue_ms(sending_ms, edge_ms, state: SystemState):
        """:func:`own_link_queue_ms` where the state asks for it (``link_buffer_ms > 0``), at most
        what is left of ``state.link_queue_now_ms`` once the option's head is done; else 0."""
        if state.link_buffer_ms <= 0:
            return 0.0 if np.ndim(sending_ms) == 0 else np.zeros(np.shape(sending_ms))
        own_ms = own_link_queue_ms(sending_ms, edge_ms, state.frame_interval_ms, state.link_buffer_ms,
                                   state.link_arrival_scv)
        if state.link_queue_now_ms is None:
            return own_ms
        # No option waits longer than the link's queue when it gets there (the queue once the edge is
        # free, less its own head): without this cap the image over a link it would fill is charged
        # the full buffer even while the link is empty (monitoring/link_backlog.py).
        now_ms = np.maximum(state.link_queue_now_ms - np.asarray(edge_ms, dtype=float), 0.0)
        capped_ms = np.minimum(own_ms, now_ms)
        return float(capped_ms) if np.ndim(capped_ms) == 0 else capped_ms

    def offload_energy_j(self, fog_ms, fog_send_ms, cloud_ms):
        """Joules the fog (computing, sending) and the cloud (computing) spend on a frame."""
        return self.fog_power.energy_j(fog_ms, fog_send_ms, 0.0) + self.cloud_power.energy_j(cloud_ms, 0.0, 0.0)

    def table(self, partitions: Sequence[Partition]) -> PartitionTable:
        return PartitionTable(self, partitions)


class PartitionTable:
    """:meth:`CostModel.predict` of a fixed list of partitions at once, with numpy.

    What a policy that searches the same candidates every frame uses: the state-independent
    parts (placements, cuts) are resolved once, and a state costs one payload look-up per codec
    (per partition when the payload function has no ``payload_bytes_many``) plus a few array
    operations.
    """

    def __init__(self, model: CostModel, partitions: Sequence[Partition]):
        self.model = model
        self.partitions = tuple(partitions)
        places = [model.placement(p) for p in self.partitions]
        self._edge_ms = np.array([p.edge_ms for p in places])
        self._fog_ms = np.array([p.fog_ms for p in places])
        self._cloud_ms = np.array([p.cloud_ms for p in places])
        self._offloaded = np.array([not p.local for p in places])
        self._two_hops = np.array([p.handover is not None for p in places])
        # Payload look-ups, grouped so that chain cuts of one codec are asked for in one call.
        first_hop = [(i, p.cut, part.codec) for i, (p, part) in enumerate(zip(places, self.partitions)) if not p.local]
        self._chain_hops = _by_codec((i, cut.after_layer, codec) for i, cut, codec in first_hop
                                     if cut.after_layer is not None)
        self._dag_hops = [(i, cut, codec) for i, cut, codec in first_hop if cut.after_layer is None]
        self._forwarded = np.array([i for i, p in enumerate(places) if p.handover is p.cut], dtype=int)
        self._fog_hops = _by_codec((i, p.handover.after_layer, model.fog_codec) for i, p in enumerate(places)
                                   if p.handover is not None and p.handover is not p.cut)

    def __len__(self) -> int:
        return len(self.partitions)

    def predict(self, state: SystemState) -> Prediction:
        """One :class:`Prediction` whose fields are arrays in the order of ``partitions``."""
        model = self.model
        complexity = state.frame_complexity
        edge_ms = self._edge_ms * model.edge_slowdown(state.edge_load)
        payload = np.zeros(len(self))
        for codec, rows, after_layers in self._chain_hops:
            payload[rows] = model.chain_payload_bytes(after_layers, codec, complexity)
        for i, cut, codec in self._dag_hops:
            payload[i] = model.payload_bytes(cut, codec, complexity)
        fog_payload = np.zeros(len(self))
        fog_payload[self._forwarded] = payload[self._forwarded]
        for codec, rows, after_layers in self._fog_hops:
            fog_payload[rows] = model.chain_payload_bytes(after_layers, codec, complexity)
        sending_ms = send_ms_array(payload, state.bandwidth_mbps)
        rtt_ms = np.where(self._offloaded, state.rtt_ms, 0.0)
        fog_sending_ms = send_ms_array(fog_payload, state.fog_cloud_bandwidth_mbps)  # 0 where one hop
        fog_rtt_ms = np.where(self._two_hops, state.fog_cloud_rtt_ms, 0.0)
        link_queue_ms = model.link_queue_ms(sending_ms, edge_ms, state)
        wait_ms = link_queue_ms + rtt_ms + self._fog_ms + fog_sending_ms + fog_rtt_ms + self._cloud_ms
        return Prediction(
            edge_ms, sending_ms, rtt_ms, self._cloud_ms, payload, model.power.energy_j(edge_ms, sending_ms, wait_ms),
            state.edge_queue_length * edge_ms, self._fog_ms, fog_sending_ms, fog_rtt_ms, fog_payload,
            model.offload_energy_j(self._fog_ms, fog_sending_ms, self._cloud_ms), link_queue_ms)


def _by_codec(lookups) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(row, chain cut index, codec)`` triples grouped as ``(codec, rows, cut indices)``."""
    groups: dict[str, list[tuple[int, int]]] = {}
    for row, after_layer, codec in lookups:
        groups.setdefault(codec, []).append((row, after_layer))
    return [(codec, np.array([r for r, _ in pairs]), np.array([k for _, k in pairs])) for codec, pairs in groups.items()]
