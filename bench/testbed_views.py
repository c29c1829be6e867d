"""Does the simulator predict the live choices once it gives the policies the partitioner's view?

    python bench/testbed_views.py RESULTS_JSON... --archive bench/results/testbed_views_runs
    python bench/testbed_views.py bench/results/testbed_views_runs [--name testbed_views]

Each live run (a ``bench/testbed_step.py`` run's ``<work>/<run>/results.json``: its trace, profiles,
policy and bottlenecks) is simulated again as the live edge schedules frames (``live_edge``, with
the pipeline's own costs calibrated on experiment 5's fixed-policy runs:
bench/results/testbed_policies_prediction.json) under five views of the link and the edge,
the partitioner's ``link_rtt``, ``calibrate_edge``, ``link_arrivals`` and ``link_backlog``:

- ``smoothed``: the monitor's RTT with the uplink's backlog in it, the profile's edge (the
  simulator's view before stop 34 and the live defaults before stop 33);
- ``own-queue``: the RTT's floor and each option's own queue, the profile's edge;
- ``own-queue+calibrated``: both, the live defaults since stop 33;
- ``own-queue+calibrated+measured-arrivals``: and the own queue's wait by Kingman's G/D/1 with the
  arrivals' measured variation in place of M/D/1's Poisson arrivals (stop 35);
- ``own-queue+calibrated+measured-arrivals+decided-backlog``: and each option's own queue capped at
  the backlog the partitioner's decisions leave on the link (stop 36).

For the slow phase (the trace's second rate), it sets the live run's frames, mean latency and cuts
beside each view's (and, for runs that charged the monitor's RTT as it is, the median RTT their
decisions saw by the cut decided), and says whether the view the run itself ran with chose the live run's most
frequent cut. ``--archive DIR`` copies the runs (gzipped, named by their folder) with the
trace and profiles they name into DIR and stops, so the table can be recomputed from the
repository. Needs no root. Writes bench/results/<name>.json.
"""
from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import shutil
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, save  # noqa: E402

from l2p_ros.monitoring.uplink_rtt import DEFAULT_LINK_BUFFER_MS  # noqa: E402
from l2p_ros.testbed.prediction import phase_bounds_s, second_phase, simulate_live_run  # noqa: E402

VIEWS = {"smoothed": {"link_rtt": "smoothed", "calibrate_edge": False},
         "own-queue": {"link_rtt": "own-queue", "calibrate_edge": False, "link_arrivals": "poisson",
                       "link_backlog": "off"},
         "own-queue+calibrated": {"link_rtt": "own-queue", "calibrate_edge": True, "link_arrivals": "poisson",
                                  "link_backlog": "off"},
         "own-queue+calibrated+measured-arrivals": {"link_rtt": "own-queue", "calibrate_edge": True,
                                                    "link_arrivals": "measured", "link_backlog": "off"},
         "own-queue+calibrated+measured-arrivals+decided-backlog": {
             "link_rtt": "own-queue", "calibrate_edge": True, "link_arrivals": "measured", "link_backlog": "decided"}}
# What a run recorded before a view's parameter existed ran with.
BEFORE = {"link_arrivals": "poisson", "link_backlog": "off"}
CALIBRATION = ROOT / "bench/results/testbed_policies_prediction.json"


def load(paths: list[Path]) -> dict[str, dict]:
    """Live runs by name: ``results.json`` files (named by their folder) or archives of them."""
    runs = {}
    for path in paths:
        files = sorted(path.glob("*.json.gz")) if path.is_dir() else [path]
        if not files:
            raise FileNotFoundError(f"no *.json.gz in {path}")
        for file in files:
            if file.suffix == ".gz":
                runs[file.name.removesuffix(".json.gz")] = json.loads(gzip.decompress(file.read_bytes()))
            else:
                runs[file.parent.name] = json.loads(file.read_text())
    return runs


# What this bench and the simulation read of a live run's frames; the rest is left out of the archive.
TIMELINE_KEYS = ("trace_time_s", "cut", "total_ms", "estimated_rtt_ms", "estimated_mbps")


def view_from_tag(name: str) -> dict:
    """The view of a run recorded before runs said theirs (stop 34), from bench/testbed_step.py's
    folder name: ``_calibrated``, ``_own-queue`` or ``_rtt-floor`` and ``_arrivals-measured`` where it
    set them."""
    link_rtt = "own-queue" if "_own-queue" in name else "floor" if "_rtt-floor" in name else "smoothed"
    return {"link_rtt": link_rtt, "link_buffer_ms": DEFAULT_LINK_BUFFER_MS, "calibrate_edge": "_calibrated" in name,
            "link_arrivals": "measured" if "_arrivals-measured" in name else "poisson",
            "link_backlog": "decided" if "_backlog-decided" in name else "off"}


