"""What a policy sees (:class:`SystemState`), what it returns (:class:`Partition`), and its interface.

ROS-free. Layer indices are Darknet indices; a cut "after layer k" runs layers 0..k on the edge.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import ClassVar, Iterable

from l2p_ros.model.graph import INPUT, Cut, LayerGraph

DEFAULT_TENSOR_CODEC = "fp32"  # lossless; lossy codecs are opt-in (invariant 1)
DEFAULT_IMAGE_CODEC = "jpeg-q75"  # what image offload sends unless told otherwise


@dataclass(frozen=True)
class Partition:
    """Where one frame's layers run, and how what crosses the cut is encoded.

    Exactly one of two forms, kept canonical so that equal placements compare equal:

    - a chain cut: ``cut_after_layer = k`` runs layers 0..k on the edge; ``-1`` sends the image
      (image offload), the last layer index runs everything on the edge (edge only). With
      ``fog_until_layer = j`` (> k) layers k+1..j run on a fog tier and the rest in the cloud.
    - a general DAG cut: ``edge_layers``, a set closed under predecessors, runs on the edge.
      A set that is a prefix {0..k} is stored as the chain cut k.

    ``codec`` names the wire format (``l2p_ros.codec.CodecSpec`` names); JPEG codecs only apply
    to image offload.
    """

    cut_after_layer: int | None = None
    edge_layers: frozenset[int] | None = None
    fog_until_layer: int | None = None
    codec: str = DEFAULT_TENSOR_CODEC

    def __post_init__(self) -> None:
        if self.edge_layers is not None:
            layers = frozenset(self.edge_layers)
            if self.cut_after_layer is not None:
                raise ValueError("give cut_after_layer or edge_layers, not both")
            if layers == frozenset(range(len(layers))):  # a prefix: canonical chain form
                object.__setattr__(self, "cut_after_layer", len(layers) - 1)
                layers = None
            object.__setattr__(self, "edge_layers", layers)
        elif self.cut_after_layer is None:
            raise ValueError("a partition needs cut_after_layer or edge_layers")
        elif self.cut_after_layer < INPUT:
            raise ValueError(f"cut_after_layer must be >= -1, got {self.cut_after_layer}")
        if self.fog_until_layer is not None:
            if self.cut_after_layer is None or self.fog_until_layer <= self.cut_after_layer:
                raise ValueError("a fog tier needs a chain cut k and fog_until_layer > k")
        if self.codec.startswith("jpeg") and not self.is_image_offload:
            raise ValueError(f"codec {self.codec} only applies to image offload (cut -1)")

    @classmethod
    def chain(cls, after_layer: int, codec: str = DEFAULT_TENSOR_CODEC) -> Partition:
        return cls(cut_after_layer=after_layer, codec=codec)

    @classmethod
    def dag(cls, edge_layers: Iterable[int], codec: str = DEFAULT_TENSOR_CODEC) -> Partition:
        return cls(edge_layers=frozenset(edge_layers), codec=codec)

    @classmethod
    def image_offload(cls, codec: str = DEFAULT_IMAGE_CODEC) -> Partition:
        return cls(cut_after_layer=INPUT, codec=codec)

    @classmethod
    def edge_only(cls, num_layers: int) -> Partition:
        return cls(cut_after_layer=num_layers - 1)

    @property
    def is_image_offload(self) -> bool:
        return self.cut_after_layer == INPUT

    def is_edge_only(self, num_layers: int) -> bool:
        return self.cut_after_layer == num_layers - 1

    def edge_set(self) -> frozenset[int]:
        """Layers that run on the edge."""
        if self.edge_layers is not None:
            return self.edge_layers
        return frozenset(range(self.cut_after_layer + 1))

    def to_cut(self, graph: LayerGraph) -> Cut:
        """The (first) cut on ``graph``; raises ``CutError`` when it does not fit the network."""
        if self.edge_layers is not None:
            return graph.dag_cut(self.edge_layers)
        return graph.chain_cut(self.cut_after_layer)

    def name(self, num_layers: int) -> str:
        """Short label: ``cloud``, ``edge``, ``k``, ``k/j`` (three tiers) or ``dag:i,j,...``."""
        if self.edge_layers is not None:
            return "dag:" + ",".join(map(str, sorted(self.edge_layers)))
        if self.fog_until_layer is not None:
            return f"{self.cut_after_layer}/{self.fog_until_layer}"
        if self.is_image_offload:
            return "cloud"
        return "edge" if self.is_edge_only(num_layers) else str(self.cut_after_layer)


@dataclass(frozen=True)
class SystemState:
    """What a policy knows when it decides for one frame (estimates, or the truth for an oracle).

    - ``bandwidth_mbps``: the edge's uplink to the next tier, megabits (1e6 bit) per second; 0
      means no link. The next tier is the cloud, or the fog in a three-tier deployment (there the
      fog answers the network monitor's probes, so this is the edge -> fog link).
    - ``rtt_ms``: round-trip time of that link, milliseconds.
    - ``edge_load``: fraction 0..1 of the edge's CPU/GPU taken by other work.
    - ``edge_queue_length``: frames waiting at the edge, count.
    - ``frame_complexity``: 0..1 (``l2p_ros.complexity``); drives compressed payload sizes.
    - ``time_s``: when the state holds, seconds (trace time in the simulator).
    - ``fog_cloud_bandwidth_mbps``, ``fog_cloud_rtt_ms``: the fog -> cloud link of a three-tier
      deployment; unused in two tiers. The defaults are a nominal wired backhaul, not a measurement.
    - ``link_buffer_ms``: > 0 asks the cost model for what an option costs once chosen: each
      offloaded option pays the queue its own frames would leave on the uplink, up to this (the
      queue the link holds when full; :func:`~l2p_ros.policies.cost_model.own_link_queue_ms`), and
      ``rtt_ms`` should then be the link's RTT without a queue (the floor). 0: none is charged and
      ``rtt_ms`` carries whatever queue the current choice built (the monitor's RTT).
    - ``frame_interval_ms``: the camera's period, with ``link_buffer_ms``: how often frames come.
    - ``link_arrival_scv``: with ``link_buffer_ms``: how irregularly frames reach the uplink (the
      squared coefficient of variation of their intervals; 1: as if at random, M/D/1's wait).
    - ``link_queue_now_ms``: with ``link_buffer_ms``: what the uplink still has to send when the
      edge is next free for this frame (:class:`~l2p_ros.monitoring.link_backlog.LinkBacklog`);
      each option's own queue is capped at it less the option's edge time, what is left when its
      frame reaches the link. None: not known, no cap.
    """

    bandwidth_mbps: float
    rtt_ms: float = 0.0
    edge_load: float = 0.0
    edge_queue_length: int = 0
    frame_complexity: float = 0.5
    time_s: float = 0.0
    fog_cloud_bandwidth_mbps: float = 1000.0
    fog_cloud_rtt_ms: float = 5.0
    link_buffer_ms: float = 0.0
    frame_interval_ms: float = 0.0
    link_arrival_scv: float = 1.0
    link_queue_now_ms: float | None = None

    def __post_init__(self) -> None:
        if min(self.bandwidth_mbps, self.rtt_ms, self.edge_queue_length, self.fog_cloud_bandwidth_mbps,
               self.fog_cloud_rtt_ms, self.link_buffer_ms, self.frame_interval_ms, self.link_arrival_scv,
               0.0 if self.link_queue_now_ms is None else self.link_queue_now_ms) < 0:
            raise ValueError(f"bandwidths, RTTs, queue length, link buffer, frame interval, queue now and "
                             f"arrival scv must be >= 0: {self}")
        for name in ("edge_load", "frame_complexity"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in 0..1: {self}")


class Policy(abc.ABC):
    """Chooses a partition for every frame from the current system state.

    ``name`` is the key the evaluation reports the policy under (``greedy``, ``dads``, ...).
    A policy with ``needs_true_state`` (the oracle) must be given the true conditions, not the
    monitors' estimates.
    """

    name: ClassVar[str]
    needs_true_state: ClassVar[bool] = False

    @abc.abstractmethod
    def decide(self, state: SystemState) -> Partition:
        """The partition for the next frame."""

    def reset(self) -> None:
        """Forget what was learned within an episode (start of a trace). Stateless by default."""
