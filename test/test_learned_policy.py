"""The learned (PPO) policy: training, the numpy export, the file format and its validation."""
import functools
import json
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from l2p_ros.cli import main
from l2p_ros.policies.learned import SCHEMA, LearnedPolicy, PolicyFileError
from l2p_ros.policies.registry import make_policy
from l2p_ros.policies.types import SystemState
from l2p_ros.simulation.scenarios import get_scenario
from l2p_ros.simulation.training import ExportMismatch, PpoConfig, train_ppo, verify_export
from test.simulation_fixtures import small_world

PAPER = get_scenario("l2p-paper")
TINY = PpoConfig(timesteps=2048, n_envs=2, n_steps=512, batch_size=256, n_epochs=2, episode_s=20.0)


@functools.lru_cache(maxsize=None)
def trained(ablation: str = "full"):
    """(numpy policy, the SB3 model it came from) after a tiny training run."""
    run = train_ppo(small_world(), PAPER, ablation, TINY, progress=False)
    return run.policy, run.model


@pytest.fixture(scope="module")
def policy_file(tmp_path_factory):
    return trained()[0].save(tmp_path_factory.mktemp("ppo") / "ppo-full")


def states(n: int, seed: int = 0) -> list[SystemState]:
    rng = np.random.default_rng(seed)
    return [SystemState(bandwidth_mbps=float(rng.uniform(0, 80)), rtt_ms=float(rng.uniform(5, 100)),
                        edge_load=float(rng.uniform()), edge_queue_length=int(rng.integers(0, 5)),
                        frame_complexity=float(rng.uniform())) for _ in range(n)]


def test_numpy_inference_equals_sb3_deterministic_predict():
    policy, model = trained()
    observations = np.random.default_rng(1).random((2000, policy.spec.size), dtype=np.float32)
    sb3_actions, _ = model.predict(observations, deterministic=True)
    assert np.array_equal(policy.actions(observations), sb3_actions)
    check = policy.metadata["training"]["verification"]
    assert check["same_action"] == check["observations"] > 4096 and check["max_abs_logit_diff"] < 1e-4


def test_a_wrong_export_is_refused():
    policy, model = trained()
    broken = LearnedPolicy(policy.spec, policy.weights[:-1] + [-policy.weights[-1]], policy.biases,
                           policy.activation, policy.candidates)
    with pytest.raises(ExportMismatch, match="disagrees"):
        verify_export(model, broken, np.random.default_rng(2).random((500, policy.spec.size), dtype=np.float32))


def test_saved_file_round_trips_and_records_provenance(policy_file):
    policy = trained()[0]
    loaded = LearnedPolicy.load(policy_file, num_layers=24)
    assert policy_file.suffix == ".npz" and policy_file.stat().st_size < 64_000
    assert loaded.name == "ppo" and loaded.candidates == policy.candidates and loaded.spec == policy.spec
    observations = np.random.default_rng(3).random((500, policy.spec.size), dtype=np.float32)
    assert np.array_equal(loaded.logits(observations), policy.logits(observations))
    training = loaded.metadata["training"]
    assert training["scenario"] == "l2p-paper" and training["ablation"] == "full"
    assert training["timesteps"] == 2048 and training["seed"] == 0 and training["wall_time_s"] > 0
    assert [c["label"] for c in loaded.metadata["candidates"]] == ["cloud", "3", "5", "7", "edge"]


def test_loaded_policy_decides_valid_partitions(policy_file):
    """Every decision is one of the file's candidates and a valid cut of the model; the loaded
    policy decides as the policy that was saved. How fast it decides is not asserted here (no timed
    assertions in tests): `l2p evaluate` records it per policy (``decide_ms_median`` in results.json)."""
    policy = make_policy(f"ppo:{policy_file}", small_world().policy_model)
    assert isinstance(policy, LearnedPolicy)
    graph = small_world().graph
    saved = trained()[0]
    for state in states(300):
        partition = policy.decide(state)
        assert partition in policy.candidates and partition == saved.decide(state)
        partition.to_cut(graph)  # fits the model


def test_ablations_really_drop_features():
    resource_only = trained("resource-only")[0]
    assert resource_only.name == "ppo-resource-only" and resource_only.spec.size == 4
    rng = np.random.default_rng(4)
    for state in states(50, seed=5):
        decisions = {resource_only.decide(SystemState(**{**vars(state), "frame_complexity": float(c)}))
                     for c in rng.uniform(size=8)}
        assert len(decisions) == 1
    # complexity-only: the link and the load do not matter, complexity does reach the network.
    complexity_only = trained("complexity-only")[0]
    state = states(1)[0]
    assert {complexity_only.decide(SystemState(bandwidth_mbps=b, edge_load=u, frame_complexity=0.3))
            for b in (0.5, 5, 50) for u in (0.0, 0.9)} == {complexity_only.decide(
                SystemState(bandwidth_mbps=100, frame_complexity=0.3))}
    low, high = (complexity_only.logits(complexity_only.spec.encode(SystemState(**{**vars(state),
                 "frame_complexity": c}))) for c in (0.0, 1.0))
    assert not np.allclose(low, high)


