"""Collect the per-frame costs the simulator charges besides layers and link (issue 11, item 3).

    python bench/frame_costs.py [--out models/profiles/frame-costs-yolov3-tiny-416-cpu-vm-2core.yaml]
    python bench/frame_costs.py --bottlenecks-only   # price newly shipped bottlenecks, the rest kept
    python bench/frame_costs.py --dnn-tables-only    # price jpeg-dnn-qN beside jpeg-qN, the rest kept

From measurements already saved by four benches on this machine (rerun them to re-measure):
bench/bench_codec.py (tensor codecs' encode and decode at several cuts, fitted as a line in the
crossing's fp32 MB), bench/bench_image_offload.py (image codecs' encode and receive, averaged
over its two videos), bench/bench_decision.py (frame complexity, and a searching policy's
decision) and bench/bench_bottleneck_compute.py (each shipped bottleneck's encode and decode as
deployed on this CPU: its packed encoder, its decoder in bfloat16 where the CPU has it natively,
averaged over the bench's held-out frame sets; a bottleneck carrying a context model is priced as
``bn:NAME+ctx`` too: its zstd price plus the range coder's extra encode and decode ms over zstd,
both measured side by side on its held-out frames and recorded in the file). Writes the file
l2p_ros.measure.frame_costs reads. ``--bottlenecks-only`` rewrites only its bottleneck prices
in an existing file, so shipping a bottleneck does not move the figures already computed from it.
``--dnn-tables-only`` adds ``jpeg-dnn-qN`` to an existing file the same way: each priced as the
file's ``jpeg-qN`` times the ratio of the two measured in one run of the image bench (the file's
prices and that run may come from different hosts; a ratio of two JPEG encoders of the same image
travels between them better than either time).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from l2p_ros.measure.frame_costs import FrameCosts, fit_tensor_codecs, load_frame_costs

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
CODEC = RESULTS / "codec_yolov3-tiny_416.json"
IMAGE = RESULTS / "image_offload_yolov3-tiny_416.json"
DECISION = RESULTS / "decision_cost.json"
BOTTLENECK_COMPUTE = RESULTS / "bottleneck_compute_yolov3-tiny_416.json"


def _load(path: Path) -> dict:
    if not path.is_file():
        raise SystemExit(f"{path} not found: run the bench that writes it first")
    return json.loads(path.read_text())


def _fill_qualities(image_costs: dict) -> list[str]:
    """Add JPEG qualities the image bench skipped (every 5 within its range), interpolated
    linearly between the measured ones either side; returns their names."""
    added = []
    for family in ("jpeg-q", "jpeg-full-q", "jpeg-dnn-q"):
        measured = sorted(int(name.removeprefix(family)) for name in image_costs
                          if name.startswith(family) and name.removeprefix(family).isdigit())
        if not measured:
            continue
        for quality in range(measured[0], measured[-1] + 1, 5):
            if quality in measured:
                continue
            low = max(q for q in measured if q < quality)
            high = min(q for q in measured if q > quality)
            weight = (quality - low) / (high - low)
            image_costs[f"{family}{quality}"] = {
                key: round((1 - weight) * image_costs[f"{family}{low}"][key] + weight * image_costs[f"{family}{high}"][key], 4)
                for key in ("encode_ms", "receive_ms")}
            added.append(f"{family}{quality}")
    return added


def _image_rows(image: dict) -> dict[str, list[dict]]:
    """The image bench's rows by codec, one per clip."""
    rows: dict[str, list[dict]] = {}
    for clip_rows in image["results"].values():
        for row in clip_rows:
            rows.setdefault(row["codec"], []).append(row)
    return rows


def _dnn_table_costs(image: dict, priced: dict) -> dict:
    """``jpeg-dnn-qN`` -> encode and receive ms: ``priced``'s ``jpeg-qN`` times the ratio of the
    image bench's means over its clips (one run), for each quality it measured both at."""
    rows = _image_rows(image)
    costs = {}
    for name in sorted(rows):
        base = name.replace("jpeg-dnn-q", "jpeg-q")
        if not name.startswith("jpeg-dnn-q") or base not in rows or base not in priced:
            continue
        costs[name] = {key: round(priced[base][key] * statistics.mean(r[f"{key}_median"] for r in rows[name])
                                  / statistics.mean(r[f"{key}_median"] for r in rows[base]), 4)
                       for key in ("encode_ms", "receive_ms")}
    return costs


def _bottleneck_source(results: dict) -> str:
    """Where the bottleneck prices come from, as the file's ``sources`` records it."""
    return (f"bench/results/{BOTTLENECK_COMPUTE.name} ({results['command']}; each bottleneck as deployed, "
            f"its decoder {results['deployed']}, mean over its held-out frame sets)")


