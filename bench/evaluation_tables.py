"""Regenerate the simulated evaluation's tables from the repository's own inputs (issue 11).

    python bench/evaluation_tables.py [--out docs/evaluation_current.md] [--only NAME ...]
    python bench/evaluation_tables.py --only interior interior-jetson --update   # those sections, in place

Every run uses only committed files: the edge profile measured on the project's 2-core VM
(models/profiles/yolov3-tiny-416-cpu-t1-vm-2core.yaml), the cloud derived from it at 20x, the
video table of 60 real frames per clip (copied into the simulator's cache when missing), the
measured frame costs, the committed PPO policies, and one trace (bench/traces/: the testbed's
stepped link with the edge half busy). Today's defaults: images at network resolution
(jpeg-q75), frame costs charged. Each section says the command that reproduces it by hand.
Writes one markdown file (generated: edit this script, not the file) and bench/results/evaluation_tables.json.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import COMMITTED_EDGE_PROFILE as PROFILE, ROOT, interior_share, save, use_committed_video_table  # noqa: E402

from l2p_ros.simulation.evaluation import evaluate  # noqa: E402
from l2p_ros.simulation.report import markdown_table  # noqa: E402
from l2p_ros.simulation.scenarios import get_scenario  # noqa: E402

PPO = ["models/ppo/ppo-full.npz", "models/ppo/ppo-resource-only.npz", "models/ppo/ppo-no-network.npz",
       "models/ppo/ppo-complexity-only.npz"]
PPO_2X = [path.replace("models/ppo/", "models/ppo/edge-2x/") for path in PPO]
STEP_TRACE = "bench/traces/step_40_1_40_load50.csv"
STEP_POLICIES = ["edge-only", "cloud-only", "static-optimal", "greedy", "dads", "score", "oracle"]

# name -> (heading, evaluate() arguments besides the world's, the equivalent command's options)
RUNS = {
    "paper": ("l2p-paper, the measured edge, with PPO (30 simulated minutes, seed 0)",
              dict(scenario="l2p-paper", minutes=30, seed=0, ppo=PPO),
              f"--scenario l2p-paper --minutes 30 --seed 0 --ppo {','.join(PPO)}"),
    # The policies under models/ppo/edge-2x/ were trained on an edge twice as fast: evaluate them there.
    "paper-edge-2x": ("l2p-paper, an edge twice as fast (derived), with its PPO (30 minutes, seed 0)",
                      dict(scenario="l2p-paper", minutes=30, seed=0, edge_speed_factor=2.0, ppo=PPO_2X),
                      f"--scenario l2p-paper --minutes 30 --seed 0 --edge-speed-factor 2 --ppo {','.join(PPO_2X)}"),
    "paper-jetson": ("l2p-paper, a Jetson-class edge (a quarter as fast, derived; 10 minutes, seed 0)",
                     dict(scenario="l2p-paper", minutes=10, seed=0, edge_speed_factor=0.25),
                     "--scenario l2p-paper --minutes 10 --seed 0 --edge-speed-factor 0.25"),
    "paper-20fps": ("l2p-paper at 20 frames/s, where frames queue (10 minutes, seed 1)",
                    dict(scenario="l2p-paper", minutes=10, seed=1, fps=20.0),
                    "--scenario l2p-paper --minutes 10 --seed 1 --fps 20"),
    # Outside what the policies trained on: the link falls to 1 Mbit/s while the edge is half busy. The
    # hindsight optimum over the whole minute (every queue, exact): the step is where queues decide.
    "step-load": ("the testbed's 40 / 1 / 40 Mbit/s step with the edge half busy, outside PPO's training (1 minute)",
                  dict(scenario=STEP_TRACE, minutes=1, seed=0, policies=STEP_POLICIES, ppo=PPO[:1], hindsight_s=60.0),
                  f"--trace {STEP_TRACE} --minutes 1 --seed 0 --policies {','.join(STEP_POLICIES)} --ppo {PPO[0]} "
                  "--hindsight-s 60"),
    "step-load-edge-2x": ("the same step on an edge twice as fast (derived), with its PPO (1 minute)",
                          dict(scenario=STEP_TRACE, minutes=1, seed=0, edge_speed_factor=2.0, policies=STEP_POLICIES,
                               ppo=PPO_2X[:1], hindsight_s=60.0),
                          f"--trace {STEP_TRACE} --minutes 1 --seed 0 --edge-speed-factor 2 "
                          f"--policies {','.join(STEP_POLICIES)} --ppo {PPO_2X[0]} --hindsight-s 60"),
    "throttle": ("three-tier-throttle (3 minutes, seed 0)", dict(scenario="three-tier-throttle", minutes=3, seed=0),
                 "--scenario three-tier-throttle --minutes 3 --seed 0"),
    "backhaul": ("three-tier-backhaul (10 minutes, seed 0)", dict(scenario="three-tier-backhaul", minutes=10, seed=0),
                 "--scenario three-tier-backhaul --minutes 10 --seed 0"),
}

# name -> (heading, [(column, evaluate() arguments)], the policies, the equivalent command's options):
# one compact table over several runs (further seeds, or other choices of codec).
SWEEP_POLICIES = ["static-optimal", "best-fixed", "greedy", "dads", "score", "oracle"]
INTERIOR_POLICIES = ["cloud-only", "greedy", "oracle"]
COSTS_POLICIES = ["edge-only", "cloud-only", "greedy", "dads", "score", "oracle"]
BOTTLENECKS = ("vtest-street", "sample-scenes")


def _seeds(options: dict) -> list[tuple[str, dict]]:
    return [(f"seed {seed}", dict(options, seed=seed)) for seed in (1, 2, 3)]


def _interior(options: dict) -> list[tuple[str, dict]]:
    return [("camera-size image (jpeg-full-q75)", dict(options, image_codec="jpeg-full-q75")),
            ("network resolution (jpeg-q75)", options),
            ("a detector's tables (jpeg-dnn-q85)", dict(options, image_codec="jpeg-dnn-q85")),
            *((f"jpeg-q75 + bottleneck {name}", dict(options, bottlenecks=(name,))) for name in BOTTLENECKS)]


_INTERIOR_CHOICES = " | ".join(["--image-codec jpeg-full-q75", "--image-codec jpeg-dnn-q85",
                                *(f"--bottlenecks {name}" for name in BOTTLENECKS)])


COMPACT = {
    "paper-seeds": ("l2p-paper, the measured edge, seeds 1-3 (30 minutes each)",
                    _seeds(dict(scenario="l2p-paper", minutes=30, ppo=PPO)), SWEEP_POLICIES,
                    f"--scenario l2p-paper --minutes 30 --seed S --policies {','.join(SWEEP_POLICIES)} "
                    f"--ppo {','.join(PPO)}"),
    "paper-edge-2x-seeds": ("l2p-paper, an edge twice as fast (derived), seeds 1-3 (30 minutes each)",
                            _seeds(dict(scenario="l2p-paper", minutes=30, edge_speed_factor=2.0, ppo=PPO_2X)),
                            SWEEP_POLICIES,
                            f"--scenario l2p-paper --minutes 30 --seed S --edge-speed-factor 2 "
                            f"--policies {','.join(SWEEP_POLICIES)} --ppo {','.join(PPO_2X)}"),
    "frame-costs": ("What the frame costs add (l2p-paper, the measured edge, 10 minutes, seed 0)",
                    [("frame costs charged", dict(scenario="l2p-paper", minutes=10, seed=0)),
                     ("none (--frame-costs none)", dict(scenario="l2p-paper", minutes=10, seed=0, frame_costs=None))],
                    COSTS_POLICIES,
                    f"--scenario l2p-paper --minutes 10 --seed 0 --policies {','.join(COSTS_POLICIES)} "
                    "[--frame-costs none]"),
    "interior": ("Interior cuts: image offload's size and a learned bottleneck, the measured edge "
                 "(l2p-paper, 10 minutes, seed 0)",
                 _interior(dict(scenario="l2p-paper", minutes=10, seed=0)), INTERIOR_POLICIES,
                 f"--scenario l2p-paper --minutes 10 --seed 0 --policies {','.join(INTERIOR_POLICIES)} "
                 f"[{_INTERIOR_CHOICES}]"),
    "interior-jetson": ("Interior cuts on a Jetson-class edge (0.25x, derived; l2p-paper, 10 minutes, seed 0)",
                        _interior(dict(scenario="l2p-paper", minutes=10, seed=0, edge_speed_factor=0.25)),
                        INTERIOR_POLICIES,
                        f"--scenario l2p-paper --minutes 10 --seed 0 --edge-speed-factor 0.25 "
                        f"--policies {','.join(INTERIOR_POLICIES)} "
                        f"[{_INTERIOR_CHOICES}]"),
    "view": ("The partitioner's view of the link and the edge (l2p-paper, 10 minutes, seed 0, sample-scenes offered)",
             [(f"{edge}, {view}", dict(scenario="l2p-paper", minutes=10, seed=0, bottlenecks=("sample-scenes",),
                                       edge_speed_factor=factor, simulation_options=options))
              for edge, factor in (("measured edge", 1.0), ("Jetson-class (0.25x)", 0.25))
              for view, options in (("smoothed", {}),
                                    ("own-queue, calibrated", {"link_rtt": "own-queue", "calibrate_edge": True}),
                                    ("own-queue, calibrated, measured arrivals",
                                     {"link_rtt": "own-queue", "calibrate_edge": True, "link_arrivals": "measured"}))],
             COSTS_POLICIES,
             f"--scenario l2p-paper --minutes 10 --seed 0 --bottlenecks sample-scenes --policies "
             f"{','.join(COSTS_POLICIES)} [--edge-speed-factor 0.25] "
             "[--link-rtt own-queue --calibrate-edge [--link-arrivals measured]]"),
}


def _evaluate(options: dict, **extra):
    options = dict(options, **extra)
    ppo = options.pop("ppo", None)
    scenario = options.pop("scenario")
    if "image_codec" in options:
        scenario = dataclasses.replace(get_scenario(scenario), image_codec=options.pop("image_codec"))
    return evaluate(scenario, "yolov3-tiny", edge_profile=Path(PROFILE), extra_policies=_ppo(ppo) if ppo else None,
                    progress=False, log=lambda *_: None, **options)


def _compact_table(evaluations: dict[str, object]) -> str:
    """One row per method, one column per run; the lower bound's mean last."""
    lines = ["Each cell: mean ms / std ms / improvement over static optimal (over cloud-only where static "
             "optimal is not in the table) / deadline misses / share of frames at an interior cut.", "",
             "| method | " + " | ".join(evaluations) + " |", "|---|" + "---|" * len(evaluations)]
    for name in next(iter(evaluations.values())).runs:
        cells = []
        for evaluation in evaluations.values():
            summary = evaluation.runs[name].summary
            reference = evaluation.runs.get("static-optimal") or evaluation.runs["cloud-only"]
            reference_ms = reference.summary["latency_ms"]["mean"]
            cells.append(f"{summary['latency_ms']['mean']:.1f} / {summary['latency_ms']['std']:.1f} / "
                         f"{100 * (reference_ms - summary['latency_ms']['mean']) / reference_ms:+.1f}% / "
                         f"{summary['deadline_misses']} / {100 * interior_share(summary['cut_histogram']):.0f}%")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("| lower bound (mean) | " + " | ".join(
        f"{evaluation.meta['lower_bound']['mean_ms']:.1f}" for evaluation in evaluations.values()) + " |")
    return "\n".join(lines) + "\n"