def _rewrite(path, out, metadata_change=None, arrays_change=None):
    with np.load(path, allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    metadata = json.loads(arrays["metadata"].tobytes())
    if metadata_change:
        metadata_change(metadata)
    arrays["metadata"] = np.frombuffer(json.dumps(metadata).encode(), dtype=np.uint8)
    if arrays_change:
        arrays_change(arrays)
    np.savez(out, **arrays)
    return out


@pytest.mark.parametrize("change, message", [
    (lambda m: m.update(schema="l2p-ppo-policy/9"), "schema"),
    (lambda m: m.pop("observation"), "bad metadata"),
    (lambda m: m["observation"].update(features=["bandwidth", "speed"]), "bad metadata"),
    (lambda m: m["network"].update(activation="gelu"), "activation"),
    (lambda m: m["network"].update(num_layers=2), "arrays"),
    (lambda m: m["candidates"].pop(), "logits for 4 candidate"),
    (lambda m: m["candidates"][0].update(cut_after_layer=-7), "bad metadata"),
    (lambda m: m["model"].update(num_layers=107), "107-layer model"),
    (lambda m: m.update(model="yolov3"), "bad metadata"),
    (lambda m: m["network"].update(sizes=[5, 64, 64, 6]), "network.sizes"),
])
def test_mismatched_metadata_is_rejected(policy_file, tmp_path, change, message):
    with pytest.raises(PolicyFileError, match=message):
        LearnedPolicy.load(_rewrite(policy_file, tmp_path / "bad.npz", change), num_layers=24)


@pytest.mark.parametrize("change, message", [
    (lambda a: a.update(weight_0=a["weight_0"][:, :-1]), "do not take"),
    (lambda a: a.update(bias_1=a["bias_1"][:-1]), "do not take"),
    (lambda a: a.update(weight_2=a["weight_2"].astype(np.float64)), "float32"),
    (lambda a: a.update(weight_1=np.float32(1.0)), "expected 2-D"),
    (lambda a: a["weight_1"].__setitem__((0, 0), np.nan), "NaN"),
    (lambda a: a.pop("bias_2"), "arrays"),
    (lambda a: a.update(extra=np.zeros(3, np.float32)), "arrays"),
    (lambda a: a.update(metadata=np.frombuffer(b"{not json", dtype=np.uint8)), "not JSON"),
    (lambda a: a.update(metadata=np.zeros(3, np.int32)), "metadata"),
])
def test_malformed_arrays_are_rejected(policy_file, tmp_path, change, message):
    with pytest.raises(PolicyFileError, match=message):
        LearnedPolicy.load(_rewrite(policy_file, tmp_path / "bad.npz", arrays_change=change))


def test_truncated_pickled_and_foreign_files_are_rejected(policy_file, tmp_path):
    data = policy_file.read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(data[: len(data) // 2])
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, metadata=np.array([{"schema": SCHEMA}], dtype=object))
    text = tmp_path / "policy.npz"
    text.write_text("schema: l2p-ppo-policy/2\n")
    for path in (truncated, pickled, text, tmp_path / "missing.npz"):
        with pytest.raises(PolicyFileError):
            LearnedPolicy.load(path)
    bomb = tmp_path / "bomb.npz"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("weight_0.npy", b"\0" * (20 * 2**20))
    with pytest.raises(PolicyFileError, match="unpacks to"):
        LearnedPolicy.load(bomb)


def test_cli_train_then_evaluate_with_ppo(tmp_path, capsys, monkeypatch):
    import l2p_ros.simulation.world as world_module

    # The small test world instead of the 60-frames-per-clip default; the CLI path is what is tested.
    monkeypatch.setattr(world_module, "build_world", lambda *args, **kwargs: small_world())
    out = tmp_path / "ppo-no-network.npz"
    assert main(["train-ppo", "--ablation", "no-network", "--timesteps", "2048", "--out", str(out)]) == 0
    assert "matches stable-baselines3" in capsys.readouterr().out
    metadata = LearnedPolicy.load(out).metadata
    assert metadata["training"]["command"].startswith("l2p train-ppo --scenario l2p-paper --ablation no-network")
    monkeypatch.setattr("l2p_ros.simulation.evaluation.build_world", lambda *args, **kwargs: small_world())
    assert main(["evaluate", "--minutes", "0.5", "--policies", "static-optimal,oracle", "--ppo",
                 f"{out},{out}", "--out", str(tmp_path / "eval")]) == 0
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert {"ppo-no-network", "ppo-no-network:ppo-no-network"} <= set(results["policies"])
    assert main(["train-ppo", "--ablation", "bogus", "--timesteps", "10", "--out", str(out)]) == 2


def test_training_charges_the_frame_costs_evaluation_charges():
    """A policy trained where encoding, decoding, complexity and deciding are free would meet them
    only when evaluated or deployed: training charges the committed frame costs by default, the
    same rollouts cost more, and the file says which costs its world had. Training leaves no log
    folder behind (SB3 makes one in the temporary directory unless given a logger)."""
    sb3_folders = set(Path(tempfile.gettempdir()).glob("SB3-*"))
    charged = train_ppo(small_world(), PAPER, "full", TINY, progress=False).policy.metadata["training"]
    free = train_ppo(small_world(), PAPER, "full", TINY, frame_costs=None, progress=False).policy.metadata["training"]
    assert charged["world"]["frame_costs"]["charged"] and not free["world"]["frame_costs"]["charged"]
    assert set(Path(tempfile.gettempdir()).glob("SB3-*")) == sb3_folders
    assert charged["world"]["frame_costs"]["file"].startswith("models/profiles/frame-costs-yolov3-tiny-")
    assert charged["world"]["image_codec"] == PAPER.image_codec
    # The same seed samples the same first actions: the first rollout differs by the costs alone.
    per_frame = charged["world"]["frame_costs"]["per_frame_ms"]
    assert charged["curve"][0]["mean_latency_ms"] >= free["curve"][0]["mean_latency_ms"] + sum(per_frame.values())
