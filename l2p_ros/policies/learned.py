"""A trained partitioning policy (PPO, learning to partition) run in plain numpy.

The network was trained with stable-baselines3 (``l2p_ros.simulation.training``); deciding needs
neither it nor torch: observation (:class:`ObservationSpec`) -> MLP -> argmax of the logits ->
one of the candidate partitions the policy was trained over.

File format (``schema: l2p-ppo-policy/2``): one ``.npz`` (zip of ``.npy`` arrays, read with
``allow_pickle=False``) holding

- ``metadata``: uint8, the UTF-8 bytes of a JSON object: ``schema``; ``name`` (the report name,
  ``ppo`` or ``ppo-<ablation>``, for readers: loading derives it from the observation);
  ``observation`` (:meth:`ObservationSpec.to_dict`); ``network`` (``activation``: ``tanh`` or
  ``relu``, ``num_layers``, ``sizes``: inputs then each layer's outputs); ``candidates`` (one
  object per action: ``cut_after_layer``, ``edge_layers``, ``fog_until_layer``, ``codec``,
  ``label``); ``model`` (``name``, ``num_layers``); ``training`` (free-form provenance: scenario,
  ablation, timesteps, seed, wall time, command, hyperparameters, learning curve, verification);
- ``weight_i``, ``bias_i`` for i = 0..num_layers-1: float32 dense layers, ``weight_i`` of shape
  (out, in) as in ``torch.nn.Linear``; ``activation`` follows every layer but the last.

The file may come from elsewhere, so nothing is unpickled and everything is checked (schema,
sizes, shapes, dtypes, finiteness, candidates) with a :class:`PolicyFileError` naming the problem.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Sequence

import numpy as np

from l2p_ros.codec_spec import full_size_name
from l2p_ros.policies.types import Partition, Policy, SystemState
from l2p_ros.policies.observation import ABLATIONS, ObservationSpec

SCHEMA = "l2p-ppo-policy/2"
# Version 1 policies were trained before network-resolution image offload: the image they learned
# to send (``jpeg-qN`` then) is the camera-size one, ``jpeg-full-qN`` now. Read with that name.
SCHEMA_V1 = "l2p-ppo-policy/1"
ACTIVATIONS = {"tanh": np.tanh, "relu": lambda x: np.maximum(x, 0.0)}
MAX_FILE_BYTES = 16 * 2**20  # a [64, 64] policy is ~25 KB; anything near this is not one
MAX_LAYERS = 16
MAX_WIDTH = 4096


class PolicyFileError(ValueError):
    """A policy file that cannot be used: unreadable, another schema, or inconsistent."""


def policy_name(spec: ObservationSpec) -> str:
    """``ppo`` for the full observation, ``ppo-<ablation>`` for an ablation's, else the features."""
    for ablation, features in ABLATIONS.items():
        if spec.features == features:
            return "ppo" if ablation == "full" else f"ppo-{ablation}"
    return "ppo-" + "+".join(spec.features)


def partition_to_dict(partition: Partition, num_layers: int | None = None) -> dict:
    """The fields of ``partition``, and its label (``cloud``, ``7``, ``edge``) when ``num_layers`` is known."""
    data = {"cut_after_layer": partition.cut_after_layer,
            "edge_layers": sorted(partition.edge_layers) if partition.edge_layers is not None else None,
            "fog_until_layer": partition.fog_until_layer, "codec": partition.codec}
    return data if num_layers is None else {**data, "label": partition.name(num_layers)}


def partition_from_dict(data: dict) -> Partition:
    edge_layers = data.get("edge_layers")
    return Partition(cut_after_layer=data.get("cut_after_layer"),
                     edge_layers=frozenset(int(i) for i in edge_layers) if edge_layers is not None else None,
                     fog_until_layer=data.get("fog_until_layer"), codec=str(data["codec"]))


