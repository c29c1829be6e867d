"""Write the cloud batching curves the cost model and the simulator use for a fleet
(l2p_ros/policies/cloud_batching.py) from a fleet bench's capacity runs.

    python bench/cloud_batching.py bench/results/fleet_yolov3-tiny_cuda_h200.json \
        --machine "NVIDIA H200" --out models/profiles/cloud-batching-yolov3-tiny-416-cuda-h200.yaml

The tensor curve comes from the runs at a chain cut, the image curve from image offload (its JPEG
decoding does not batch); each batch size's throughput is the median run's, as the bench reports.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from l2p_ros.policies.cloud_batching import BatchCurve, CloudBatching


def curves_from_bench(results: dict) -> dict[str, BatchCurve]:
    by_kind: dict[str, dict[int, float]] = {"tensor": {}, "image": {}}
    for row in results["capacity"]:
        kind = "image" if row["cut"] in ("cloud", "image", "-1") else "tensor"
        by_kind[kind][int(row["batch"])] = float(row["frames_per_s"])
    return {kind: BatchCurve.from_capacity(rates) for kind, rates in by_kind.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path, help="a bench_fleet.py JSON with capacity runs")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--machine", required=True, help="what it was measured on, e.g. 'NVIDIA H200, 2 CPU threads'")
    args = parser.parse_args()
    results = json.loads(args.results.read_text())
    torch = results.get("machine", {}).get("torch", "")
    batching = CloudBatching(curves_from_bench(results), f"{args.machine} ({results.get('device')}, torch {torch})",
                             f"{args.results} ({results.get('model')}, {results.get('precision')})")
    path = batching.save(args.out)
    for kind, curve in batching.curves.items():
        print(f"{kind}: " + ", ".join(f"b{b} x{f:.2f}" for b, f in zip(curve.sizes, curve.factors)))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
