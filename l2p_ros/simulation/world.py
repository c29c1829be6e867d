"""Everything a simulation needs besides a policy: profiles, cost models, the measured video.

:func:`build_world` assembles it once (profiles and the video table are cached files, measured
on first use); :meth:`World.simulator` then draws one scenario instance per seed. The evaluation
and the gymnasium environment (and PPO training on it) share this entry point.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from l2p_ros.deployment import (Deployment, build_cost_model, fog_profile, with_cloud_share, with_fog,
                                with_frame_costs)
from l2p_ros.measure.models import model_graph
from l2p_ros.measure.payload_fit import fit_payloads
from l2p_ros.measure.profile import Profile
from l2p_ros.model.graph import LayerGraph
from l2p_ros.policies.energy import PowerModel
from l2p_ros.policies.baselines import chain_partitions
from l2p_ros.policies.cloud_batching import CloudShare
from l2p_ros.policies.cost_model import CostModel, PayloadBytesFn
from l2p_ros.policies.dnnsplit import profile_candidates
from l2p_ros.policies.types import Partition
from l2p_ros.measure.frame_costs import FrameCosts
from l2p_ros.simulation.scenarios import FogTier, Scenario
from l2p_ros.simulation.simulator import SimulationConfig, Simulator
from l2p_ros.simulation.video import VideoTable, payload_samples, playback_rows, video_table, with_bottlenecks

DEFAULT_CLOUD_SPEED_FACTOR = 20.0  # a cloud GPU against one CPU core of this host (stated, not measured)


@dataclass
class World:
    """The model's layer graph, edge and cloud profiles, the measured video table, and the cost
    model the policies predict with (``policy_model``: the profiles and a payload function, by
    default :func:`complexity_fit`). ``sources`` describes where each came from.

    ``fog_profile`` is set in a three-tier world (:meth:`for_scenario` of a scenario with a
    ``fog``); its ``policy_model`` then has the fog, so the policies and the simulator's truth
    both predict and play edge -> fog -> cloud."""

    model_name: str
    graph: LayerGraph
    edge_profile: Profile
    cloud_profile: Profile
    table: VideoTable
    policy_model: CostModel
    sources: dict
    fog_profile: Profile | None = None
    _tiered: dict = field(default_factory=dict, repr=False, compare=False)

    def for_scenario(self, scenario: Scenario) -> World:
        """This world for ``scenario``: itself in two tiers, else (cached) the same world with a
        fog tier as the scenario states (:meth:`with_fog`)."""
        if scenario.fog is None or self.fog_profile is not None:
            return self
        key = (scenario.fog, scenario.fog_codec)
        if key not in self._tiered:
            self._tiered[key] = self.with_fog(scenario.fog, scenario.fog_codec)
        return self._tiered[key]

    def with_fog(self, fog: FogTier, fog_codec: str) -> World:
        """The same world with a fog: a profile derived from the edge profile at
        ``fog.speed_factor`` times its speed (labelled derived), the crossing at the fog encoded with
        ``fog_codec``; the policies' cost model keeps its payload function, power and load cap."""
        if self.fog_profile is not None:
            raise ValueError("this world already has a fog tier")
        profile = fog_profile(self.edge_profile, fog.speed_factor)
        base = self.policy_model
        model = with_fog(base, profile, fog_codec)
        sources = {**self.sources, "fog_profile": {
            "derived": True, "speed_factor": fog.speed_factor, "from": "edge profile",
            "full_pass_ms": round(profile.total_ms, 3), "codec": fog_codec,
            "fog_cloud_link": {"bandwidth_mbps": fog.cloud_bandwidth_mbps, "rtt_ms": fog.cloud_rtt_ms,
                               "note": "nominal, constant, not a measurement"},
            "fog_power": {"active_w": base.fog_power.active_w, "transmit_w": base.fog_power.transmit_w,
                          "source": base.fog_power.source}}}
        return replace(self, policy_model=model, sources=sources, fog_profile=profile, _tiered={})

    def with_cloud_share(self, share: CloudShare | None) -> World:
        """The same world whose policies know the cloud is shared by a batching fleet (the
        simulator's truth is ``SimulationConfig.fleet``; give both the same share)."""
        sources = {**self.sources, "cloud_share": None if share is None else {
            "vehicles": share.vehicles, "frames_per_s": share.frames_per_s, "max_batch": share.max_batch,
            "batching": {"machine": share.batching.machine, "source": share.batching.source}}}
        return replace(self, policy_model=with_cloud_share(self.policy_model, share), sources=sources,
                       _tiered={})

    def with_frame_costs(self, costs: FrameCosts | None) -> World:
        """The same world whose policies charge ``costs`` (None: none) as the simulator's truth
        does when ``SimulationConfig.frame_costs`` is the same."""
        return replace(self, policy_model=with_frame_costs(self.policy_model, costs), _tiered={})

    def candidates(self, codec: str, image_codec: str) -> list[Partition]:
        """DNNSplit's candidate chain cuts (image offload and edge only included) as partitions, and
        each learned bottleneck at its cut."""
        return (chain_partitions(profile_candidates(self.graph, self.edge_profile), codec, image_codec)
                + self.policy_model.bottleneck_partitions())

    def simulator(self, scenario: Scenario, duration_s: float, seed: int,
                  config: SimulationConfig | None = None) -> Simulator:
        """One instance of ``scenario``: trace, scenes and estimator noise all drawn from ``seed``.
        A scenario with a fog is played on :meth:`for_scenario`'s three-tier world, its fog ->
        cloud link from the scenario."""
        if scenario.fog is not None and self.fog_profile is None:
            return self.for_scenario(scenario).simulator(scenario, duration_s, seed, config)
        if duration_s <= 0:
            raise ValueError(f"duration_s must be > 0, got {duration_s}")
        config = config or SimulationConfig(fps=scenario.fps, deadline_ms=scenario.deadline_ms)
        if scenario.fog is not None:
            config = replace(config, fog_cloud_bandwidth_mbps=scenario.fog.cloud_bandwidth_mbps,
                             fog_cloud_rtt_ms=scenario.fog.cloud_rtt_ms)
        trace_seed, scene_seed, estimator_seed = np.random.SeedSequence(seed).spawn(3)
        trace = scenario.make_trace(duration_s, np.random.default_rng(trace_seed))
        scenes = scenario.make_scenes(duration_s, np.random.default_rng(scene_seed))
        rows = playback_rows(self.table, scenes, max(round(duration_s * config.fps), 1), config.fps)
        # The simulator takes profiles and power from the policies' model; its truth is the table's bytes.
        return Simulator(self.policy_model, self.table, trace, rows, config, estimator_seed)


