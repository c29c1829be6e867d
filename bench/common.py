"""Shared helpers for the benchmark scripts: real frames, timing, result files."""
from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np
import torch

from l2p_ros.assets import SAMPLE_VIDEO, asset_path
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


def machine() -> dict:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads()}


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
