"""Learning to partition as a gymnasium environment: one step is one frame of the simulator.

- Observation: :class:`ObservationSpec` of the state the monitors ESTIMATE (edge load and
  queue, bandwidth and RTT estimates, frame complexity), float32 in [0, 1]; ablations keep
  fewer features (``ObservationSpec.ablation("resource-only")`` and so on).
- Action: ``Discrete(len(candidates))``, an index into :attr:`PartitionEnv.candidates`, by
  default DNNSplit's candidate cuts with image offload and edge only, tensors in the scenario's
  codec and images in its image codec.
- Reward: ``-latency / deadline`` (latency capped at ``latency_cap_deadlines`` deadlines: a dead
  link would give infinity), minus ``miss_penalty`` when the frame missed its deadline, minus
  ``skip_penalty`` per frame skipped before the next decision (they were skipped because
  earlier choices filled the vehicle queue).
- Episode: each reset draws a new instance of the scenario (trace, scenes, estimator noise)
  from the env's random generator, ``episode_s`` seconds long; it ends truncated (a time limit:
  the task itself goes on).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from l2p_ros.policies.types import Partition
from l2p_ros.policies.observation import ObservationSpec
from l2p_ros.simulation.scenarios import Scenario
from l2p_ros.simulation.simulator import FrameOutcome, SimulationConfig, Simulator
from l2p_ros.simulation.world import World


@dataclass(frozen=True)
class RewardConfig:
    miss_penalty: float = 1.0
    skip_penalty: float = 2.0
    latency_cap_deadlines: float = 10.0

    def reward(self, outcome: FrameOutcome, deadline_ms: float) -> float:
        latency = min(outcome.latency_ms / deadline_ms, self.latency_cap_deadlines)
        return -latency - self.miss_penalty * outcome.deadline_miss - self.skip_penalty * outcome.skipped_after


class PartitionEnv(gym.Env):
    """Choose each frame's partition in ``scenario`` simulated on ``world``."""

    metadata = {"render_modes": []}

    def __init__(self, world: World, scenario: Scenario, *, observation: ObservationSpec | str = "full",
                 candidates: Sequence[Partition] | None = None, episode_s: float = 120.0,
                 reward: RewardConfig = RewardConfig(), config: SimulationConfig | None = None):
        self.world = world
        self.scenario = scenario
        self.observation_spec = ObservationSpec.ablation(observation) if isinstance(observation, str) else observation
        self.candidates = list(candidates or world.candidates(scenario.codec, scenario.image_codec))
        self.episode_s = episode_s
        self.reward_config = reward
        self.config = config or SimulationConfig(fps=scenario.fps, deadline_ms=scenario.deadline_ms)
        self.observation_space = spaces.Box(0.0, 1.0, (self.observation_spec.size,), np.float32)
        self.action_space = spaces.Discrete(len(self.candidates))
        self.simulator: Simulator | None = None
        self._observation = np.zeros(self.observation_spec.size, dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        episode_seed = int(self.np_random.integers(2**63 - 1))
        self.simulator = self.world.simulator(self.scenario, self.episode_s, episode_seed, self.config)
        self._observation = self.observation_spec.encode(self.simulator.pending.estimated_state)
        return self._observation, {"time_s": self.simulator.pending.time_s}

    def step(self, action):
        if self.simulator is None or self.simulator.done:
            raise RuntimeError("call reset() before step() and after an episode ends")
        if not self.action_space.contains(action):
            raise ValueError(f"action {action!r} is not in {self.action_space}")
        outcome = self.simulator.step(self.candidates[int(action)])
        reward = self.reward_config.reward(outcome, self.config.deadline_ms)
        truncated = self.simulator.done
        if not truncated:  # at the end the last observation stands: there is no next frame
            self._observation = self.observation_spec.encode(self.simulator.pending.estimated_state)
        info = {"latency_ms": outcome.latency_ms, "deadline_miss": outcome.deadline_miss,
                "skipped": outcome.skipped_after, "edge_energy_j": outcome.edge_energy_j,
                "partition": outcome.partition.name(self.world.graph.num_layers)}
        return self._observation, float(reward), False, truncated, info
