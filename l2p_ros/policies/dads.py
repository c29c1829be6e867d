"""DNN Surgery (DADS, Hu et al., INFOCOM 2019) on the real layer DAG, with its holes fixed.

A placement puts a set ``S`` of DAG nodes on the edge and the rest in the cloud. Its three
pipeline stages, in milliseconds: ``E`` (edge compute of ``S``), ``T`` (sending every output
produced in ``S`` and read outside it, once per tensor however many readers), ``C`` (cloud
compute of the rest). ``S`` must contain the input and be closed under predecessors.

- Light load (DSL): minimise ``E + T + C`` per frame. An s-t min cut: ``s -> v`` costs v's cloud
  time (cut when v runs in the cloud), ``v -> t`` its edge time, and ``v -> v' -> readers`` with
  ``v -> v'`` costing the send time and ``v' -> reader`` infinite, so a tensor read by several
  cloud layers is paid once. Two holes of the published construction are closed with infinite
  capacities: ``s -> input`` pins the image to the edge, and ``reader -> v`` for every data edge
  makes a cut from cloud back to edge infinitely expensive, so the edge side is always closed
  under predecessors (a layer never runs on the edge without its inputs).
- Heavy load (DSH): minimise the slowest stage ``max(E, T, C)`` for throughput. The paper proves
  this NP-hard in general and gives a 3-approximation (the DSL placement alone is one, since
  ``max <= sum <= 3 max``). YOLO graphs are nearly chains: their closed edge sets are few
  (hundreds), so this module enumerates them once per graph and takes the exact optimum;
  :class:`ClosedSets` refuses a graph with more than ``limit`` of them.
- :class:`DadsPolicy` follows DADS's dynamic algorithm: DSL, and DSH when the DSL placement's
  slowest stage cannot keep up with the frame interval. Per frame it scores every closed set at
  once with numpy (``method="closed-sets"``, the default: tens of microseconds on YOLOv3, where
  the networkx min cut takes milliseconds); the min cut (``method="min-cut"``) stays as the
  reference the fast path is tested against, and for DAGs with too many closed sets.
- For latency the edge cost of a layer is multiplied by ``1 + edge_queue_length``: the cost
  model charges the frames queued ahead this placement's edge time each, so the min cut stays
  the exact minimum of the cost model's latency.
- Frame costs (when the cost model has them: complexity and decision on every frame, encoding
  on the edge, decoding at the cloud) are charged per closed set as the cost model charges them;
  in the min cut a tensor codec's time per fp32 byte joins each tensor's sending cost and its
  fixed part the RTT, so the min cut stays exact (:meth:`DadsPolicy.stage_costs`).

On the YOLO graph the sink node ``output`` (post-processing) is a zero-cost node whose cloud cost
is the RTT: on the edge side it forces every layer there (edge only: nothing is sent, no RTT);
on the cloud side the yolo outputs computed on the edge are sent and the frame pays one RTT.

Learned bottlenecks (the cost model's, each at its own cut with its own bytes, which no per-tensor
cost expresses) join the rule as options beside the surgery's placements: the least latency of
all, and where that cannot keep up with the frames, the least slowest stage of all.

With ``state.link_buffer_ms`` each offloaded placement also pays the queue its own frames would
leave on the uplink (:func:`~l2p_ros.policies.cost_model.own_link_queue_ms`); that is no sum over
tensors, so both methods then search the closed sets.

DADS places on two tiers. In a three-tier deployment (the cost model has a fog) its placements
reach the cloud through the fog, which forwards them: the crossing bytes go over both links and
the frame pays both RTTs (for throughput, the slower link is the sending stage), as the cost
model predicts a forwarded partition.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Hashable, Mapping

import networkx as nx
import numpy as np

from l2p_ros.model.graph import INPUT, OUTPUT
from l2p_ros.policies.cost_model import CostModel, send_ms_array
from l2p_ros.policies.types import DEFAULT_IMAGE_CODEC, DEFAULT_TENSOR_CODEC, Partition, Policy, SystemState

_EDGE, _CLOUD, _SENT = "dads:edge", "dads:cloud", "dads:sent"  # min-cut terminals; aux-node tag
# networkx's max-flow is only reliable on integer capacities: with float milliseconds its residual
# graph keeps round-off crumbs and the min cut comes out wrong (measured on YOLOv3-tiny: image
# offload at 1380 ms chosen over edge only at 774 ms). Capacities are whole nanoseconds.
_TICKS_PER_MS = 1_000_000


def _ticks(ms: float) -> float:
    return round(ms * _TICKS_PER_MS) if math.isfinite(ms) else math.inf


@dataclass(frozen=True)
class StageCosts:
    """Per DAG node, milliseconds: computing it on the edge, in the cloud, sending its output once."""

    edge_ms: Mapping[Hashable, float]
    cloud_ms: Mapping[Hashable, float]
    send_ms: Mapping[Hashable, float]


class Surgery:
    """Min-cut (light load) and exact min-max (heavy load) placements on one DAG."""

    def __init__(self, dag: nx.DiGraph, source: Hashable, closed_set_limit: int = 100_000):
        if dag.in_degree(source):
            raise ValueError(f"source {source!r} must have no predecessors")
        self.dag = dag
        self.source = source
        self.closed_set_limit = closed_set_limit

    def stages(self, edge_set: frozenset, costs: StageCosts) -> tuple[float, float, float]:
        """``(E, T, C)`` ms of placing ``edge_set`` on the edge."""
        edge = sum(costs.edge_ms[v] for v in edge_set)
        cloud = sum(costs.cloud_ms[v] for v in self.dag if v not in edge_set)
        sent = sum(costs.send_ms[v] for v in edge_set
                   if any(w not in edge_set for w in self.dag.successors(v)))
        return edge, sent, cloud

    def light(self, costs: StageCosts) -> frozenset:
        """The closed edge set minimising ``E + T + C`` (DSL min cut, holes fixed), exact to 1 ns."""
        flow = nx.DiGraph()
        flow.add_edge(_EDGE, self.source)  # no capacity attribute: infinite, the image stays on the edge
        for v in self.dag:
            if v != self.source:
                flow.add_edge(_EDGE, v, capacity=_ticks(costs.cloud_ms[v]))  # cut: v runs in the cloud
            flow.add_edge(v, _CLOUD, capacity=_ticks(costs.edge_ms[v]))  # cut: v runs on the edge
            readers = list(self.dag.successors(v))
            if readers:
                flow.add_edge(v, (_SENT, v), capacity=_ticks(costs.send_ms[v]))  # cut: v's output is sent
                for w in readers:
                    flow.add_edge((_SENT, v), w)  # infinite: one send serves every reader
                    flow.add_edge(w, v)  # infinite: nothing flows back from cloud to edge
        _, (edge_side, _) = nx.minimum_cut(flow, _EDGE, _CLOUD)
        return frozenset(v for v in edge_side if v in self.dag)

    def heavy(self, costs: StageCosts) -> frozenset:
        """The closed edge set minimising ``max(E, T, C)``; ties go to the lower ``E + T + C``."""
        table = self.closed_sets
        edge, sent, cloud = table.stages(costs)
        bottleneck = np.maximum(np.maximum(edge, sent), cloud)
        best = np.lexsort((edge + sent + cloud, bottleneck))[0]
        return table.sets[best]

    @cached_property
    def closed_sets(self) -> ClosedSets:
        return ClosedSets(self.dag, self.source, self.closed_set_limit)


class ClosedSets:
    """Every node set that holds ``source`` and is closed under predecessors, as 0/1 matrices.

    ``member[i, j]``: node j is in set i; ``sends[i, j]``: node j is in set i and read outside it.
    """

    def __init__(self, dag: nx.DiGraph, source: Hashable, limit: int):
        self.nodes = list(nx.topological_sort(dag))
        self.sets: list[frozenset] = []
        self._enumerate(dag, source, limit)
        index = {v: j for j, v in enumerate(self.nodes)}
        self.member = np.zeros((len(self.sets), len(self.nodes)), dtype=bool)
        for i, edge_set in enumerate(self.sets):
            self.member[i, [index[v] for v in edge_set]] = True
        self.sends = np.zeros_like(self.member)
        for v, j in index.items():
            readers = [index[w] for w in dag.successors(v)]
            if readers:
                self.sends[:, j] = self.member[:, j] & ~self.member[:, readers].all(axis=1)

    def _enumerate(self, dag: nx.DiGraph, source: Hashable, limit: int) -> None:
        """Depth first over nodes in topological order: a node may join only after its inputs."""
        chosen: set = set()

        def visit(position: int) -> None:
            if position == len(self.nodes):
                if len(self.sets) == limit:
                    raise ValueError(f"more than {limit} closed edge sets: the exact heavy-load "
                                     "search is meant for nearly-chain DAGs like YOLO's")
                self.sets.append(frozenset(chosen))
                return
            v = self.nodes[position]
            if all(u in chosen for u in dag.predecessors(v)):
                chosen.add(v)
                visit(position + 1)
                chosen.discard(v)
            if v != source:
                visit(position + 1)

        visit(0)

    def stages(self, costs: StageCosts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(E, T, C)`` ms of every set."""
        def total(mask, mapping):  # not a matrix product: 0 * inf (no link) must stay 0
            return np.where(mask, np.array([mapping[v] for v in self.nodes], dtype=float), 0.0).sum(axis=1)
        return total(self.member, costs.edge_ms), total(self.sends, costs.send_ms), total(~self.member, costs.cloud_ms)


