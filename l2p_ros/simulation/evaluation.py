"""Run policies through one scenario instance and summarise each run (``l2p evaluate``).

Every policy sees the same trace, scenes and estimator noise (same seed); only its decisions
differ. Policies come from ``l2p_ros.policies.registry`` by name; ``oracle`` is built here
because it needs the simulator's true cost model; ``best-fixed`` is the best single candidate
partition in hindsight (every DNNSplit candidate run fixed, the lowest mean kept), a stronger
static baseline than ``static-optimal`` (chosen before the run under nominal conditions). A
trained policy (PPO and its ablations) is passed in ``extra_policies``. A scenario with a fog
tier is played on the world's three-tier version (:meth:`World.for_scenario`): every policy
predicts with the fog (``score`` then searches (i, j) pairs) and the scenario's
``extra_policies`` (a fixed three-tier split) join the default set.

All numbers are simulated (trace-driven, from measured profiles and real-frame payload sizes)
and labelled so in the results.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from l2p_ros.policies.baselines import FixedCut, OraclePolicy
from l2p_ros.policies.cloud_batching import CloudShare
from l2p_ros.policies.registry import make_policy
from l2p_ros.policies.types import Policy, SystemState
from l2p_ros.simulation.bound import frame_lower_bounds
from l2p_ros.measure.frame_costs import frame_costs_source, resolve_frame_costs
from l2p_ros.simulation.hindsight import HindsightResult, hindsight_optimum
from l2p_ros.simulation.scenarios import Scenario, get_scenario, trace_scenario
from l2p_ros.simulation.simulator import SimulationConfig, SimulationLog, Simulator
from l2p_ros.simulation.world import DEFAULT_CLOUD_SPEED_FACTOR, World, build_world

DEFAULT_POLICIES = ("edge-only", "cloud-only", "static-optimal", "best-fixed", "heuristic", "greedy", "dads",
                    "dnnsplit", "score", "oracle")
# Not adaptive: what the best adaptive policy is measured against.
STATIC_POLICIES = ("edge-only", "cloud-only", "static-optimal", "best-fixed")
REFERENCE_POLICIES = ("oracle",)
# The hindsight optimum's span by default: exact or near it in seconds of run time on 2 cores.
HINDSIGHT_S = 20.0


@dataclass
class PolicyRun:
    name: str
    log: SimulationLog
    summary: dict


@dataclass
class Evaluation:
    """``runs`` in the order evaluated; ``meta`` describes scenario, seed, profiles and video."""

    meta: dict
    runs: dict[str, PolicyRun] = field(default_factory=dict)

    def mean_ms(self, name: str) -> float:
        return self.runs[name].summary["latency_ms"]["mean"]


def summarize(log: SimulationLog, lower_bounds_ms: np.ndarray | None = None) -> dict:
    """Latency statistics (ms, over frames delivered), energy, cut histogram (and the codecs sent:
    one cut may go under several, e.g. a bottleneck zstd'd or range-coded), decision speed, misses;
    with ``lower_bounds_ms`` (:func:`frame_lower_bounds` of the run's frames) also the bound's mean
    over the same delivered frames and the run's gap to it."""
    processed = log.processed
    latency = log.latency_ms[processed]
    delivered = latency[np.isfinite(latency)]
    labels = log.partition_labels()
    chosen = log.partition[processed]
    histogram: dict[str, int] = {}
    codecs: dict[str, int] = {}
    for i, label in enumerate(labels):  # one label may cover several codecs (edge only)
        count = int((chosen == i).sum())
        histogram[label] = histogram.get(label, 0) + count
        partition = log.partitions[i]
        if count and not partition.is_edge_only(log.num_layers):
            codecs[partition.codec] = codecs.get(partition.codec, 0) + count
    decide_s = log.decide_s[processed]
    decide_s = decide_s[np.isfinite(decide_s)]

    def stat(fn):
        return float(fn(delivered)) if len(delivered) else None

    bound = {}
    if lower_bounds_ms is not None and len(delivered):
        frames = np.flatnonzero(processed)[np.isfinite(latency)]
        bound_ms = float(np.mean(lower_bounds_ms[frames]))
        bound = {"lower_bound_ms": bound_ms, "gap_to_lower_bound_pct": 100.0 * (float(np.mean(delivered)) - bound_ms)
                 / bound_ms}
    return {
        **bound,
        "frames": int(len(log.skipped)),
        "processed_frames": int(processed.sum()),
        "skipped_frames": int(log.skipped.sum()),
        "superseded_frames": int(log.superseded.sum()),
        "undelivered_frames": int(len(latency) - len(delivered)),
        "latency_ms": {"mean": stat(np.mean), "std": stat(np.std), "p50": stat(np.median),
                       "p95": stat(lambda x: np.percentile(x, 95)), "p99": stat(lambda x: np.percentile(x, 99))},
        "deadline_ms": log.deadline_ms,
        "deadline_misses": int(log.deadline_miss[processed].sum()),
        "edge_energy_j_per_frame": float(np.mean(log.edge_energy_j[processed][np.isfinite(latency)]))
        if len(delivered) else None,
        "mean_payload_bytes": float(np.mean(log.payload_bytes[processed])) if processed.any() else None,
        "cut_histogram": dict(sorted(histogram.items(), key=lambda item: -item[1])),
        "codec_histogram": dict(sorted(codecs.items(), key=lambda item: -item[1])),
        "decisions_per_s": float(len(decide_s) / decide_s.sum()) if len(decide_s) and decide_s.sum() > 0 else None,
        "decide_ms_median": float(np.median(decide_s) * 1e3) if len(decide_s) else None,
    }


def hindsight_comparison(log: SimulationLog, hindsight: HindsightResult) -> dict:
    """A policy's mean over the hindsight optimum's frames and its gap to it (percent); None where
    the policy skipped or lost any of them (it then processed another set of frames)."""
    frames = len(hindsight.latency_ms)
    latency = log.latency_ms[:frames]
    if not (log.processed[:frames].all() and np.isfinite(latency).all()):
        return {"hindsight_gap_pct": None}
    mean_ms = float(np.mean(latency))
    return {"hindsight_frames_mean_ms": mean_ms,
            "hindsight_gap_pct": 100.0 * (mean_ms - hindsight.mean_ms) / hindsight.mean_ms}


def nominal_state(sim: Simulator) -> SystemState:
    """Median true conditions at the frames of a simulation: what a static choice is tuned for."""
    times_s = np.arange(sim.num_frames) / sim.config.fps
    index = np.maximum(np.searchsorted(sim.trace.time_s, times_s, side="right") - 1, 0)
    trace = sim.trace
    return SystemState(bandwidth_mbps=float(np.median(trace.bandwidth_mbps[index])),
                       rtt_ms=float(np.median(trace.rtt_ms[index])), edge_load=float(np.median(trace.edge_load[index])),
                       frame_complexity=float(np.median(sim.table.complexity[sim.rows])))


def resolve_scenario(scenario: Scenario | str | Path) -> Scenario:
    """A Scenario, a scenario name, or the path of a trace CSV."""
    if isinstance(scenario, Scenario):
        return scenario
    if isinstance(scenario, Path) or str(scenario).endswith(".csv"):
        return trace_scenario(scenario)
    return get_scenario(str(scenario))


def _progress(enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return lambda total, desc="": tqdm(total=total, desc=desc, unit="frame", file=sys.stderr, leave=False)


def evaluate(scenario: Scenario | str | Path, model: str = "yolov3-tiny", policies: list[str] | None = None,
             minutes: float | None = None, seed: int = 0, *, world: World | None = None,
             edge_profile: Path | None = None, cloud_profile: Path | None = None,
             cloud_speed_factor: float = DEFAULT_CLOUD_SPEED_FACTOR, edge_speed_factor: float = 1.0,
             fps: float | None = None,
             deadline_ms: float | None = None, frames_per_clip: int = 60,
             extra_policies: dict[str, Policy] | None = None, bottlenecks: Sequence[str] = (),
             simulation_options: dict | None = None, frame_costs: str | Path | None = "committed",
             fleet: CloudShare | None = None, hindsight_s: float = HINDSIGHT_S,
             progress: bool = True, log=print) -> Evaluation:
    """Simulate ``minutes`` (default: the scenario's) of ``scenario`` under each policy.

    ``policies``: names (default :data:`DEFAULT_POLICIES`);
    ``extra_policies``: already built policies by report name (a trained PPO and its ablations);
    ``bottlenecks``: learned bottleneck files every searching policy may choose (:func:`build_world`);
    ``simulation_options``: further :class:`SimulationConfig` fields (e.g. ``live_edge``);
    ``frame_costs``: a frame-costs file the simulator charges and the policies' cost model knows
    (:mod:`l2p_ros.measure.frame_costs`), ``"committed"`` (default) the repository's for the
    model where there is one, None: none.
    ``fleet``: the cloud is shared by a batching fleet, in the simulator and in the policies' cost
    model alike (its ``frames_per_s`` must be the run's fps).
    ``hindsight_s``: the first seconds over which the hindsight optimum is found (every queue
    accounted; :mod:`l2p_ros.simulation.hindsight`) and each policy compared with it; 0: none (also
    with a fleet or ``live_edge``, which it does not model).
    """
    scenario = resolve_scenario(scenario)
    progress_factory = _progress(progress)
    world = world or build_world(model, edge_profile=edge_profile, cloud_profile=cloud_profile,
                                 cloud_speed_factor=cloud_speed_factor, edge_speed_factor=edge_speed_factor,
                                 frames_per_clip=frames_per_clip, bottlenecks=bottlenecks,
                                 log=log, progress_factory=progress_factory)
    world = world.for_scenario(scenario)  # a fog tier when the scenario has one
    if fleet is not None:
        world = world.with_cloud_share(fleet)
    frame_costs, costs = resolve_frame_costs(frame_costs, str(model))
    world = world.with_frame_costs(costs)  # the policies know what the simulator charges
    config = SimulationConfig(fps=scenario.fps if fps is None else fps,
                              deadline_ms=scenario.deadline_ms if deadline_ms is None else deadline_ms,
                              **{"frame_costs": costs, "fleet": fleet, **(simulation_options or {})})
    duration_s = 60.0 * (minutes if minutes is not None else scenario.minutes)
    names = list(policies) if policies is not None else list(DEFAULT_POLICIES) + [
        name for name in scenario.extra_policies if name not in DEFAULT_POLICIES]

    def simulator():
        return world.simulator(scenario, duration_s, seed, config)

    probe = simulator()
    nominal = nominal_state(probe)
    meta = {
        "simulated": True,
        "scenario": {"name": scenario.name, "description": scenario.description, "minutes": duration_s / 60,
                     "seed": seed, "fps": config.fps, "deadline_ms": config.deadline_ms,
                     "max_vehicle_queue": config.max_vehicle_queue, "codec": scenario.codec,
                     "image_codec": scenario.image_codec, "trace": probe.trace.note,
                     "tiers": 3 if world.fog_profile is not None else 2,
                     "estimator": vars(config.estimator), "nominal_state": vars(nominal),
                     "partitioner_view": {"link_rtt": config.link_rtt, "calibrate_edge": config.calibrate_edge,
                                          **({"link_buffer_ms": config.link_buffer_ms,
                                              "link_arrivals": config.link_arrivals,
                                              "link_backlog": config.link_backlog}
                                             if config.link_rtt == "own-queue" else {})}},
        "model": world.model_name,
        "sources": {**world.sources, "frame_costs": frame_costs_source(frame_costs, costs)},
    }
    bounds = frame_lower_bounds(simulator(), scenario.codec, scenario.image_codec)
    meta["lower_bound"] = {
        "mean_ms": float(np.mean(bounds[np.isfinite(bounds)])),
        "note": "every frame alone on idle servers with its fastest partition: no policy is below it on any frame "
                "(l2p_ros.simulation.bound); the oracle is myopic and can be beaten"}
    if fleet is not None:
        meta["fleet"] = world.sources["cloud_share"]
    hindsight = None
    if hindsight_s > 0 and fleet is None and not config.live_edge:
        frames = max(1, round(hindsight_s * config.fps))
        bar = progress_factory(frames, "hindsight") if progress_factory else None
        hindsight = hindsight_optimum(simulator(), scenario.codec, scenario.image_codec, frames=frames,
                                      on_frames=bar.update if bar else None)
        if bar:
            bar.close()
        meta["hindsight"] = {
            "seconds": frames / config.fps, "frames": frames, "mean_ms": hindsight.mean_ms, "exact": hindsight.exact,
            "windows": hindsight.windows, "candidates": hindsight.candidates,
            "note": "the least mean latency of any schedule over these first frames, knowing the whole trace, "
                    "with every queue (l2p_ros.simulation.hindsight); " + (
                        "exact" if hindsight.exact else
                        f"a lower bound: {hindsight.windows} windows, each from idle servers")}
    evaluation = Evaluation(meta)

    def run(name: str, make: Callable[[Simulator], Policy]) -> PolicyRun:
        sim = simulator()
        bar = progress_factory(sim.num_frames, name) if progress_factory else None
        policy_log = sim.run(make(sim), bar.update if bar else None)
        if bar:
            bar.close()
        summary = summarize(policy_log, bounds)
        if hindsight is not None:
            summary.update(hindsight_comparison(policy_log, hindsight))
        return PolicyRun(name, policy_log, summary)

    for name in names:
        if name == "oracle":  # it must predict with this very simulator's truth
            evaluation.runs[name] = run(name, lambda sim: OraclePolicy(sim.true_model, (scenario.codec,),
                                                                       scenario.image_codec))
        elif name == "best-fixed":
            evaluation.runs[name] = _best_fixed(world, scenario, run)
        else:
            policy = make_policy(name, world.policy_model, codec=scenario.codec, image_codec=scenario.image_codec,
                                 frame_interval_ms=1e3 / config.fps, nominal=nominal)
            evaluation.runs[name] = run(name, lambda sim, policy=policy: policy)
    for name, policy in (extra_policies or {}).items():
        evaluation.runs[name] = run(name, lambda sim, policy=policy: policy)
    _compare(evaluation)
    if costs is not None:
        evaluation.meta["sources"]["frame_costs"]["uncharged_codecs"] = sorted(costs.uncharged)
    return evaluation


def _best_fixed(world: World, scenario: Scenario, run) -> PolicyRun:
    best = None
    for partition in world.candidates(scenario.codec, scenario.image_codec):
        candidate = run("best-fixed", lambda sim, partition=partition: FixedCut(partition))
        if best is None or candidate.summary["latency_ms"]["mean"] < best.summary["latency_ms"]["mean"]:
            best = candidate
    best.summary["note"] = ("hindsight: the DNNSplit candidate with the lowest mean latency on this very run, "
                            f"cut {next(iter(best.summary['cut_histogram']))}")
    return best


def _compare(evaluation: Evaluation) -> None:
    """Improvement over static optimal and gap to the oracle (percent of mean latency), and the
    best adaptive policy against the project's targets (docs/evaluation.md)."""
    runs = evaluation.runs
    static = runs.get("static-optimal")
    oracle = runs.get("oracle")
    static_ms = static.summary["latency_ms"]["mean"] if static else None
    oracle_ms = oracle.summary["latency_ms"]["mean"] if oracle else None
    for run in runs.values():
        mean = run.summary["latency_ms"]["mean"]
        if static_ms and mean is not None:
            run.summary["improvement_over_static_optimal_pct"] = 100.0 * (static_ms - mean) / static_ms
        if oracle_ms and mean is not None:
            run.summary["gap_to_oracle_pct"] = 100.0 * (mean - oracle_ms) / oracle_ms
    adaptive = [r for n, r in runs.items() if n not in STATIC_POLICIES + REFERENCE_POLICIES
                and r.summary["latency_ms"]["mean"] is not None]
    if not adaptive:
        return
    best = min(adaptive, key=lambda r: r.summary["latency_ms"]["mean"])
    baselines = [r for n, r in runs.items() if n not in REFERENCE_POLICIES and r is not best
                 and r.summary["latency_ms"]["std"] is not None]
    # Ties count as not lower: another policy making the very same decisions has the same spread.
    evaluation.meta["best_adaptive"] = {
        "policy": best.name,
        "mean_ms": best.summary["latency_ms"]["mean"],
        "improvement_over_static_optimal_pct": best.summary.get("improvement_over_static_optimal_pct"),
        "gap_to_oracle_pct": best.summary.get("gap_to_oracle_pct"),
        "lowest_std_of_all_baselines": all(best.summary["latency_ms"]["std"] < r.summary["latency_ms"]["std"]
                                           for r in baselines),
        "same_decisions_as": [r.name for r in baselines
                              if np.array_equal(r.log.latency_ms, best.log.latency_ms, equal_nan=True)],
        "targets": "mean >= 25% below static optimal, within 5% of the oracle, lower std than every baseline",
    }