def _bottleneck_costs(results: dict) -> dict:
    """``bn:NAME`` -> encode and decode ms for each bottleneck in models/bottleneck/, as deployed on
    this CPU (bench_bottleneck_compute.py's ``deployed`` decoder row), averaged over its frame sets:
    the cost depends on the bottleneck's shape, not on what the frames hold."""
    from l2p_ros.bottleneck_file import read_bottleneck

    rows: dict[str, list[dict]] = {}
    for frame_set in results["results"].values():
        for name, decoders in frame_set.items():
            if isinstance(decoders, dict):  # beside "frames" and "reference_detections"
                rows.setdefault(name, []).append(decoders[results["deployed"]])
    costs = {}
    for path in sorted((ROOT / "models" / "bottleneck").glob("*.safetensors")):
        if path.stem not in rows:
            print(f"{path.name}: not in {BOTTLENECK_COMPUTE.name}: left uncharged "
                  "(run bench/bench_bottleneck_compute.py)", file=sys.stderr)
            continue
        info, _ = read_bottleneck(path)
        costs[f"bn:{path.stem}"] = {key: round(statistics.mean(row[key] for row in rows[path.stem]), 4)
                                    for key in ("encode_ms", "decode_ms")}
        held_out = info.training.get("held_out") or {}
        if "context_encode_ms_median" in held_out:
            costs[f"bn:{path.stem}+ctx"] = {
                key: round(costs[f"bn:{path.stem}"][key]
                           + max(0.0, held_out[f"context_{key}_median"] - held_out[f"{key}_median"]), 4)
                for key in ("encode_ms", "decode_ms")}
    return costs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "models/profiles/frame-costs-yolov3-tiny-416-cpu-vm-2core.yaml")
    parser.add_argument("--bottlenecks-only", action="store_true",
                        help="rewrite only the bottleneck prices of the existing --out file")
    parser.add_argument("--dnn-tables-only", action="store_true",
                        help="add jpeg-dnn-qN to the existing --out file, priced by their ratio to jpeg-qN")
    args = parser.parse_args()
    if args.dnn_tables_only:
        costs = load_frame_costs(args.out)
        image = _load(IMAGE)
        dnn = _dnn_table_costs(image, costs.image_codecs)
        costs.image_codecs = {name: cost for name, cost in costs.image_codecs.items()
                              if not name.startswith("jpeg-dnn-q")} | dnn
        interpolated = _fill_qualities(costs.image_codecs)
        costs.sources["dnn_tables"] = (f"jpeg-dnn-qN: jpeg-qN's price times their ratio in bench/results/{IMAGE.name} "
                                       f"({image['command']}; run on {image['machine'].get('cpu', 'an unnamed CPU')}); "
                                       f"interpolated: {', '.join(interpolated) or 'none'}")
        costs.save(args.out)
        print(f"wrote {args.out}: {len(dnn)} jpeg-dnn qualities priced, {len(interpolated)} interpolated, the rest kept")
        return 0
    if args.bottlenecks_only:
        costs = load_frame_costs(args.out)
        bottleneck = _load(BOTTLENECK_COMPUTE)
        costs.bottleneck_codecs = _bottleneck_costs(bottleneck)
        costs.sources["bottleneck_codecs"] = _bottleneck_source(bottleneck)
        costs.save(args.out)
        print(f"wrote {args.out}: {len(costs.bottleneck_codecs)} bottlenecks priced, the rest kept")
        return 0
    codec, image, decision, bottleneck = _load(CODEC), _load(IMAGE), _load(DECISION), _load(BOTTLENECK_COMPUTE)
    image_costs = {name: {"encode_ms": round(statistics.mean(r["encode_ms_median"] for r in rows), 4),
                          "receive_ms": round(statistics.mean(r["receive_ms_median"] for r in rows), 4)}
                   for name, rows in _image_rows(image).items()}
    interpolated = _fill_qualities(image_costs)
    greedy = decision["models"]["yolov3-tiny"]["policies"]["greedy"]["decide"]["median_us"]
    costs = FrameCosts(
        "yolov3-tiny", codec["machine"],
        {"tensor_codecs": f"bench/results/{CODEC.name} ({json.dumps(codec['args'])})",
         "image_codecs": f"bench/results/{IMAGE.name} ({image['command']})",
         "per_frame": f"bench/results/{DECISION.name} (complexity; greedy's decision)",
         "bottleneck_codecs": _bottleneck_source(bottleneck),
         "interpolated": f"{', '.join(interpolated)}: between the measured qualities either side"},
        {"complexity": round(decision["complexity_us"]["median_us"] / 1e3, 4), "decision": round(greedy / 1e3, 4)},
        image_costs, fit_tensor_codecs(codec["rows"]), _bottleneck_costs(bottleneck))
    costs.save(args.out)
    print(f"wrote {args.out}: {len(image_costs)} image codecs, {len(costs.tensor_codecs)} tensor codecs, "
          f"{len(costs.bottleneck_codecs)} bottlenecks, "
          f"{costs.edge_per_frame_ms:.2f} ms per frame on the edge")
    return 0


if __name__ == "__main__":
    sys.exit(main())