class DadsPolicy(Policy):
    """DADS on the network's layer DAG with the cost model's per-layer costs at the current state.

    ``mode``: ``light`` (minimise latency), ``heavy`` (minimise the slowest stage), or ``auto``
    (DADS: light, unless its slowest stage is at least ``frame_interval_ms``, the camera period).
    ``method``: ``closed-sets`` (numpy over the enumerated closed sets) or ``min-cut`` (networkx,
    the reference); both choose a placement of the same cost. Placements are two-tier: the edge
    and the next tier.
    """

    name = "dads"

    def __init__(self, cost_model: CostModel, frame_interval_ms: float, mode: str = "auto",
                 codec: str = DEFAULT_TENSOR_CODEC, image_codec: str = DEFAULT_IMAGE_CODEC,
                 method: str = "closed-sets"):
        if mode not in ("light", "heavy", "auto"):
            raise ValueError(f"mode must be light, heavy or auto, got {mode!r}")
        if method not in ("closed-sets", "min-cut"):
            raise ValueError(f"method must be closed-sets or min-cut, got {method!r}")
        self.cost_model = cost_model
        self.frame_interval_ms = frame_interval_ms
        self.mode = mode
        self.codec = codec
        self.image_codec = image_codec
        self.method = method
        self.surgery = Surgery(cost_model.graph.dag, INPUT)
        self.placements: list[Partition] | None = None  # every closed set, once enumerated
        bottlenecks = cost_model.bottleneck_partitions()
        self._bottlenecks = cost_model.table(bottlenecks) if bottlenecks else None
        if method == "closed-sets":
            self._prepare_closed_sets()

    def stage_costs(self, state: SystemState) -> StageCosts:
        """Latency costs of the cost model at ``state`` for the min cut: the edge queue stretches
        the edge's, the RTT is the cloud cost of the output node (paid by any offload).

        Frame costs (the cost model's): the edge's per-frame work is the input's edge cost (always
        paid); a tensor codec's encoding and decoding per fp32 byte join each tensor's sending
        cost, their fixed parts the output's cloud cost; image offload's codec costs, less those
        fixed parts, join the image's sending cost. That can be negative (an image codec cheaper than
        a tensor codec's fixed part), which no cut capacity can be: :meth:`_light_min_cut` then
        weighs image offload apart."""
        model = self.cost_model
        layers = range(model.num_layers)
        edge_scale = model.edge_slowdown(state.edge_load) * (1 + state.edge_queue_length)
        tensor_bytes = model.tensor_bytes(self.codec, state.frame_complexity)
        image_bytes = model.payload_bytes(model.chain_cut(INPUT), self.image_codec, state.frame_complexity)
        sent_ms, _, _ = self._sending_ms(np.append(tensor_bytes[:model.num_layers], image_bytes), state)
        fixed_ms, per_tensor_ms, image_ms = self._codec_latency_ms(edge_scale)
        sent_ms[:-1] += per_tensor_ms
        edge_ms = {INPUT: model.per_frame_edge_ms * edge_scale, OUTPUT: 0.0,
                   **{i: float(model.edge_layer_ms[i] * edge_scale) for i in layers}}
        cloud_ms = {INPUT: 0.0, OUTPUT: self._rtt_ms(state) + fixed_ms,
                    **{i: float(model.cloud_layer_ms[i]) for i in layers}}
        sent = {INPUT: float(sent_ms[-1] + image_ms - fixed_ms), OUTPUT: 0.0, **{i: float(sent_ms[i]) for i in layers}}
        return StageCosts(edge_ms, cloud_ms, sent)

    def _codec_latency_ms(self, edge_scale: float) -> tuple[float, np.ndarray, float]:
        """Latency of the codecs' work with the edge's times stretched by ``edge_scale``: the
        tensor codec's fixed ms per offloaded frame, its ms per tensor (index = layer), and image
        offload's ms (encoding and receiving)."""
        costs = self.cost_model.frame_costs
        if costs is None:
            return 0.0, np.zeros(self.cost_model.num_layers), 0.0
        (encode_ms, encode_per_mb), (decode_ms, decode_per_mb) = costs.codec_lines(self.codec)
        (image_encode_ms, _), (image_decode_ms, _) = costs.codec_lines(self.image_codec)
        per_mb = encode_per_mb * edge_scale + decode_per_mb
        return (encode_ms * edge_scale + decode_ms, per_mb * self._layer_fp32_bytes / 1e6,
                image_encode_ms * edge_scale + image_decode_ms)

    @cached_property
    def _layer_fp32_bytes(self) -> np.ndarray:
        return np.array([layer.output_bytes for layer in self.cost_model.edge_profile.layers], dtype=float)

    def _sending_ms(self, payload_bytes: np.ndarray, state: SystemState) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Sending time of offloaded bytes for latency, as a pipeline stage, and on the uplink: in
        three tiers the fog forwards what DADS places, so the bytes cross both links (the slower is
        the stage)."""
        first = send_ms_array(payload_bytes, state.bandwidth_mbps)
        if not self.cost_model.has_fog:
            return first, first, first
        second = send_ms_array(payload_bytes, state.fog_cloud_bandwidth_mbps)
        return first + second, np.maximum(first, second), first

    def _rtt_ms(self, state: SystemState) -> float:
        return state.rtt_ms + (state.fog_cloud_rtt_ms if self.cost_model.has_fog else 0.0)

    def to_partition(self, edge_set: frozenset) -> Partition:
        if OUTPUT in edge_set:  # post-processing on the edge: everything ran there
            return Partition.edge_only(self.cost_model.num_layers)
        layers = edge_set - {INPUT}
        if not layers:
            return Partition.image_offload(self.image_codec)
        return Partition.dag(layers, self.codec)

    def decide(self, state: SystemState) -> Partition:
        if self._bottlenecks is not None:
            return self._decide_with_bottlenecks(state)
        if self._by_min_cut(state):
            return self._decide_min_cut(state)
        self._prepare_closed_sets()
        return self._decide_closed_sets(state)

    def _by_min_cut(self, state: SystemState) -> bool:
        """Whether the light placement comes from the min cut: with ``method="min-cut"``, unless the
        state asks for the options' own link queue, which is no sum over tensors (no cut carries it)."""
        return self.method == "min-cut" and state.link_buffer_ms <= 0

    def _decide_min_cut(self, state: SystemState) -> Partition:
        if self.mode != "heavy":
            light = self._light_min_cut(state)
            if self.mode == "light" or \
                    self.cost_model.predict(light, state).bottleneck_ms < self.frame_interval_ms:
                return light
        self._prepare_closed_sets()  # heavy load searches the closed sets in both methods
        return self._heavy(state)

    def _light_min_cut(self, state: SystemState) -> Partition:
        costs = self.stage_costs(state)
        if costs.send_ms[INPUT] >= 0:
            return self.to_partition(self.surgery.light(costs))
        # Image offload is cheaper than any cut's fixed codec costs: cut without it, then weigh it.
        image = frozenset({INPUT})
        without = StageCosts(costs.edge_ms, costs.cloud_ms, {**costs.send_ms, INPUT: math.inf})
        best = self.surgery.light(without)
        return self.to_partition(min((best, image), key=lambda edge_set: sum(self.surgery.stages(edge_set, costs))))

    def _decide_with_bottlenecks(self, state: SystemState) -> Partition:
        """A learned bottleneck sends its own bytes at one cut, which no per-tensor cost of the DAG
        can express. DADS's rule over the surgery's placements and the bottlenecks together: the
        least latency of all (light load), unless that cannot keep up with the frames (auto); then
        the least slowest stage of all (heavy load; ties: the least latency)."""
        model, others = self.cost_model, self._bottlenecks.predict(state)
        if self.mode != "heavy":
            choice = self._light_surgery(state)
            chosen = model.predict(choice, state)
            slowest_ms = chosen.bottleneck_ms
            best = int(np.argmin(others.total_ms))
            if others.total_ms[best] < chosen.total_ms:
                choice, slowest_ms = self._bottlenecks.partitions[best], float(others.bottleneck_ms[best])
            if self.mode == "light" or slowest_ms < self.frame_interval_ms:
                return choice
        self._prepare_closed_sets()
        choice = self._heavy(state)
        chosen = model.predict(choice, state)
        keys = [(float(b), float(t)) for b, t in zip(others.bottleneck_ms, others.total_ms)]
        best = min(range(len(keys)), key=keys.__getitem__)
        return self._bottlenecks.partitions[best] if keys[best] < (chosen.bottleneck_ms, chosen.total_ms) else choice

    def _light_surgery(self, state: SystemState) -> Partition:
        """The surgery's least-latency placement (either method; closed sets where the state asks
        for the options' own link queue)."""
        if self._by_min_cut(state):
            return self._light_min_cut(state)
        self._prepare_closed_sets()
        return self.placements[self._light_closed_sets(state)[0]]

    def _prepare_closed_sets(self) -> None:
        """The state-independent parts of every closed set's stages, as arrays over the sets, with
        the cost model's frame costs (complexity, decision and encoding on the edge, decoding at
        the cloud) of each."""
        if self.placements is not None:
            return
        sets = self.surgery.closed_sets
        model = self.cost_model
        column = {v: j for j, v in enumerate(sets.nodes)}
        self._layer_columns = np.array([column[i] for i in range(model.num_layers)])
        self._input_column = column[INPUT]
        edge, cloud = np.zeros(len(sets.nodes)), np.zeros(len(sets.nodes))
        edge[self._layer_columns] = model.edge_layer_ms
        cloud[self._layer_columns] = model.cloud_layer_ms
        placements = [self.to_partition(s) for s in sets.sets]  # every closed set
        codec_ms = np.array([model.codec_ms(p.codec, model.placement(p).cut)
                             if not p.is_edge_only(model.num_layers) else (0.0, 0.0) for p in placements])
        self._idle_edge_ms = sets.member @ edge + model.per_frame_edge_ms + codec_ms[:, 0]  # E on an idle edge
        self._cloud_ms = ~sets.member @ cloud + codec_ms[:, 1]  # C without the RTT
        self._pays_rtt = ~sets.member[:, column[OUTPUT]]  # post-processing in the cloud
        self._sends = sets.sends.astype(float)
        self.placements = placements

    def _stages(self, state: SystemState) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Every closed set's edge ms, sending ms (latency, with the option's own queue on the uplink
        where the state asks for it, and as a pipeline stage) and cloud ms."""
        model = self.cost_model
        sent_bytes = np.zeros(self._sends.shape[1])
        sent_bytes[self._layer_columns] = model.tensor_bytes(self.codec, state.frame_complexity)
        sent_bytes[self._input_column] = model.payload_bytes(model.chain_cut(INPUT), self.image_codec,
                                                             state.frame_complexity)
        sending_ms, stage_ms, uplink_ms = self._sending_ms(self._sends @ sent_bytes, state)
        edge_ms = self._idle_edge_ms * model.edge_slowdown(state.edge_load)
        return edge_ms, sending_ms + model.link_queue_ms(uplink_ms, edge_ms, state), stage_ms, self._cloud_ms

    def _heavy(self, state: SystemState) -> Partition:
        """The set of the least slowest stage (ties: the least sum of the stages, the option's own
        link queue included where the state asks for it), DADS's heavy-load choice."""
        edge_ms, sending_ms, stage_ms, cloud_ms = self._stages(state)
        bottleneck_ms = np.maximum(np.maximum(edge_ms, stage_ms), cloud_ms)
        return self.placements[np.lexsort((edge_ms + sending_ms + cloud_ms, bottleneck_ms))[0]]

    def _light_closed_sets(self, state: SystemState) -> tuple[int, float]:
        """The index of the closed set of least latency, and its slowest stage (ms)."""
        edge_ms, sending_ms, stage_ms, cloud_ms = self._stages(state)
        latency_ms = (1 + state.edge_queue_length) * edge_ms + sending_ms + cloud_ms + \
            np.where(self._pays_rtt, self._rtt_ms(state), 0.0)
        light = int(np.argmin(latency_ms))
        return light, max(edge_ms[light], stage_ms[light], cloud_ms[light])

    def _decide_closed_sets(self, state: SystemState) -> Partition:
        if self.mode != "heavy":
            light, slowest_ms = self._light_closed_sets(state)
            if self.mode == "light" or slowest_ms < self.frame_interval_ms:
                return self.placements[light]
        return self._heavy(state)
