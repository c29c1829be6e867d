"""Shared by the simulation tests: a small real world (this host's measured yolov3-tiny profile,
a 3-frames-per-clip video table of real frames, both cached) and scenarios with constant
conditions."""
from __future__ import annotations

import functools

import numpy as np

from l2p_ros.simulation.scenarios import Scenario
from l2p_ros.simulation.traces import Trace
from l2p_ros.simulation.video import HIGH_COMPLEXITY_CLIP
from l2p_ros.simulation.world import World, build_world

FRAMES_PER_CLIP = 3  # a few real frames keep the first (uncached) run short


@functools.lru_cache(maxsize=None)
def small_world() -> World:
    return build_world("yolov3-tiny", frames_per_clip=FRAMES_PER_CLIP, log=lambda *args: None)


def constant_scenario(bandwidth_mbps: float, edge_load: float = 0.0, rtt_ms: float = 20.0,
                      fps: float = 10.0) -> Scenario:
    """The busy street under fixed link and load."""
    def trace(duration_s, rng):
        times = np.array([0.0, duration_s])
        return Trace(times, np.full(2, bandwidth_mbps), np.full(2, rtt_ms), np.full(2, edge_load), "constant")

    return Scenario(f"constant-{bandwidth_mbps}", "constant conditions", 1.0, trace,
                    lambda duration_s, rng: [(0.0, HIGH_COMPLEXITY_CLIP)], fps=fps)
