"""Learned bottleneck against image offload and quantized tensors: rate and accuracy, held out.

    python bench/bench_bottleneck.py --threads 2            # trains what is missing (~10 min each)
    python bench/bench_bottleneck.py --threads 2 --photos --settings 16x4 --shipped sample-scenes
    python bench/bench_bottleneck.py --threads 2 --photos --settings 32x4@0.01   # codes priced in training

Bottlenecks are distilled (``l2p_ros.bottleneck_training``, the ``l2p train-bottleneck`` path with
its defaults, augmented views included) on the first 80% in time of 300 frames spread over
vtest.avi, with ``--photos`` also on the first 80% of the training photos (``l2p fetch-assets``
puts them beside the sample media), for each (channels, bits) asked, and kept in
out/bench_bottleneck/ (``--retrain`` trains them again). ``--shipped`` adds bottlenecks from
models/bottleneck/ as they are (``NAME+ctx``: its codes range-coded with its context model, the
same detections in fewer bytes). Everything is then evaluated on frames the training never saw:

- in-domain: the last 20% of those frames (later in the same street scene); with ``--photos``
  also the training photos' last 20%;
- cross-domain: Megamind.avi (animation), the bundled photos, and a recorded bag (Megamind frames
  written as a CompressedImage bag, read back through the bag source).

Per setting: bytes per frame and detections of the full model matched (same class, IoU >= 0.5),
for network-resolution JPEG at several qualities, camera-size JPEG q75, int8+zstd at every cut
worth using, and each bottleneck; plus each bottleneck's encoder (edge) and decoder (cloud) ms
beside the head and tail they sit between. Targets (issue 9): in-domain, a bottleneck at <= 0.5x
the network-resolution JPEG-q75 bytes with >= 97% matched (stretch 0.25x at 95%); cross-domain
reported. Writes bench/results/bottleneck[_photos]_yolov3-tiny_416.json and docs/bottleneck_rate_accuracy[_photos].png.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import save  # noqa: E402

from l2p_ros import bottleneck_training as training  # noqa: E402
from l2p_ros.assets import asset_path, training_photos_dir  # noqa: E402
from l2p_ros.bag import write_image_bag  # noqa: E402
from l2p_ros.codec import CodecSpec  # noqa: E402
from l2p_ros.codec_spec import bottleneck_source  # noqa: E402
from l2p_ros.model.darknet import load_model  # noqa: E402
from l2p_ros.model.postprocess import load_class_names  # noqa: E402
from l2p_ros.sources import open_source  # noqa: E402
from l2p_ros.split import SplitDetector  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MODEL_ID = "yolov3-tiny-416"
JPEG = ("jpeg-q30", "jpeg-q50", "jpeg-q75", "jpeg-q95", "jpeg-full-q75")
TENSOR = ((5, "int8-tensor+zstd"), (7, "int8-tensor+zstd"), (7, "int8-channel+zstd"))
PHOTOS = ("messi5.jpg", "fruits.jpg", "basketball1.png")


def add_shipped_bottleneck_args(parser, bottlenecks: str = "sample-scenes,sample-scenes-wide") -> None:
    """The options of the benches that measure shipped bottlenecks on :func:`held_out_sets`."""
    parser.add_argument("--bottlenecks", default=bottlenecks,
                        help=f"models/bottleneck/ names or paths, comma separated (default: {bottlenecks})")
    parser.add_argument("--frames-per-clip", type=int, default=40)
    parser.add_argument("--threads", type=int, default=2)


def shipped_bottleneck_detector(args) -> tuple[SplitDetector, dict[str, CodecSpec]]:
    """Pretrained yolov3-tiny with the bottlenecks those options name (name -> codec), torch's CPU
    threads set."""
    torch.set_num_threads(args.threads)
    detector = SplitDetector(load_model("yolov3-tiny"), load_class_names(), MODEL_ID)
    return detector, {name: detector.add_bottleneck(name) for name in filter(None, args.bottlenecks.split(","))}


def vtest_split() -> tuple[list, list]:
    """The street scene's training frames and its held-out later ones: 300 frames over vtest.avi,
    the last 20% in time held out."""
    return training.split_in_time(training.read_frames([str(asset_path("vtest.avi"))], 300), 0.2)


def held_out_sets(frames_per_clip: int, photos: bool) -> tuple[list, dict[str, list]]:
    """The training frames (before augmentation) and each held-out set by name."""
    sources = [str(asset_path("vtest.avi"))] + ([str(training_photos_dir())] if photos else [])
    # As `l2p train-bottleneck --train vtest.avi [PHOTOS]` reads and splits them.
    train_frames, held_out = training.split_each_in_time(training.read_frames_per_source(sources, 300), 0.2)
    sets = dict(zip(["in-domain (vtest, later)", "training photos, later 20%"], held_out))
    megamind = training.read_frames([str(asset_path("Megamind.avi"))], frames_per_clip)
    sample_photos = [next(iter(open_source(asset_path(name)))).image_bgr for name in PHOTOS]
    with tempfile.TemporaryDirectory(prefix="l2p-bench-bag-") as folder:
        bag = Path(folder) / "megamind"
        write_image_bag(bag, open_source(asset_path("Megamind.avi"), max_frames=frames_per_clip), compressed=True)
        recorded = [frame.image_bgr for frame in open_source(bag)]
    return train_frames, {**sets, "Megamind.avi": megamind, "photos": sample_photos,
                          "bag (Megamind, CompressedImage)": recorded}


def parse_setting(setting: str) -> tuple[int, int, float]:
    """``CHANNELSxBITS[@RATE_WEIGHT]`` -> (channels, bits, rate_weight)."""
    shape, _, rate = setting.partition("@")
    channels, bits = (int(v) for v in shape.split("x"))
    return channels, bits, float(rate or 0)


def point(detector: SplitDetector, frames: list, references: list, cut, spec: CodecSpec) -> dict:
    measured = training.measure_codec(detector, frames, references, cut, spec)
    return {"codec": str(spec), "cut": str(cut), "bytes_mean": round(measured["bytes_mean"], 1),
            "matched_share": round(measured["matched_share"], 4),
            **{stage: round(measured[stage], 3) for stage in ("head_ms", "encode_ms", "decode_ms", "tail_ms")}}


def plot(results: dict, path: Path) -> None:
    import matplotlib
    import matplotlib.ticker
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    columns = min(3, len(results))
    rows_of_plots = -(-len(results) // columns)
    figure, axes = plt.subplots(rows_of_plots, columns, figsize=(5 * columns, 4.2 * rows_of_plots), squeeze=False)
    for axis in axes.flat[len(results):]:
        axis.set_visible(False)
    for axis, (setting, rows) in zip(axes.flat, results.items()):
        groups = {"JPEG, network resolution": [r for r in rows if r["codec"].startswith("jpeg-q")],
                  "JPEG, camera size": [r for r in rows if r["codec"].startswith("jpeg-full")],
                  "int8 + zstd": [r for r in rows if r["codec"].startswith("int8")],
                  "learned bottleneck": [r for r in rows if r["codec"].startswith("bn:") and "+" not in r["codec"]],
                  "learned bottleneck, range-coded (+ctx)": [r for r in rows if r["codec"].startswith("bn:")
                                                             and r["codec"].endswith("+ctx")]}
        for (label, group), marker in zip(groups.items(), "osD^v"):
            axis.plot([r["bytes_mean"] / 1e3 for r in group], [100 * r["matched_share"] for r in group],
                      marker, linestyle="-" if label.startswith("JPEG, n") else "none", label=label)
            for r in group:
                axis.annotate(r["codec"].replace("jpeg-", "").replace("bn:", "") + (f"@{r['cut']}" if r["codec"].startswith("int8") else ""),
                              (r["bytes_mean"] / 1e3, 100 * r["matched_share"]), fontsize=6)
        axis.set(title=setting, xlabel="KB per frame (log)", ylabel="% of the full model's detections", xscale="log")
        axis.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        axis.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    print(f"saved {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", default="8x4,16x4,32x4,16x2",
                        help="bottlenecks as CHANNELSxBITS or CHANNELSxBITS@RATE_WEIGHT (priced codes), comma "
                             "separated (default 8x4,16x4,32x4,16x2)")
    parser.add_argument("--frames-per-clip", type=int, default=40)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--retrain", action="store_true")
    parser.add_argument("--photos", action="store_true", help="distil on the training photos too")
    parser.add_argument("--shipped", default="", help="models/bottleneck/ names to evaluate as they are, comma "
                        "separated (NAME+ctx: its codes range-coded)")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "out" / "bench_bottleneck")
    parser.add_argument("--tag", default="", help="an exploration's name: results in bench/results/bottleneck*_TAG_*.json "
                        "and its plot in --out-dir, beside (not over) the comparison docs/benchmarks.md shows")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model("yolov3-tiny")
    detector = SplitDetector(model, load_class_names(), MODEL_ID)
    train_frames, sets = held_out_sets(args.frames_per_clip, args.photos)
    trained = {}
    for setting in filter(None, args.settings.split(",")):
        channels, bits, rate_weight = parse_setting(setting)
        rate_suffix = f"-r{rate_weight:g}" if rate_weight else ""
        path = args.out_dir / f"{'photos' if args.photos else 'vtest'}-c{channels}-b{bits}{rate_suffix}.safetensors"
        if args.retrain or not path.is_file():
            views = training.augmented_views(train_frames, training.AUGMENT_VIEWS)
            print(f"distilling {path.name} on {len(train_frames)} frames (+{len(views) - len(train_frames)} views) ...",
                  flush=True)
            bottleneck, record = training.train(model, MODEL_ID, views, cut=7, channels=channels, bits=bits,
                                                rate_weight=rate_weight)
            sources = "vtest.avi" + (" + training photos" if args.photos else "")
            bottleneck.info.training.update(record, sources=[f"{sources} (first 80% of 300 frames each)"],
                                            augmented_views=training.AUGMENT_VIEWS)
            bottleneck.save(path)
        spec = detector.add_bottleneck(path)
        trained[str(spec)] = detector.bottleneck(spec).info.training
    for name in filter(None, args.shipped.split(",")):
        source, coder = bottleneck_source(f"bn:{name}")
        spec = dataclasses.replace(detector.add_bottleneck(source), compression=coder)
        trained[str(spec)] = detector.bottleneck(spec).info.training
    results = {}
    for setting, frames in sets.items():
        references = [detector.detect(frame) for frame in frames]
        print(f"\n{setting}: {len(frames)} frames, {sum(map(len, references))} detections of the full model")
        print(f"{'codec':>22} {'cut':>5} {'KB':>7} {'matched':>8} {'head':>6} {'enc':>6} {'dec':>6} {'tail':>6}")
        rows = [point(detector, frames, references, "cloud", CodecSpec.parse(name)) for name in JPEG]
        rows += [point(detector, frames, references, cut, CodecSpec.parse(name)) for cut, name in TENSOR]
        rows += [point(detector, frames, references, 7, CodecSpec.parse(name)) for name in trained]
        jpeg75 = next(r for r in rows if r["codec"] == "jpeg-q75")["bytes_mean"]
        for row in rows:
            row["bytes_vs_jpeg_q75"] = round(row["bytes_mean"] / jpeg75, 4)
            print(f"{row['codec']:>22} {row['cut']:>5} {row['bytes_mean'] / 1e3:7.1f} {row['matched_share']:8.1%} "
                  f"{row['head_ms']:6.2f} {row['encode_ms']:6.2f} {row['decode_ms']:6.2f} {row['tail_ms']:6.2f}")
        results[setting] = rows
    suffix = ("_photos" if args.photos else "") + (f"_{args.tag}" if args.tag else "")
    save(f"bottleneck{suffix}_yolov3-tiny_416", {"command": " ".join(["python", *sys.argv]), "trained": trained,
                                                 "results": results})
    plot(results, (args.out_dir if args.tag else ROOT / "docs") / f"bottleneck_rate_accuracy{suffix}.png")


if __name__ == "__main__":
    main()
