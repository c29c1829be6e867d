"""Live against simulated, with the live pipeline's own costs calibrated (issue 10, experiment 5).

    python bench/testbed_prediction.py WORK_DIR [--name testbed_prediction] [--resimulate]
    python bench/testbed_prediction.py WORK_DIR --archive bench/results/testbed_step_runs

WORK_DIR is a ``bench/testbed_step.py`` run's work folder (``<policy>/results.json`` for each
policy, with edge-only and cloud-only among them; the step bench prints it and saves it under
``work``), or an archive of one: ``--archive`` copies the runs' results (``<policy>.json.gz``) with
the files they name (the trace, the edge and cloud profiles measured for the testbed, a PPO
policy) into the archive and points the results at those copies, so that the simulated columns of
docs/testbed.md can be recomputed from the repository. ``--resimulate`` recomputes each run's
model-only prediction with today's simulator instead of reading the one the live run stored.
The model-only prediction (``simulated`` in each results.json) leaves out what
the live pipeline costs beyond the model's layers and the link. Two fixed-policy runs measure it
(:func:`l2p_ros.testbed.prediction.live_edge_calibration`): a per-frame overhead from cloud-only,
the share of the edge's CPU its own pipeline takes from edge-only; every policy is then simulated
again as the live edge schedules frames (``live_edge``: latest frame wins, the uplink's backlog in
the RTT the policies see). Needs no root: it reads recorded runs. Writes bench/results/<name>.json.
"""
from __future__ import annotations

import argparse
import gzip
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, save  # noqa: E402

from l2p_ros.testbed.prediction import live_edge_calibration, simulate_live_run  # noqa: E402


def load_runs(work: Path) -> dict[str, dict]:
    """Each policy's results in ``work`` (``<policy>/results.json``, or an archive's
    ``<policy>.json.gz``), by policy name."""
    runs = {}
    for path in sorted(work.glob("*/results.json")) + sorted(work.glob("*.json.gz")):
        text = gzip.decompress(path.read_bytes()).decode() if path.suffix == ".gz" else path.read_text()
        results = json.loads(text)
        runs[results["summary"]["policy"]] = results
    if not runs:
        raise FileNotFoundError(f"no <policy>/results.json or <policy>.json.gz in {work}")
    return runs


def archive_runs(runs: dict[str, dict], out: Path) -> None:
    """Write ``runs`` into ``out`` (a folder in the repository) with every file they name copied
    beside them and named by its path from the repository's root: the trace, the testbed's edge and
    cloud profiles, and a ``ppo:FILE`` policy (which then names its copy: the file that ran live,
    not whatever the repository holds under that name later)."""
    out.mkdir(parents=True, exist_ok=True)
    kept: dict[str, str] = {}  # the runs share their trace and profiles: each is copied once

    def keep(path: str, name: str) -> str:
        if path not in kept:
            target = out / name
            shutil.copyfile(path, target)
            kept[path] = str(target.resolve().relative_to(ROOT))
        return kept[path]

    for policy, results in runs.items():
        results = json.loads(json.dumps(results))  # a copy to rewrite
        results["trace"]["path"] = keep(results["trace"]["path"], "trace.csv")
        testbed = results["testbed"]
        for key in ("edge_profile", "cloud_profile", "fog_profile"):
            if testbed.get(key):
                testbed[key] = keep(testbed[key], f"{key}-{Path(testbed[key]).name}")
        tag = policy.replace(":", "-").replace("/", "_")
        if policy.startswith("ppo:"):
            file = Path(policy.removeprefix("ppo:"))
            results["summary"]["policy"] = "ppo:" + keep(str(file), file.name)
            results["summary"]["policy_when_run"] = policy
            policy, tag = results["summary"]["policy"], file.stem
        (out / f"{tag}.json.gz").write_bytes(gzip.compress(json.dumps(results).encode(), mtime=0))
        print(f"archived {policy} -> {out / tag}.json.gz")


def resimulate(runs: dict[str, dict], log=print) -> None:
    """Replace each run's stored model-only prediction with today's simulator's."""
    for policy, results in runs.items():
        results["simulated"] = simulate_live_run(results, policy, log=lambda *_: None)
        log(f"{policy:>28}: model-only {results['simulated']['summary']['latency_ms']['mean']:6.1f} ms (resimulated)")


def calibrated_table(runs: dict[str, dict], log=print) -> dict:
    """Calibration from the edge-only and cloud-only runs, and per policy: live, model-only and
    calibrated simulated mean and p95, and the calibrated prediction's error."""
    missing = [name for name in ("edge-only", "cloud-only") if name not in runs]
    if missing:
        raise ValueError(f"calibration needs live runs of {', '.join(missing)}")
    options = live_edge_calibration(runs["cloud-only"], runs["edge-only"])
    rows = []
    for policy, results in runs.items():
        calibrated = simulate_live_run(results, policy, log=lambda *_: None, options=options)["summary"]
        live, model_only = results["summary"], results["simulated"]["summary"]
        rows.append({"policy": policy, "live_mean_ms": live["latency_mean_ms"], "live_p95_ms": live["latency_p95_ms"],
                     "live_detected": live["frames_detected"],
                     "model_only_mean_ms": model_only["latency_ms"]["mean"],
                     "calibrated_mean_ms": calibrated["latency_ms"]["mean"],
                     "calibrated_p95_ms": calibrated["latency_ms"]["p95"],
                     "calibrated_processed": calibrated["processed_frames"],
                     "model_only_error": model_only["latency_ms"]["mean"] / live["latency_mean_ms"] - 1,
                     "calibrated_error": calibrated["latency_ms"]["mean"] / live["latency_mean_ms"] - 1})
        log(f"{policy:>28}: live {live['latency_mean_ms']:6.1f} ms ({live['frames_detected']} frames), "
            f"model-only {model_only['latency_ms']['mean']:6.1f} ({rows[-1]['model_only_error']:+.0%}), "
            f"calibrated {calibrated['latency_ms']['mean']:6.1f} ({rows[-1]['calibrated_error']:+.0%}, "
            f"{calibrated['processed_frames']} frames)")
    return {"calibration": options, "policies": rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("work", type=Path, help="a bench/testbed_step.py run's work folder")
    parser.add_argument("--name", default="testbed_prediction")
    parser.add_argument("--resimulate", action="store_true",
                        help="recompute the model-only predictions with today's simulator")
    parser.add_argument("--archive", type=Path, default=None, metavar="DIR",
                        help="copy the runs and the files they name into DIR (in the repository) and stop")
    args = parser.parse_args()
    runs = load_runs(args.work)
    if args.archive:
        archive_runs(runs, args.archive)
        return 0
    if args.resimulate:
        resimulate(runs)
    table = calibrated_table(runs)
    print(json.dumps(table["calibration"]))
    save(args.name, {"command": " ".join(sys.argv), "work": str(args.work), "resimulated": args.resimulate, **table})
    return 0


if __name__ == "__main__":
    sys.exit(main())
