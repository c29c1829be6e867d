"""Named evaluation scenarios: how the link, the edge load and the video evolve, and the frame rate,
deadline and codecs a run uses. Each scenario draws a fresh instance from a seed.

- ``l2p-paper``: the learning-to-partition paper's 30-minute setup. Uplink bandwidth fluctuating
  over 5-50 Mbit/s (AR(1) in log bandwidth, correlation 15 s, 1 s samples); RTT 20 ms with 3 ms
  AR(1) jitter; edge load 0.1 with bursts of 0.5-0.85 lasting 5-20 s about every 45 s; scenes
  alternating between high-complexity (vtest.avi, a busy street) and low-complexity
  (Megamind.avi, an animated film) real footage, 5 s + an exponential of mean 25 s each.
- ``three-tier-throttle``: the throttling test of the adaptive three-tier work. The link runs at
  30-50 Mbit/s, is throttled to 5 Mbit/s for the middle third of the run, then restored; light
  steady edge load (0.1); the busy street throughout. Default 3 minutes. Three tiers: the
  throttled link is the edge -> fog link; a fog (:class:`FogTier`: a profile derived from the edge
  profile at 4x its speed, labelled derived) runs a middle range of layers or forwards the payload,
  over a nominal 1000 Mbit/s, 5 ms RTT fog -> cloud link (constant). Besides the default policies
  it evaluates the fixed three-tier split ``fixed:7:13``; ``score`` then searches (i, j) pairs.

- ``three-tier-backhaul``: the case a fog is for. The vehicle reaches a nearby fog (a roadside or
  base-station server, derived at 4x the edge) over a good link, 20-100 Mbit/s fluctuating, RTT
  5 ms +- 1 ms, but the fog's backhaul to the cloud is slow: a constant 10 Mbit/s, 50 ms RTT
  (nominal, not a measurement); the paper's edge-load bursts and scenes. Default 10 minutes.
  Besides the default policies it evaluates ``fixed:cloud:last`` (the image to the fog, which
  finishes the network).

All run at 10 frames/s with a 100 ms deadline, tensors as ``int8-channel+zstd`` (the live
pipeline's default codec) and images as ``jpeg-q75``. A trace file gives a scenario of its own
(:func:`trace_scenario`): its link and load, the paper's scenes.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from l2p_ros.simulation import traces
from l2p_ros.simulation.traces import Trace
from l2p_ros.simulation.video import DEFAULT_CLIPS, HIGH_COMPLEXITY_CLIP, alternating_scenes

Scenes = list[tuple[float, str]]  # (start_s, clip), the first at 0


@dataclass(frozen=True)
class FogTier:
    """A fog tier between the edge and the cloud: its profile is the edge profile derived at
    ``speed_factor`` times its speed (labelled derived), it encodes what it sends on with
    ``codec`` (None: the scenario's tensor codec), and its link to the cloud is constant at
    ``cloud_bandwidth_mbps`` and ``cloud_rtt_ms`` (nominal wired backhaul, not a measurement)."""

    speed_factor: float = 4.0
    cloud_bandwidth_mbps: float = 1000.0
    cloud_rtt_ms: float = 5.0
    codec: str | None = None

    def __post_init__(self) -> None:
        if self.speed_factor <= 0 or self.cloud_bandwidth_mbps <= 0 or self.cloud_rtt_ms < 0:
            raise ValueError(f"need speed_factor > 0, cloud_bandwidth_mbps > 0, cloud_rtt_ms >= 0: {self}")


@dataclass(frozen=True)
class Scenario:
    """``make_trace(duration_s, rng)`` and ``make_scenes(duration_s, rng)`` draw one instance.
    ``fog``: a three-tier deployment (the trace's link is then edge -> fog); ``extra_policies``:
    registry names evaluated besides the default set when no policies are named."""

    name: str
    description: str
    minutes: float
    make_trace: Callable[[float, np.random.Generator], Trace]
    make_scenes: Callable[[float, np.random.Generator], Scenes]
    fps: float = 10.0
    deadline_ms: float = 100.0
    codec: str = "int8-channel+zstd"
    image_codec: str = "jpeg-q75"
    fog: FogTier | None = None
    extra_policies: tuple[str, ...] = ()

    @property
    def fog_codec(self) -> str | None:
        """The codec of the fog -> cloud crossing (None in two tiers)."""
        return None if self.fog is None else (self.fog.codec or self.codec)


def _fluctuating_trace(name: str, link: str, low_mbps: float, high_mbps: float, rtt_ms: float,
                       rtt_jitter_ms: float) -> Callable[[float, np.random.Generator], Trace]:
    """The paper's kind of trace: an AR(1) link in log bandwidth (correlation 15 s), a jittered
    RTT and edge-load bursts, drawn in that order from the scenario's generator."""
    def make_trace(duration_s: float, rng: np.random.Generator) -> Trace:
        t = traces.time_grid(duration_s, 1.0)
        return Trace(t, traces.fluctuating_mbps(t, rng, low_mbps, high_mbps, correlation_s=15.0),
                     traces.jittered_rtt_ms(t, rng, rtt_ms, rtt_jitter_ms), traces.load_bursts(t, rng),
                     note=f"simulated ({name}): {link} AR(1) in log over {low_mbps:g}-{high_mbps:g} Mbit/s, "
                          f"correlation 15 s; RTT {rtt_ms:g} ms +- {rtt_jitter_ms:g} ms; edge load 0.1 with bursts "
                          "0.5-0.85 for 5-20 s every ~45 s")
    return make_trace


def _paper_scenes(duration_s: float, rng: np.random.Generator) -> Scenes:
    return alternating_scenes(duration_s, rng, DEFAULT_CLIPS, mean_scene_s=30.0, min_scene_s=5.0)


def _throttle_trace(duration_s: float, rng: np.random.Generator) -> Trace:
    t = traces.time_grid(duration_s, 1.0)
    normal = traces.fluctuating_mbps(t, rng, 30.0, 50.0, correlation_s=10.0)
    throttle = traces.throttled_mbps(t, np.inf, 5.0, duration_s / 3, 2 * duration_s / 3)
    load = np.clip(0.1 + 0.03 * rng.standard_normal(len(t)), 0.0, 1.0)
    return Trace(t, np.minimum(normal, throttle), traces.jittered_rtt_ms(t, rng, 20.0, 3.0), load,
                 note="simulated (three-tier-throttle): edge -> fog link 30-50 Mbit/s, throttled to 5 Mbit/s for the "
                      "middle third, then restored; RTT 20 ms +- 3 ms; edge load 0.1")


SCENARIOS: dict[str, Scenario] = {
    "l2p-paper": Scenario(
        "l2p-paper", "5-50 Mbit/s fluctuating link, edge load bursts, scenes switching between "
        "low and high complexity (learning-to-partition paper's setup)", 30.0,
        _fluctuating_trace("l2p-paper", "bandwidth", 5.0, 50.0, 20.0, 3.0), _paper_scenes),
    "three-tier-throttle": Scenario(
        "three-tier-throttle", "link throttled to 5 Mbit/s for the middle third, then restored "
        "(adaptive three-tier work's test)", 3.0, _throttle_trace,
        lambda duration_s, rng: [(0.0, HIGH_COMPLEXITY_CLIP)], fog=FogTier(),
        extra_policies=("fixed:7:13",)),
    "three-tier-backhaul": Scenario(
        "three-tier-backhaul", "a nearby fog over a 20-100 Mbit/s link, a slow 10 Mbit/s, 50 ms backhaul from "
        "the fog to the cloud, edge load bursts, the paper's scenes", 10.0,
        _fluctuating_trace("three-tier-backhaul", "edge -> fog link", 20.0, 100.0, 5.0, 1.0), _paper_scenes,
        fog=FogTier(cloud_bandwidth_mbps=10.0, cloud_rtt_ms=50.0), extra_policies=("fixed:cloud:last",)),
}


def trace_scenario(path: str | Path) -> Scenario:
    """A scenario replaying a trace file (its length by default) with the paper's scenes."""
    trace = traces.load_trace(path)
    return Scenario(f"trace:{Path(path).name}", f"trace file {path}", max(trace.duration_s / 60, 1 / 60),
                    lambda duration_s, rng: trace, _paper_scenes)


def get_scenario(name: str) -> Scenario:
    try:
        return SCENARIOS[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}") from None
