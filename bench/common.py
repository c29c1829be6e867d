"""Shared helpers for the benchmark scripts: real frames, timing, result files."""
from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np
import torch

from l2p_ros.assets import SAMPLE_VIDEO, asset_path
from l2p_ros.measure.host import cpu_model
from l2p_ros.sources import read_video

RESULTS_DIR = Path(__file__).with_name("results")
ROOT = RESULTS_DIR.parents[1]
# The simulated figures' committed inputs (models/profiles/README.md): the edge profile measured on
# the project's 2-core VM and the simulator's video table of 60 real frames per clip.
COMMITTED_EDGE_PROFILE = "models/profiles/yolov3-tiny-416-cpu-t1-vm-2core.yaml"
COMMITTED_VIDEO_TABLE = "models/profiles/video-yolov3-tiny-416-pretrained-vtest+Megamind-n60.npz"


def sample_frames(count: int, stride: int = 1, start: int = 0) -> list[np.ndarray]:
    """``count`` real BGR frames of the sample video, every ``stride``-th from ``start``."""
    frames = []
    for index, frame in read_video(asset_path(SAMPLE_VIDEO)):
        if len(frames) == count:
            break
        if index >= start and (index - start) % stride == 0:
            frames.append(frame)
    if len(frames) < count:
        raise SystemExit(f"sample video has fewer than {count} frames at stride {stride}")
    return frames


def add_cloud_stage_args(parser, paths: str) -> None:
    """The options of the benches that run the cloud stage on frames encoded at a cut: the model,
    where it runs, and the comma-separated ``cut:codec`` paths (default ``paths``)."""
    parser.add_argument("--model", default="yolov3-tiny")
    parser.add_argument("--size", type=int, default=416)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--precision", default="fp32", help="fp32, or fp16 on CUDA")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--paths", default=paths, help="comma-separated cut:codec pairs (the codec may be bn:NAME)")


def cloud_stage_detector(args):
    """The SplitDetector those options name, with torch's CPU threads set."""
    from l2p_ros.measure.models import load_measured_model, model_id
    from l2p_ros.model.postprocess import load_class_names
    from l2p_ros.split import SplitDetector

    torch.set_num_threads(args.threads)
    return SplitDetector(load_measured_model(args.model, args.size), load_class_names(),
                         model_id(args.model, args.size), device=args.device, precision=args.precision)


def cut_codec_paths(text: str) -> list[tuple[str, str]]:
    """"8:fp32,7:bn:NAME" -> [("8", "fp32"), ("7", "bn:NAME")]: the cut is up to the first colon."""
    return [tuple(path.split(":", 1)) for path in text.split(",")]


def machine() -> dict:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu": cpu_model(), "torch": torch.__version__, "torch_threads": torch.get_num_threads()}


def save(name: str, data: dict) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **data}, indent=1))
    print(f"saved {path}")
    return path


def require_testbed() -> None:
    """Exit saying why when this machine cannot hold an l2p testbed (root, namespaces, tbf, cgroups)."""
    from l2p_ros.testbed.system import unavailable_reason

    reason = unavailable_reason()
    if reason:
        raise SystemExit(f"testbed unavailable: {reason}")


def write_rate_trace(path: Path, steps: list[tuple[float, float]]) -> Path:
    """A bandwidth trace in the simulator's CSV format: each (time_s, Mbit/s) holds until the next."""
    path.write_text("time_s,bandwidth_mbps\n" + "".join(f"{t:g},{rate:g}\n" for t, rate in steps))
    return path


def interior_share(cut_histogram: dict) -> float:
    """The share of a run's frames cut inside the network (neither the image sent nor all on the edge)."""
    return sum(n for cut, n in cut_histogram.items() if cut not in ("cloud", "edge")) / max(1, sum(cut_histogram.values()))


def use_committed_video_table() -> None:
    """The simulator reads its video table from the cache: put the committed one there (the same
    name, so a table measured on this host is the same file)."""
    import shutil

    from l2p_ros.assets import cache_dir

    target = cache_dir() / "simulation" / Path(COMMITTED_VIDEO_TABLE).name
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / COMMITTED_VIDEO_TABLE, target)
