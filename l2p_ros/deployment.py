"""A deployment's cost model and model graph, built in one place for the partitioner node and the
simulator alike.

A deployment is a model on an edge, an optional fog and a cloud. Each tier's profile is a measured
file, or derived from the edge's measured profile by a speed factor and labelled derived
(invariant 6). Without an edge profile file, this host's cached profile is used, measured on first
use (``measure.cache.ensure_profile``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from l2p_ros import context_coder
from l2p_ros.bottleneck_file import CONTEXT_KEY, BottleneckError, read_bottleneck, resolve_path
from l2p_ros.codec_spec import CONTEXT_CODER, CodecSpec, bottleneck_source
from l2p_ros.measure.cache import ensure_profile
from l2p_ros.measure.frame_costs import FrameCosts, frame_costs_source, resolve_frame_costs
from l2p_ros.measure.models import model_graph, model_id
from l2p_ros.measure.profile import Profile, derive_profile, is_derived, load_profile
from l2p_ros.policies.cloud_batching import CloudShare
from l2p_ros.policies.energy import PowerModel
from l2p_ros.policies.cost_model import CostModel, PayloadBytesFn
from l2p_ros.policies.types import DEFAULT_TENSOR_CODEC


@dataclass(frozen=True)
class Deployment:
    """Where each tier's profile comes from.

    ``edge_profile``: a profile file, or None for this host's measured one; ``edge_speed_factor``
    != 1 derives the edge from it at that speed (0.25: a quarter as fast). ``cloud_profile``, or
    else a cloud ``cloud_speed_factor`` times as fast as the measured edge profile. A fog tier:
    ``fog_profile``, or ``fog_speed_factor`` > 0 times the (possibly derived) edge's speed; its
    crossing is encoded with ``fog_codec``. ``profile_threads``: torch threads when this host's
    edge profile has to be measured. ``bottlenecks``: learned bottleneck files (names in
    models/bottleneck/ or paths) the policies may choose, each at its own cut, sending the bytes per
    frame its file records from its held-out frames. ``frame_costs``: measured complexity,
    decision, encoding and decoding times the policies charge: a file, ``"committed"`` for the
    repository's file of the model (none where it has none) or ``"none"``
    (:mod:`l2p_ros.measure.frame_costs`).
    """

    model: str = "yolov3-tiny"
    input_size: int = 416
    edge_profile: Path | None = None
    edge_speed_factor: float = 1.0
    cloud_profile: Path | None = None
    cloud_speed_factor: float = 20.0
    fog_profile: Path | None = None
    fog_speed_factor: float = 0.0
    fog_codec: str = DEFAULT_TENSOR_CODEC
    profile_threads: int = 1
    bottlenecks: tuple[str, ...] = ()
    frame_costs: str = "none"

    def __post_init__(self) -> None:
        for name in ("edge_speed_factor", "cloud_speed_factor"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not self.fog_speed_factor >= 0:
            raise ValueError(f"fog_speed_factor must be >= 0 (0 = no fog), got {self.fog_speed_factor}")


def build_cost_model(deployment: Deployment, payload_bytes_fn: PayloadBytesFn | None = None,
                     power: PowerModel = PowerModel(), log=print) -> tuple[CostModel, dict]:
    """The deployment's cost model (over its model graph) and where each profile came from.

    ``payload_bytes_fn``: the bytes each cut sends (e.g. a ``PayloadFit``); None uses the edge
    profile's single-frame sizes. Raises ``ProfileError`` for a missing or inconsistent profile.
    """
    d = deployment
    measured = load_profile(d.edge_profile or ensure_profile(d.model, d.input_size, threads=d.profile_threads,
                                                             log=log))
    edge = measured if d.edge_speed_factor == 1.0 else derive_profile(
        measured, d.edge_speed_factor, f"edge, derived: {d.edge_speed_factor:g}x the measured edge profile's speed")
    if d.cloud_profile is not None:
        cloud = load_profile(d.cloud_profile)
        cloud_source = {"file": str(d.cloud_profile), "derived": is_derived(cloud), "machine": cloud.machine}
    else:
        cloud = derive_profile(measured, d.cloud_speed_factor,
                               f"cloud GPU, derived: {d.cloud_speed_factor:g}x the measured edge profile's speed")
        cloud_source = {"derived": True, "speed_factor": d.cloud_speed_factor, "from": "measured edge profile"}
    sources = {
        "edge_profile": {"file": str(d.edge_profile) if d.edge_profile else "measured on this host (ensure_profile)",
                         "derived": is_derived(edge), "speed_factor": d.edge_speed_factor,
                         "from": "measured edge profile", "machine": edge.machine,
                         "full_pass_ms_median": edge.measurement.get("full_pass_ms_median")},
        "cloud_profile": {**cloud_source, "full_pass_ms": round(cloud.total_ms, 3)},
    }
    bottlenecks = {}
    for entry in d.bottlenecks:
        name, coder = bottleneck_source(f"bn:{entry}")  # NAME, or NAME+ctx: its codes range-coded
        info, arrays = read_bottleneck(name, model_id=model_id(d.model, d.input_size))
        reason = context_coder.refusal(name, CONTEXT_KEY in arrays) if coder == CONTEXT_CODER else None
        if reason:
            raise BottleneckError(f"bottleneck {entry}: {reason}")
        payload = info.held_out_context_payload_bytes if coder == CONTEXT_CODER else info.held_out_payload_bytes
        if payload is None:
            raise BottleneckError(f"bottleneck {entry} records no payload measured on held-out frames "
                                  "(l2p train-bottleneck measures it)")
        codec = str(CodecSpec("bn", coder, bottleneck=resolve_path(name).stem))
        bottlenecks[codec] = (info.cut_after_layer, payload)
        sources.setdefault("bottlenecks", {})[codec] = {
            "file": str(resolve_path(name)), "cut": info.cut_after_layer,
            "payload_bytes": payload, "from": "its held-out frames (recorded in the file)"}
    costs_path, costs = resolve_frame_costs(d.frame_costs, d.model)
    if costs is not None:
        sources["frame_costs"] = frame_costs_source(costs_path, costs)
    model = CostModel(model_graph(d.model), edge, cloud, power, payload_bytes_fn, bottlenecks=bottlenecks,
                      frame_costs=costs)
    if d.fog_profile is not None or d.fog_speed_factor > 0:
        fog = load_profile(d.fog_profile) if d.fog_profile is not None else fog_profile(edge, d.fog_speed_factor)
        model = with_fog(model, fog, d.fog_codec)
        sources["fog_profile"] = ({"file": str(d.fog_profile), "derived": is_derived(fog), "machine": fog.machine}
                                  if d.fog_profile
                                  else {"derived": True, "speed_factor": d.fog_speed_factor, "from": "edge profile"})
        sources["fog_profile"].update(full_pass_ms=round(fog.total_ms, 3), codec=d.fog_codec)
    return model, sources


def fog_profile(edge: Profile, speed_factor: float) -> Profile:
    """A fog ``speed_factor`` times as fast as ``edge``, labelled derived."""
    return derive_profile(edge, speed_factor, f"fog, derived: {speed_factor:g}x the edge profile's speed")


def _rebuilt(model: CostModel, **changes) -> CostModel:
    """``model`` built again with ``changes`` (CostModel's keyword arguments), all else the same."""
    kept = dict(cloud_power=model.cloud_power, fog_profile=model.fog_profile, fog_power=model.fog_power,
                fog_codec=model.fog_codec, bottlenecks=model.bottlenecks, cloud_share=model.cloud_share,
                frame_costs=model.frame_costs)
    return CostModel(model.graph, model.edge_profile, model.cloud_profile, model.power, model.payload_bytes_fn,
                     model.max_edge_load, **{**kept, **changes})


def with_fog(model: CostModel, fog: Profile, fog_codec: str) -> CostModel:
    """``model`` with a fog tier: same graph, edge and cloud profiles, payload function, powers and
    load cap; the fog's crossing encoded with ``fog_codec``."""
    return _rebuilt(model, fog_profile=fog, fog_codec=fog_codec)


def with_cloud_share(model: CostModel, share: CloudShare | None) -> CostModel:
    """``model`` predicting a cloud shared by a batching fleet (None: the cloud alone)."""
    return _rebuilt(model, cloud_share=share)


def with_frame_costs(model: CostModel, costs: FrameCosts | None) -> CostModel:
    """``model`` charging measured frame costs (None: none)."""
    return _rebuilt(model, frame_costs=costs)
