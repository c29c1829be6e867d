"""The learning-to-partition gymnasium environment."""
import warnings

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from l2p_ros.policies.types import SystemState
from l2p_ros.simulation.env import PartitionEnv
from l2p_ros.policies.observation import ABLATIONS, ObservationSpec
from l2p_ros.simulation.scenarios import get_scenario
from test.simulation_fixtures import small_world

PAPER = get_scenario("l2p-paper")


@pytest.mark.parametrize("ablation", ABLATIONS)
def test_env_passes_the_gymnasium_checker(ablation):
    env = PartitionEnv(small_world(), PAPER, observation=ablation, episode_s=10.0)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*render.*")  # no render modes: nothing to render
        check_env(env, skip_render_check=True)
    assert env.observation_space.shape == (len(ABLATIONS[ablation]),)


def test_random_agent_episode():
    env = PartitionEnv(small_world(), PAPER, episode_s=30.0)
    assert [p.name(24) for p in env.candidates] == ["cloud", "3", "5", "7", "edge"]  # DNNSplit's
    env.action_space.seed(0)
    observation, _ = env.reset(seed=0)
    steps = skipped = 0
    rewards = []
    truncated = False
    while not truncated:
        assert env.observation_space.contains(observation)
        observation, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert not terminated and np.isfinite(reward) and reward < 0
        steps, skipped = steps + 1, skipped + info["skipped"]
        rewards.append(reward)
    assert steps + skipped == env.simulator.num_frames == 300
    with pytest.raises(RuntimeError):
        env.step(0)
    # The same seed replays the same episode.
    env.reset(seed=0)
    env.action_space.seed(0)
    again = [env.step(env.action_space.sample())[1] for _ in range(50)]
    assert again == rewards[:50]


def test_reward_penalises_misses_and_skips():
    env = PartitionEnv(small_world(), PAPER, episode_s=5.0)
    env.reset(seed=1)
    _, reward, _, _, info = env.step(0)
    expected = -info["latency_ms"] / PAPER.deadline_ms - info["deadline_miss"] - 2 * info["skipped"]
    assert reward == pytest.approx(expected)


def test_observation_is_normalised_and_ablations_drop_features():
    state = SystemState(bandwidth_mbps=500.0, rtt_ms=20.0, edge_load=0.3, edge_queue_length=2, frame_complexity=0.6)
    full = ObservationSpec().encode(state)
    assert full.dtype == np.float32 and full.tolist() == pytest.approx([0.3, 0.5, 1.0, 0.1, 0.6])
    assert ObservationSpec.ablation("resource-only").encode(state).tolist() == pytest.approx([0.3, 0.5, 1.0, 0.1])
    assert ObservationSpec.ablation("no-network").encode(state).tolist() == pytest.approx([0.3, 0.5, 0.6])
    assert ObservationSpec.ablation("complexity-only").encode(state).tolist() == pytest.approx([0.6])
    spec = ObservationSpec.ablation("no-network")
    assert ObservationSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ValueError):
        ObservationSpec(("bandwidth", "speed"))
