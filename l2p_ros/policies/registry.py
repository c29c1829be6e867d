"""Policies by name, as the partitioner node's ``policy`` parameter and ``l2p run --policy`` name them."""
from __future__ import annotations

from pathlib import Path

from l2p_ros.measure.profile import ProfileError
from l2p_ros.model.graph import INPUT
from l2p_ros.policies.baselines import CloudOnly, EdgeOnly, FixedCut, Greedy, StaticOptimal
from l2p_ros.policies.cost_model import CostModel
from l2p_ros.policies.dads import DadsPolicy
from l2p_ros.policies.heuristic import HeuristicPolicy
from l2p_ros.policies.learned import LearnedPolicy
from l2p_ros.policies.score import ScorePolicy, ScoreWeights
from l2p_ros.policies.types import Partition, Policy, SystemState

# ``greedy`` searches every chain cut (Neurosurgeon); ``dnnsplit`` is the same cost model over the
# DNNSplit candidates only; ``fixed:K`` always cuts after layer K; ``heuristic`` moves the cut by
# bandwidth thresholds derived at ``nominal``; ``score`` weighs energy and latency under a cap over
# two- and three-tier cuts (three only when the cost model has a fog); ``ppo:FILE`` loads a trained
# policy file (``l2p train-ppo``), which brings its own candidate partitions and codecs.
POLICY_NAMES = ("edge-only", "cloud-only", "fixed:K", "static-optimal", "heuristic", "greedy", "dnnsplit",
                "dads", "dads-light", "dads-heavy", "score", "ppo:FILE")
NOMINAL_STATE = SystemState(bandwidth_mbps=20.0, rtt_ms=20.0, edge_load=0.0, frame_complexity=0.5)
# Policies that weigh the tensor codec at every cut they consider.
SEARCHING_POLICIES = ("static-optimal", "heuristic", "greedy", "dnnsplit", "dads", "dads-light", "dads-heavy", "score")


def check_tensor_codec(policy: str, codec: str) -> None:
    """ValueError when ``codec`` cannot be the tensor codec of ``policy``: a learned bottleneck
    (``bn:``) exists at its own cut only, so a policy that searches cuts would ask it for the
    others' sizes (it crashed greedy's first decision); such a policy is offered it through the
    partitioner's ``bottlenecks`` instead."""
    if codec.startswith("bn:") and policy in SEARCHING_POLICIES:
        raise ValueError(f"codec {codec} is a learned bottleneck, usable at its own cut only: run it with "
                         f"policy fixed:<its cut>, or name it in the partitioner's bottlenecks (all nodes' "
                         f"bottlenecks parameter) so that {policy} can choose it")


def check_image_codec(cost_model: CostModel, image_codec: str) -> None:
    """ValueError when ``cost_model`` cannot say how many bytes ``image_codec`` sends, which a
    searching policy weighs on every frame: the edge profile measures only jpeg-q75, jpeg-full-q75
    and the raw image; a payload fit measures any image codec asked of it."""
    try:
        cost_model.payload_bytes(cost_model.chain_cut(INPUT), image_codec, 0.5)
    except ProfileError as error:
        raise ValueError(f"image codec {image_codec}: {error}; a payload fit (the partitioner's "
                         f"payload_fit: auto) measures it") from None


def check_policy_name(name: str) -> None:
    """Without a model: ValueError when :func:`make_policy` knows no policy ``name``,
    FileNotFoundError when a ``ppo:FILE`` names no file."""
    kind, _, argument = name.partition(":")
    if kind == "ppo" and argument:
        if not Path(argument).is_file():
            raise FileNotFoundError(f"policy file {argument} not found")
    elif not (kind == "fixed" and argument) and name not in POLICY_NAMES:
        raise ValueError(_unknown(name))


def _unknown(name: str) -> str:
    return f"unknown policy {name!r}; known: {', '.join(POLICY_NAMES)}"


def make_policy(name: str, cost_model: CostModel, *, codec: str = "fp32", image_codec: str = "jpeg-q75",
                frame_interval_ms: float = 100.0, nominal: SystemState = NOMINAL_STATE,
                score_weights: ScoreWeights = ScoreWeights(), max_latency_ms: float | None = None,
                period_frames: int = 10) -> Policy:
    """Build the policy called ``name``; ValueError naming the known policies otherwise.

    ``score`` only: ``score_weights``, ``max_latency_ms`` (default ``frame_interval_ms``: a frame
    should be done before the next one arrives) and ``period_frames`` (re-evaluation period).
    """
    check_tensor_codec(name, codec)
    if name in SEARCHING_POLICIES:
        check_image_codec(cost_model, image_codec)
    num_layers = cost_model.num_layers
    if name == "edge-only":
        return EdgeOnly(num_layers)
    if name == "cloud-only":
        return CloudOnly(image_codec)
    if name.startswith("fixed:"):
        return _fixed(name, num_layers, codec, image_codec)
    if name == "static-optimal":
        return StaticOptimal(cost_model, nominal, codec=codec, image_codec=image_codec)
    if name == "heuristic":
        return HeuristicPolicy(cost_model, nominal, codec=codec, image_codec=image_codec)
    if name == "score":
        cap_ms = frame_interval_ms if max_latency_ms is None else max_latency_ms
        return ScorePolicy(cost_model, cap_ms, score_weights, period_frames, codec=codec, image_codec=image_codec)
    if name == "greedy":
        return Greedy(cost_model, candidates=range(INPUT, num_layers), codec=codec, image_codec=image_codec)
    if name == "dnnsplit":
        policy = Greedy(cost_model, codec=codec, image_codec=image_codec)
        policy.name = "dnnsplit"
        return policy
    if name.startswith("ppo:"):
        return LearnedPolicy.load(name.split(":", 1)[1], num_layers)
    if name in ("dads", "dads-light", "dads-heavy"):
        mode = {"dads": "auto", "dads-light": "light", "dads-heavy": "heavy"}[name]
        policy = DadsPolicy(cost_model, frame_interval_ms, mode, codec, image_codec)
        policy.name = name
        return policy
    raise ValueError(_unknown(name))


def _fixed(name: str, num_layers: int, codec: str, image_codec: str) -> Policy:
    """``fixed:K`` (two tiers) or ``fixed:K:J`` (layers K+1..J on a fog tier, which finishes the
    network itself when J is the last layer); K may be edge or cloud, J last (``fixed:cloud:last``:
    the image to the fog, which runs everything)."""
    parts = name.split(":")[1:]

    def layer(value: str) -> int:
        cut = {"edge": num_layers - 1, "last": num_layers - 1, "cloud": INPUT}.get(value)
        if cut is None:
            if not value.lstrip("-").isdigit() or not INPUT <= int(value) < num_layers:
                raise ValueError(f"policy {name!r}: a cut must be 'edge', 'cloud', 'last' or -1..{num_layers - 1}")
            cut = int(value)
        return cut

    if not 1 <= len(parts) <= 2:
        raise ValueError(f"policy {name!r}: expected fixed:K or fixed:K:J")
    cut = layer(parts[0])
    fog = layer(parts[1]) if len(parts) == 2 else None
    if fog is not None and not cut < fog <= num_layers - 1:
        raise ValueError(f"policy {name!r}: the fog range must end after the edge cut")
    if fog is None:
        partition = Partition.image_offload(image_codec) if cut == INPUT else Partition.chain(cut, codec)
    else:
        partition = Partition(cut_after_layer=cut, fog_until_layer=fog,
                              codec=image_codec if cut == INPUT else codec)
    policy = FixedCut(partition)
    policy.name = name
    return policy