def _ppo(paths: list[str]) -> dict:
    from l2p_ros.policies.learned import LearnedPolicy

    policies = {}
    for path in paths:
        policy = LearnedPolicy.load(path)
        policies[policy.name] = policy
    return policies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "evaluation_current.md")
    parser.add_argument("--only", nargs="*", choices=sorted([*RUNS, *COMPACT]),
                        help="write these sections only (to try a change; the committed file has them all)")
    parser.add_argument("--update", action="store_true",
                        help="with --only: replace those sections in the existing --out file and their figures in "
                             "bench/results/evaluation_tables.json, keeping every other section as it is")
    args = parser.parse_args()
    if args.update and not args.only:
        parser.error("--update regenerates the sections named by --only")
    args.out = args.out.resolve()
    os.chdir(ROOT)  # inputs by their repository paths, so that the tables name no checkout
    use_committed_video_table()
    sections, figures = {}, {}
    for name, (heading, options, command) in RUNS.items():
        if args.only and name not in args.only:
            continue
        started = time.monotonic()
        evaluation = _evaluate(options)
        print(f"{name}: {time.monotonic() - started:.0f} s", file=sys.stderr)
        table = markdown_table(evaluation).split("\n", 2)[2]  # without its own title
        sections[name] = f"## {heading}\n\n```\nl2p evaluate {command} --edge-profile {PROFILE}\n```\n\n{table}"
        figures[name] = {policy: run.summary for policy, run in evaluation.runs.items()}
        figures[name]["lower_bound"] = evaluation.meta["lower_bound"]
    for name, (heading, columns, policies, command) in COMPACT.items():
        if args.only and name not in args.only:
            continue
        started = time.monotonic()
        evaluations = {column: _evaluate(options, policies=policies) for column, options in columns}
        print(f"{name}: {time.monotonic() - started:.0f} s", file=sys.stderr)
        sections[name] = (f"## {heading}\n\n```\nl2p evaluate {command} --edge-profile {PROFILE}\n```\n\n"
                          f"{_compact_table(evaluations)}")
        figures[name] = {column: {**{policy: run.summary for policy, run in evaluation.runs.items()},
                                  "lower_bound": evaluation.meta["lower_bound"]}
                         for column, evaluation in evaluations.items()}
    header = ("# Evaluation tables, regenerated\n\n"
              "Generated by `python bench/evaluation_tables.py` from committed inputs only (the script's "
              "docstring lists them); do not edit by hand. All figures are simulated. `decisions/s` is "
              "measured on the machine that ran the script; every other figure is deterministic.\n\n")
    results = {"command": " ".join(sys.argv), "runs": figures}
    if args.update:
        sections, results = _merged(args.out, sections, results)
    args.out.write_text(header + "\n".join(sections.values()))
    print(f"wrote {args.out}")
    save("evaluation_tables", results)
    return 0


