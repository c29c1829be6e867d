"""Predicted latency and edge energy of any partition, from measured (or labelled derived) profiles.

For a frame cut by a partition, with the monitors' state:

- ``edge_ms``: edge-profile layer medians of the edge layers, stretched by the edge load: other
  work holding a fraction ``u`` of the edge leaves this inference ``1 - u`` of it (processor
  sharing), so it takes ``1 / (1 - u)`` times as long. ``u`` is capped (``max_edge_load``) so a
  saturated edge is very slow but not infinitely so. Profiles are measured on an idle machine.
- ``send_ms``: ``payload_bytes * 8 / bandwidth``: the link is busy this long (a pipeline stage).
- ``rtt_ms``: paid once per offloaded frame (payload out, detections back); it delays the frame
  but does not occupy the link, so it counts in latency and not in throughput.
- ``cloud_ms``: cloud-profile medians of the remaining layers.
- Edge only sends nothing: the edge post-processes locally (issue 3's edge fallback), so send,
  RTT and cloud are 0. Three-tier partitions are not predicted here yet.

Payload bytes come from ``payload_bytes_fn(cut, codec, complexity)`` for chain cuts; by default
the edge profile's bytes for its one profiled frame (complexity ignored) — a fit on real frames
replaces it. Every crossing tensor is encoded as its own record, so payload bytes add up over
tensors, and per-tensor bytes follow exactly from the chain cuts (:meth:`CostModel.tensor_bytes`);
DAG cuts and the DADS min-cut use those.
"""
from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from l2p_ros.model.graph import INPUT, Cut, LayerGraph
from l2p_ros.policies.types import Partition, SystemState
from l2p_ros.profiling import Profile, ProfileError

PayloadBytesFn = Callable[[Cut, str, float], float]  # (chain cut, codec, complexity 0..1) -> bytes


def derive_profile(profile: Profile, speed_factor: float, label: str) -> Profile:
    """A profile of a machine ``speed_factor`` times as fast as the measured one (0.3: a Jetson-
    class edge; 20: a cloud GPU), labelled as derived (invariant 6): its ``machine`` block holds
    ``derived: true``, the label, the factor and the machine actually measured. Payload bytes do
    not depend on the machine and are kept.
    """
    if speed_factor <= 0:
        raise ValueError(f"speed_factor must be > 0, got {speed_factor}")
    scale = 1.0 / speed_factor
    layers = [replace(layer, latency_ms_median=layer.latency_ms_median * scale,
                      latency_ms_p10=layer.latency_ms_p10 * scale,
                      latency_ms_p90=layer.latency_ms_p90 * scale) for layer in profile.layers]
    cuts = [replace(cut, edge_ms=cut.edge_ms * scale, rest_ms=cut.rest_ms * scale,
                    payload_bytes=dict(cut.payload_bytes)) for cut in profile.cuts]
    measurement = {key: value * scale if key.startswith("full_pass_ms") else value
                   for key, value in profile.measurement.items()}
    machine = {"derived": True, "label": label, "speed_factor": speed_factor,
               "measured_on": copy.deepcopy(profile.machine)}
    return replace(profile, model=copy.deepcopy(profile.model), machine=machine,
                   measurement=measurement, layers=layers, cuts=cuts, extra=copy.deepcopy(profile.extra))


def is_derived(profile: Profile) -> bool:
    return bool(profile.machine.get("derived"))


@dataclass(frozen=True)
class PowerModel:
    """Whole-edge-device power draw in each phase of a frame, watts.

    ``active_w`` while computing layers, ``transmit_w`` while the radio sends, ``idle_w`` while
    waiting for the cloud. The defaults are nominal values for a Jetson-class vehicle computer,
    not measurements (``source`` says so); a later slice fills them from RAPL/NVML.
    """

    active_w: float = 15.0
    transmit_w: float = 7.0
    idle_w: float = 5.0
    source: str = "assumed"

    def energy_j(self, compute_ms: float, send_ms: float, wait_ms: float) -> float:
        return (self.active_w * compute_ms + self.transmit_w * send_ms + self.idle_w * wait_ms) / 1e3


@dataclass(frozen=True)
class Prediction:
    """One frame's predicted stage times (ms), bytes on the wire and edge energy (J)."""

    edge_ms: float
    send_ms: float
    rtt_ms: float
    cloud_ms: float
    payload_bytes: float
    edge_energy_j: float

    @property
    def transfer_ms(self) -> float:
        return self.send_ms + self.rtt_ms

    @property
    def total_ms(self) -> float:
        return self.edge_ms + self.transfer_ms + self.cloud_ms

    @property
    def bottleneck_ms(self) -> float:
        """The slowest pipeline stage: frames can be processed no faster than one per this."""
        return max(self.edge_ms, self.send_ms, self.cloud_ms)