def complexity_fit(table: VideoTable, graph: LayerGraph) -> PayloadBytesFn:
    """``payload_fit``'s line per chain cut and codec (bytes = a + b * complexity), fitted on the
    table's real frames: two parameters per cut and codec over all rows, so replaying the same
    frames in the simulator hardly flatters it."""
    return fit_payloads(payload_samples(table, graph), table.model).payload_bytes


def build_world(model_name: str = "yolov3-tiny", input_size: int = 416, *, edge_profile: Path | None = None,
                cloud_profile: Path | None = None, cloud_speed_factor: float = DEFAULT_CLOUD_SPEED_FACTOR,
                edge_speed_factor: float = 1.0, frames_per_clip: int = 60, threads: int = 1,
                power: PowerModel = PowerModel(),
                policy_payloads: Callable[[VideoTable, LayerGraph], PayloadBytesFn] | None = None,
                bottlenecks: Sequence[str] = (), log=print, progress_factory=None) -> World:
    """Profiles (given files, or this host's measured edge profile and a cloud profile derived from
    it by ``cloud_speed_factor``), the video table, and the policies' cost model.

    ``edge_speed_factor`` != 1 derives the edge from the measured (or given) edge profile at that
    speed (0.25: an edge a quarter as fast, e.g. a Jetson-class CPU), labelled derived; the cloud is
    still derived from the measured profile, so its speed does not follow the edge's.

    ``policy_payloads(table, graph)`` makes the payload function the policies predict with;
    by default :func:`complexity_fit` (bytes linear in frame complexity, fitted on the table).

    ``bottlenecks``: learned bottleneck files the policies may choose; the policies predict the
    bytes per frame each file records, the simulator plays each frame's own (measured on the
    table's frames, :func:`video.with_bottlenecks`).
    """
    deployment = Deployment(model_name, input_size, edge_profile=edge_profile, edge_speed_factor=edge_speed_factor,
                            cloud_profile=cloud_profile, cloud_speed_factor=cloud_speed_factor, profile_threads=threads,
                            bottlenecks=tuple(bottlenecks))
    table = video_table(model_name, input_size, frames_per_clip, log=log, progress_factory=progress_factory)
    table = with_bottlenecks(table, bottlenecks, log=log) if bottlenecks else table
    policy_payloads = policy_payloads or complexity_fit
    graph = model_graph(model_name)
    policy_model, profile_sources = build_cost_model(deployment, policy_payloads(table, graph), power, log=log)
    sources = {
        **profile_sources,
        "video_table": {"note": table.note, "model": table.model, "clips": list(table.clips),
                        "frames": table.num_rows, "random_weights": table.random_weights},
        "power_model": {"active_w": power.active_w, "transmit_w": power.transmit_w, "idle_w": power.idle_w,
                        "source": power.source},
        "policy_payloads": getattr(policy_payloads, "__name__", str(policy_payloads)),
    }
    return World(str(model_name), policy_model.graph, policy_model.edge_profile, policy_model.cloud_profile, table,
                 policy_model, sources)