class LearnedPolicy(Policy):
    """Decides with a trained MLP: ``candidates[argmax(mlp(spec.encode(state)))]``.

    ``weights[i]`` (out, in) and ``biases[i]`` (out,) are the dense layers, ``activation`` between
    them; the first takes ``spec.size`` inputs, the last gives one logit per candidate.
    ``metadata`` is the file's JSON (training provenance). ``name`` is ``ppo`` or ``ppo-<ablation>``.
    """

    name = "ppo"

    def __init__(self, spec: ObservationSpec, weights: Sequence[np.ndarray], biases: Sequence[np.ndarray],
                 activation: str, candidates: Sequence[Partition], metadata: dict | None = None):
        if activation not in ACTIVATIONS:
            raise PolicyFileError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        if not weights or len(weights) != len(biases):
            raise PolicyFileError(f"need as many weights as biases (>= 1), got {len(weights)} and {len(biases)}")
        inputs = spec.size
        for i, (w, b) in enumerate(zip(weights, biases)):
            if w.ndim != 2 or w.shape[1] != inputs or b.shape != (w.shape[0],):
                raise PolicyFileError(f"layer {i}: weight {w.shape} and bias {b.shape} do not take "
                                      f"{inputs} inputs (expected weight (out, {inputs}), bias (out,))")
            inputs = w.shape[0]
        if inputs != len(candidates):
            raise PolicyFileError(f"the network gives {inputs} logits for {len(candidates)} candidate partitions")
        self.spec = spec
        self.weights = [np.asarray(w, dtype=np.float32) for w in weights]
        self.biases = [np.asarray(b, dtype=np.float32) for b in biases]
        self.activation = activation
        self._act = ACTIVATIONS[activation]
        self.candidates = list(candidates)
        self.metadata = metadata or {}
        self.name = policy_name(spec)

    def logits(self, observations: np.ndarray) -> np.ndarray:
        """Logits (N, candidates) of observations (N, spec.size), float32 like the trained network."""
        x = np.asarray(observations, dtype=np.float32)
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = x @ w.T + b
            if i < last:
                x = self._act(x)
        return x

    def actions(self, observations: np.ndarray) -> np.ndarray:
        """Candidate indices (N,) the policy picks for observations (N, spec.size)."""
        return np.argmax(self.logits(observations), axis=-1)

    def decide(self, state: SystemState) -> Partition:
        return self.candidates[int(np.argmax(self.logits(self.spec.encode(state))))]

    def save(self, path: Path | str) -> Path:
        """Write the policy file (``.npz``; the suffix is added when missing)."""
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_name(path.name + ".npz")
        num_layers = self.metadata.get("model", {}).get("num_layers")
        metadata = {
            **self.metadata,
            "schema": SCHEMA,
            "name": self.name,
            "observation": self.spec.to_dict(),
            "network": {"activation": self.activation, "num_layers": len(self.weights),
                        "sizes": [self.spec.size] + [w.shape[0] for w in self.weights]},
            "candidates": [partition_to_dict(p, num_layers) for p in self.candidates],
        }
        arrays = {"metadata": np.frombuffer(json.dumps(metadata, indent=1).encode(), dtype=np.uint8)}
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            arrays[f"weight_{i}"], arrays[f"bias_{i}"] = w, b
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, **arrays)
        return path

    @classmethod
    def load(cls, path: Path | str, num_layers: int | None = None) -> LearnedPolicy:
        """Read and validate a policy file; ``num_layers``: the model it must fit (checked when given).

        Raises :class:`PolicyFileError` (a ValueError) for anything wrong with the file.
        """
        path = Path(path)
        if not path.is_file():
            raise PolicyFileError(f"{path}: no such policy file")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise PolicyFileError(f"{path}: {path.stat().st_size} bytes, more than a policy file "
                                  f"may hold ({MAX_FILE_BYTES})")
        try:
            with zipfile.ZipFile(path) as archive:  # sizes before decompressing: no zip bombs
                unpacked = sum(info.file_size for info in archive.infolist())
            if unpacked > MAX_FILE_BYTES:
                raise PolicyFileError(f"{path}: unpacks to {unpacked} bytes, more than {MAX_FILE_BYTES}")
            with np.load(path, allow_pickle=False) as npz:
                arrays = {key: npz[key] for key in npz.files}
        except PolicyFileError:
            raise
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError) as error:
            raise PolicyFileError(f"{path}: not a readable .npz policy file ({error})") from error
        try:
            return cls._from_arrays(arrays, num_layers)
        except PolicyFileError as error:
            raise PolicyFileError(f"{path}: {error}") from None

    @classmethod
    def _from_arrays(cls, arrays: dict[str, np.ndarray], num_layers: int | None) -> LearnedPolicy:
        raw = arrays.get("metadata")
        if raw is None or raw.dtype != np.uint8 or raw.ndim != 1:
            raise PolicyFileError("no 'metadata' (uint8 JSON bytes) array")
        try:
            metadata = json.loads(raw.tobytes().decode())
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise PolicyFileError(f"metadata is not JSON ({error})") from None
        if not isinstance(metadata, dict):
            raise PolicyFileError("metadata must be a JSON object")
        if metadata.get("schema") not in (SCHEMA, SCHEMA_V1):
            raise PolicyFileError(f"schema {metadata.get('schema')!r}, this version reads {SCHEMA!r}")
        try:
            spec = ObservationSpec.from_dict(metadata["observation"])
            network = metadata["network"]
            depth = int(network["num_layers"])
            activation = str(network["activation"])
            if metadata["schema"] == SCHEMA_V1:
                metadata = {**metadata, "schema": SCHEMA, "candidates": [
                    {**c, "codec": full_size_name(c["codec"])} for c in metadata["candidates"]]}
            candidates = [partition_from_dict(c) for c in metadata["candidates"]]
            model = dict(metadata.get("model") or {})
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise PolicyFileError(f"bad metadata: {type(error).__name__}: {error}") from None
        if not 1 <= depth <= MAX_LAYERS:
            raise PolicyFileError(f"network.num_layers must be 1..{MAX_LAYERS}, got {depth}")
        expected = {"metadata"} | {f"{kind}_{i}" for i in range(depth) for kind in ("weight", "bias")}
        if set(arrays) != expected:
            raise PolicyFileError(f"arrays {sorted(arrays)}, expected {sorted(expected)}")
        weights, biases = [], []
        for i in range(depth):
            for kind, target in (("weight", weights), ("bias", biases)):
                array = arrays[f"{kind}_{i}"]
                ndim = 2 if kind == "weight" else 1
                if array.dtype != np.float32 or array.ndim != ndim or max(array.shape) > MAX_WIDTH:
                    raise PolicyFileError(f"{kind}_{i}: {array.dtype} {array.shape}, expected {ndim}-D "
                                          f"float32 with dimensions <= {MAX_WIDTH}")
                if not np.all(np.isfinite(array)):
                    raise PolicyFileError(f"{kind}_{i} holds NaN or infinity")
                target.append(array)
        sizes = [spec.size] + [w.shape[0] for w in weights]
        if network.get("sizes", sizes) != sizes:
            raise PolicyFileError(f"network.sizes {network['sizes']} but the arrays have {sizes}")
        if num_layers is not None:
            if model.get("num_layers") not in (None, num_layers):
                raise PolicyFileError(f"trained for a {model.get('num_layers')}-layer model "
                                      f"({model.get('name')}), used with a {num_layers}-layer one")
            for p in candidates:
                last = max(p.edge_set(), default=-1)
                if last >= num_layers or (p.fog_until_layer or -1) >= num_layers:
                    raise PolicyFileError(f"candidate {p} does not fit a {num_layers}-layer model")
        return cls(spec, weights, biases, activation, candidates, metadata)