def archive(runs: dict[str, dict], out: Path) -> None:
    """``runs`` into ``out`` with the trace and profiles they name, pointed at those copies; of each
    run its summary, trace, testbed (with the view it ran with: :func:`view_from_tag` where it does
    not say) and frames (:data:`TIMELINE_KEYS`) only."""
    out.mkdir(parents=True, exist_ok=True)
    for name, results in runs.items():
        results = {"summary": results["summary"], "trace": dict(results["trace"]), "testbed": dict(results["testbed"]),
                   "timeline": [{key: row.get(key) for key in TIMELINE_KEYS} for row in results["timeline"]]}
        text = Path(results["trace"]["path"]).read_bytes()  # the step traces differ in their slow rate only
        trace = out / f"trace-{hashlib.sha256(text).hexdigest()[:12]}.csv"
        trace.write_bytes(text)
        results["trace"]["path"] = str(trace.resolve().relative_to(ROOT))
        results["testbed"].setdefault("partitioner_view", view_from_tag(name))
        for key in ("edge_profile", "cloud_profile"):
            profile = out / f"{key}-{Path(results['testbed'][key]).name}"
            shutil.copyfile(results["testbed"][key], profile)
            results["testbed"][key] = str(profile.resolve().relative_to(ROOT))
        (out / f"{name}.json.gz").write_bytes(gzip.compress(json.dumps(results).encode(), mtime=0))
        print(f"archived {name}")


def rtt_by_cut(results: dict) -> dict:
    """The median RTT the decisions of the second phase saw, by the cut decided (10 frames or more)."""
    start_s, end_s = phase_bounds_s(results, 1)
    by_cut: dict[str, list[float]] = {}
    for row in results["timeline"]:
        if start_s <= row["trace_time_s"] < end_s and row.get("estimated_rtt_ms") is not None:
            by_cut.setdefault(str(row["cut"]), []).append(row["estimated_rtt_ms"])
    return {cut: round(statistics.median(rtts), 1) for cut, rtts in by_cut.items() if len(rtts) >= 10}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", type=Path, nargs="+", help="results.json files or an archive folder")
    parser.add_argument("--archive", type=Path, default=None, metavar="DIR")
    parser.add_argument("--name", default="testbed_views")
    args = parser.parse_args()
    runs = load(args.runs)
    if args.archive:
        archive(runs, args.archive)
        return 0
    calibration = json.loads(CALIBRATION.read_text())["calibration"]
    table = []
    for name, results in runs.items():
        policy = results["summary"]["policy"]
        ran = results["testbed"]["partitioner_view"]
        as_run = next(view for view, options in VIEWS.items()
                      if all(ran.get(key, BEFORE.get(key)) == value for key, value in options.items()))
        row = {"run": name, "policy": policy, "view": as_run, "live": second_phase(results["timeline"], results, "total_ms")}
        if as_run == "smoothed":  # the monitor's RTT as it was, at each decision (other views cap it at the floor)
            row["live"]["rtt_ms_median_by_cut"] = rtt_by_cut(results)
        line = (f"{name[:58]:58s} {row['live']['mbps']:g} Mbit/s live {row['live']['frames']:4d} "
                f"{row['live']['mean_ms']:6.0f} ms {next(iter(row['live']['cuts']))}")
        for view, options in VIEWS.items():
            simulated = simulate_live_run(results, policy, log=lambda *_: None, options={**calibration, **options})
            row[view] = second_phase(simulated["timeline"], results, "latency_ms")
            line += f" | {view} {row[view]['frames']:4d} {row[view]['mean_ms']:6.0f} {next(iter(row[view]['cuts']))}"
        row["same_cut"] = next(iter(row[as_run]["cuts"])) == next(iter(row["live"]["cuts"]))
        row["frames_simulated_over_live"] = round(row[as_run]["frames"] / row["live"]["frames"], 3)
        print(line + f" | as run ({as_run}): {'same' if row['same_cut'] else 'OTHER'} cut, "
              f"{row['frames_simulated_over_live']:.2f}x the frames", flush=True)
        table.append(row)
    by_view = {view: {"runs": len(rows), "same_cut": sum(row["same_cut"] for row in rows),
                      "frames_simulated_over_live": [min(r["frames_simulated_over_live"] for r in rows),
                                                     max(r["frames_simulated_over_live"] for r in rows)]}
               for view in VIEWS if (rows := [row for row in table if row["view"] == view])}
    print(json.dumps(by_view))
    save(args.name, {"command": " ".join(["python", *sys.argv]), "simulated": "beside live runs",
                     "calibration": calibration, "views": VIEWS, "by_view_as_run": by_view, "runs": table})
    return 0


if __name__ == "__main__":
    sys.exit(main())