def _merged(out: Path, sections: dict[str, str], results: dict) -> tuple[dict[str, str], dict]:
    """The regenerated ``sections`` and ``results`` put in place of theirs in the existing file and
    results; every other section is kept as it was (found by its heading) and so are its figures.
    The results say which runs which later command regenerated."""
    import json

    if not out.is_file():
        raise SystemExit(f"--update: {out} does not exist; generate it whole first")
    kept_text = out.read_text()
    old_results = json.loads((ROOT / "bench" / "results" / "evaluation_tables.json").read_text())
    # "\n## " starts a section; the header before the first is rewritten anyway.
    old_sections = {chunk.split("\n", 1)[0]: "## " + chunk.rstrip("\n") + "\n"
                    for chunk in kept_text.split("\n## ")[1:]}
    merged = {}
    for name, heading in ((name, spec[0]) for name, spec in (*RUNS.items(), *COMPACT.items())):
        if name in sections:
            merged[name] = sections[name]
        elif heading in old_sections:
            merged[name] = old_sections[heading]
        else:
            raise SystemExit(f"--update: {out} has no section {heading!r}: regenerate it too (--only ... {name})")
    runs = {name: results["runs"].get(name, old_results["runs"].get(name)) for name in merged}
    updated = {**old_results.get("updated", {}), **{name: results["command"] for name in sections}}
    return merged, {"command": old_results["command"], "runs": runs, "updated": updated}


if __name__ == "__main__":
    sys.exit(main())
