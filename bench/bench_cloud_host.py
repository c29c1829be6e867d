"""Where the cloud stage's time goes per frame: decoding, the batched tail, post-processing.

    python bench/bench_cloud_host.py                                  # this CPU, yolov3-tiny
    python bench/bench_cloud_host.py --device cuda --batches 1,8,32   # on a GPU
    python bench/bench_cloud_host.py --paths 7:bn:sample-scenes,7:bn:sample-scenes-wide   # bottlenecks

On a GPU the tail of a batch of 32 takes ~0.1 ms a frame, so whatever the host does per frame
(validating and decoding the payload, post-processing) decides the cloud's capacity. This bench
times each part on real frames of the sample video encoded at the cut, the device waited for
after each part, ``--rounds`` times (medians reported, ms per frame):

- ``decode``: ``SplitDetector``'s validation and decoding of each received frame, onto the device
  (for a bottleneck, ``bn:NAME``, its decoder's convolutions too), one frame after another;
- ``decode on N threads``: the same on ``--decode-workers`` threads (wall time over the frames);
- ``tail``: the rest of the network on the stacked batch;
- ``post frame by frame``: :func:`postprocess` on each frame's rows of the batch's outputs (how
  the batched stage post-processed until stop 21);
- ``post batched``: :func:`postprocess_batch` on the whole batch (what the stage does now); both
  post-processings repeated to cover 32 frames a round, alternating which goes first;
- ``stage``: :meth:`SplitDetector.cloud_batch` on the batch (with the decode workers), wall time.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (add_cloud_stage_args, cloud_stage_detector, cut_codec_paths, sample_frames,  # noqa: E402
                    save)

from l2p_ros import codec  # noqa: E402
from l2p_ros.measure.models import model_id, weights_label  # noqa: E402
from l2p_ros.model.device import synchronize  # noqa: E402
from l2p_ros.model.postprocess import postprocess, postprocess_batch  # noqa: E402
from l2p_ros.split import SplitDetector  # noqa: E402


def timed_ms(device: torch.device, work) -> tuple[float, object]:
    """Wall ms of ``work()`` with the device waited for before and after, and its result."""
    synchronize(device)
    start = time.perf_counter()
    result = work()
    synchronize(device)
    return (time.perf_counter() - start) * 1e3, result


def one_round(detector: SplitDetector, frames, workers: int, batched_first: bool = False) -> dict[str, float]:
    """Each part's ms per frame for one batch of received ``frames`` (all at one cut)."""
    device, count = detector.device, len(frames)
    with torch.inference_mode():
        decode_ms, received = timed_ms(device, lambda: [detector._receive(frame) for frame in frames])
        parallel_ms, _ = timed_ms(device, lambda: detector._receive_all(frames, workers))
        cut, infos = received[0][0], [r[2] for r in received]
        stacked = {node: torch.cat([r[1][node] for r in received]) for node in cut.crossing}
        tail_ms, outputs = timed_ms(device, lambda: detector.runner.tail(stacked, cut))
        names, threshold, iou = detector.class_names, detector.score_threshold, detector.nms_iou
        repeats = max(1, 32 // count)  # one short call is too few microseconds to time alone

        def by_frame():
            for _ in range(repeats):
                found = [postprocess([out[i:i + 1] for out in outputs], infos[i], names, threshold, iou)
                         for i in range(count)]
            return found

        def batched():
            for _ in range(repeats):
                found = postprocess_batch(outputs, infos, names, threshold, iou)
            return found

        if batched_first:  # alternated: whichever runs first after the tail finds colder caches
            batched_ms, together = timed_ms(device, batched)
            frame_ms, alone = timed_ms(device, by_frame)
        else:
            frame_ms, alone = timed_ms(device, by_frame)
            batched_ms, together = timed_ms(device, batched)
        stage_ms, results = timed_ms(device, lambda: detector.cloud_batch(frames, decode_workers=workers))
    if together != alone or [r.detections for r in results] != alone:
        raise SystemExit("batched post-processing or cloud_batch disagrees with frame-by-frame post-processing")
    return {"decode": decode_ms / count, "decode_parallel": parallel_ms / count, "tail": tail_ms / count,
            "post_frame_by_frame": frame_ms / count / repeats, "post_batched": batched_ms / count / repeats,
            "stage": stage_ms / count}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_cloud_stage_args(parser, paths="8:fp32,8:int8-channel+zstd,cloud:jpeg-q75")
    parser.add_argument("--batches", default="1,4,16", help="batch sizes (at most 32)")
    parser.add_argument("--rounds", type=int, default=5, help="repetitions; medians are reported")
    parser.add_argument("--decode-workers", type=int, default=2, help="threads of the parallel decode and the stage")
    parser.add_argument("--out", default=None,
                        help="result name under bench/results (default: cloud_host_<model>_<device>)")
    args = parser.parse_args()
    detector = cloud_stage_detector(args)
    detector.warm_up()
    images = sample_frames(32, stride=7, start=10)
    batches = [int(b) for b in args.batches.split(",")]
    data = {"model": model_id(args.model, args.size), "weights": weights_label(args.model),
            "device": str(detector.device), "precision": args.precision, "threads": args.threads,
            "rounds": args.rounds, "decode_workers": args.decode_workers, "command": " ".join(sys.argv), "rows": []}
    parts = ("decode", "decode_parallel", "tail", "post_frame_by_frame", "post_batched", "stage")
    print(f"{data['model']} on {detector.device} {args.precision}, {args.threads} threads; ms per frame, "
          f"median of {args.rounds}")
    print(f"{'cut / codec':>24} {'batch':>5} " + " ".join(f"{p:>19}" for p in parts) + f" {'post x':>7}")
    for cut, codec_name in cut_codec_paths(args.paths):
        path = f"{cut}:{codec_name}"
        spec = codec.CodecSpec.parse(codec_name)
        frames = [detector.edge(image, cut, spec) for image in images]
        for batch in batches:
            chunk = frames[:batch]
            one_round(detector, chunk, args.decode_workers)  # warm: the CPU packs weights once per batch shape
            runs = [one_round(detector, chunk, args.decode_workers, batched_first=bool(i % 2))
                    for i in range(args.rounds)]
            row = {"cut": cut, "codec": codec_name, "batch": batch,
                   "payload_kb": statistics.fmean(f.payload_bytes for f in chunk) / 1e3,
                   **{f"{p}_ms": statistics.median(r[p] for r in runs) for p in parts}}
            row["post_speedup"] = row["post_frame_by_frame_ms"] / row["post_batched_ms"]
            data["rows"].append(row)
            print(f"{path:>24} {batch:>5} " + " ".join(f"{row[f'{p}_ms']:>19.3f}" for p in parts)
                  + f" {row['post_speedup']:>7.2f}")
    save(args.out or f"cloud_host_{args.model}_{detector.device.type}", data)


if __name__ == "__main__":
    main()