def send_ms(payload_bytes: float, bandwidth_mbps: float) -> float:
    """Milliseconds to put ``payload_bytes`` on a ``bandwidth_mbps`` link (inf without a link)."""
    if payload_bytes <= 0:
        return 0.0
    return payload_bytes * 8 / (bandwidth_mbps * 1e3) if bandwidth_mbps > 0 else float("inf")


class CostModel:
    """Predicts any two-tier partition of ``graph`` from an edge and a cloud profile."""

    def __init__(self, graph: LayerGraph, edge_profile: Profile, cloud_profile: Profile,
                 power: PowerModel = PowerModel(), payload_bytes_fn: PayloadBytesFn | None = None,
                 max_edge_load: float = 0.95):
        for role, profile in (("edge", edge_profile), ("cloud", cloud_profile)):
            if len(profile.layers) != graph.num_layers:
                raise ProfileError(f"{role} profile has {len(profile.layers)} layers, "
                                   f"the network {graph.num_layers}")
        self.graph = graph
        self.edge_profile = edge_profile
        self.cloud_profile = cloud_profile
        self.power = power
        self.max_edge_load = max_edge_load
        self.edge_layer_ms = np.array([l.latency_ms_median for l in edge_profile.layers])
        self.cloud_layer_ms = np.array([l.latency_ms_median for l in cloud_profile.layers])
        self.payload_bytes_fn = payload_bytes_fn or self.profiled_payload_bytes
        # Complexity is a float; bound the cache rather than grow it with every frame.
        self.tensor_bytes = functools.lru_cache(maxsize=64)(self._tensor_bytes)

    @property
    def num_layers(self) -> int:
        return self.graph.num_layers

    def profiled_payload_bytes(self, cut: Cut, codec: str, complexity: float) -> float:
        """The edge profile's bytes for its one profiled frame; ``complexity`` is not used."""
        sizes = self.edge_profile.cut(cut.after_layer).payload_bytes
        if codec not in sizes:
            raise ProfileError(f"profile has no payload size for codec {codec} at cut {cut.after_layer}; "
                               f"it has {sorted(sizes)}")
        return float(sizes[codec])

    def _tensor_bytes(self, codec: str, complexity: float) -> np.ndarray:
        """Bytes of each layer's output (index = layer) on the wire under ``codec``.

        Chain cut k carries tensor k and tensors of earlier layers still needed later, so
        ``bytes(k) = payload(k) - sum(bytes(t) for the earlier crossing t)``, solved in order.
        """
        sizes = np.zeros(self.num_layers)
        for k in range(self.num_layers):
            cut = self.graph.chain_cut(k)
            if INPUT in cut.crossing:
                raise ProfileError(f"the image crosses cut {k}: per-tensor sizes need it read by layer 0 only")
            earlier = [t for t in cut.crossing if t != k]
            sizes[k] = self.payload_bytes_fn(cut, codec, complexity) - sizes[earlier].sum()
            if sizes[k] < 0:
                raise ProfileError(f"{codec}: cut {k} sends fewer bytes than its earlier tensors alone; "
                                   "payload sizes must add up over the crossing tensors")
        sizes.flags.writeable = False  # shared through the cache
        return sizes

    def payload_bytes(self, cut: Cut, codec: str, complexity: float) -> float:
        if cut.after_layer is not None:
            return self.payload_bytes_fn(cut, codec, complexity)
        return float(self.tensor_bytes(codec, complexity)[list(cut.crossing)].sum())

    def edge_slowdown(self, edge_load: float) -> float:
        """How many times longer the edge takes at this load than when profiled (idle)."""
        return 1.0 / (1.0 - min(edge_load, self.max_edge_load))

    def predict(self, partition: Partition, state: SystemState) -> Prediction:
        if partition.fog_until_layer is not None:
            raise ValueError("three-tier partitions are not predicted yet (no fog profile)")
        cut = partition.to_cut(self.graph)
        edge_ms = float(self.edge_layer_ms[sorted(cut.edge_layers)].sum()) * self.edge_slowdown(state.edge_load)
        if len(cut.edge_layers) == self.num_layers:
            return Prediction(edge_ms, 0.0, 0.0, 0.0, 0.0, self.power.energy_j(edge_ms, 0.0, 0.0))
        payload = self.payload_bytes(cut, partition.codec, state.frame_complexity)
        sending_ms = send_ms(payload, state.bandwidth_mbps)
        cloud_ms = self.cloud_ms(cut)
        energy = self.power.energy_j(edge_ms, sending_ms, state.rtt_ms + cloud_ms)
        return Prediction(edge_ms, sending_ms, state.rtt_ms, cloud_ms, payload, energy)

    def cloud_ms(self, cut: Cut) -> float:
        """Cloud-profile milliseconds of the layers after ``cut``."""
        on_cloud = np.ones(self.num_layers, dtype=bool)
        on_cloud[sorted(cut.edge_layers)] = False
        return float(self.cloud_layer_ms[on_cloud].sum())
