"""Live against simulated, with the live pipeline's own costs calibrated (issue 10, experiment 5).

    python bench/testbed_prediction.py WORK_DIR [--name testbed_prediction]

WORK_DIR is a ``bench/testbed_step.py`` run's work folder (``<policy>/results.json`` for each
policy, with edge-only and cloud-only among them; the step bench prints it and saves it under
``results_json``). The model-only prediction (``simulated`` in each results.json) leaves out what
the live pipeline costs beyond the model's layers and the link. Two fixed-policy runs measure it
(:func:`l2p_ros.testbed.prediction.live_edge_calibration`): a per-frame overhead from cloud-only,
the share of the edge's CPU its own pipeline takes from edge-only; every policy is then simulated
again as the live edge schedules frames (``live_edge``: latest frame wins, the uplink's backlog in
the RTT the policies see). Needs no root: it reads recorded runs. Writes bench/results/<name>.json.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import save  # noqa: E402

from l2p_ros.testbed.prediction import live_edge_calibration, simulate_live_run  # noqa: E402


def load_runs(work: Path) -> dict[str, dict]:
    """Each policy's results.json in ``work``, by policy name."""
    runs = {}
    for path in sorted(work.glob("*/results.json")):
        results = json.loads(path.read_text())
        runs[results["summary"]["policy"]] = results
    if not runs:
        raise FileNotFoundError(f"no <policy>/results.json in {work}")
    return runs


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
    args = parser.parse_args()
    table = calibrated_table(load_runs(args.work))
    print(json.dumps(table["calibration"]))
    save(args.name, {"command": " ".join(sys.argv), "work": str(args.work), **table})
    return 0


if __name__ == "__main__":
    sys.exit(main())
