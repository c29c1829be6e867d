"""Where measurements are kept, and measuring them once when they are missing.

Everything measured on real frames or on this machine lives under ``cache_dir()`` (``$L2P_CACHE_DIR``
or the user cache): profiles are per machine (host, device, threads); payload fits and video tables
depend on the model, its weights and the frames, not on the machine. File names and formats are
those the files have always had, so caches from earlier versions stay valid.
"""
from __future__ import annotations

import socket
from pathlib import Path
from typing import Sequence

import numpy as np

from l2p_ros.assets import SAMPLE_VIDEO, asset_path, cache_dir
from l2p_ros.codec_spec import CODECS
from l2p_ros.measure.models import load_measured_model, model_id, model_name, weights_label
from l2p_ros.measure.payload_fit import RAW_IMAGE, fit_payloads, load_payload_fit
from l2p_ros.measure.profile import PROFILED_IMAGE_CODECS, ProfileError, load_profile
from l2p_ros.model.graph import INPUT


def profile_path(model_id_: str, device: str, threads: int, cpu_quota: float | None = None) -> Path:
    """Where the profile of a model on this host is kept (:func:`ensure_profile`); ``cpu_quota``: one
    measured inside a CPU limit of that many cores (the testbed's edge)."""
    limit = "" if cpu_quota is None else f"-q{cpu_quota:.2f}"
    return cache_dir() / "profiles" / f"{model_id_}-{device}-t{threads}{limit}-{socket.gethostname()}.yaml"


def is_current_profile(path: Path) -> bool:
    """A cached profile that exists and has every image codec profiled today (one from before
    network-resolution offload lacks some, and is measured again)."""
    return path.is_file() and set(PROFILED_IMAGE_CODECS) <= set(load_profile(path).cut(INPUT).payload_bytes)


def payload_fit_path(model_id_: str, weights: str) -> Path:
    """Where :func:`ensure_payload_fit` keeps a model's fit: beside the profiles."""
    return cache_dir() / "profiles" / f"{model_id_}-{weights}-payload-fit.yaml"


def video_table_path(model: str, input_size: int, frames_per_clip: int, clips: Sequence[str],
                     weights: Path | None) -> Path:
    """Where the simulator's video table of these settings is kept."""
    tag = Path(weights).stem if weights else weights_label(model)
    clip_tag = "+".join(Path(clip).stem for clip in clips)
    return cache_dir() / "simulation" / f"video-{model_name(model)}-{input_size}-{tag}-{clip_tag}-n{frames_per_clip}.npz"


def ensure_profile(model: str, input_size: int, *, threads: int, device: str = "cpu",
                   weights: Path | None = None, repeats: int = 10, log=print) -> Path:
    """The cached profile of this model on this host, measured now if there is none yet, or if the
    cached one lacks an image codec profiled today (one from before network-resolution offload)."""
    path = profile_path(model_id(model, input_size), device, threads)
    if is_current_profile(path):
        return path
    from l2p_ros.measure.profiler import profile_model
    from l2p_ros.sources import read_video

    log(f"profiling {model_id(model, input_size)} on this host ({threads} threads, {device}) into {path} ...")
    network = load_measured_model(model, input_size, weights)
    frame = next((image for _, image in read_video(asset_path(SAMPLE_VIDEO), [0])), None)
    if frame is None:
        raise ProfileError(f"cannot read a frame of {SAMPLE_VIDEO} to profile payload sizes")
    profile = profile_model(network, frame, device=device, threads=threads, repeats=repeats, warmup=2,
                            model_info={"name": model_name(model), "weights": weights_label(model, weights)})
    profile.save(path)
    return path


def ensure_payload_fit(model: str, input_size: int, *, frames_per_clip: int = 24,
                       clips: Sequence[str] | None = None, codecs: Sequence[str] = (*CODECS, RAW_IMAGE),
                       log=print, progress_factory=None) -> Path:
    """The cached fit of this model over every chain cut, measured now unless the cached one has
    these frames and clips and at least these codecs. ``clips``: asset names (default: the sample
    video). Models other than yolov3-tiny run with random weights (no pretrained weights
    offline) and say so."""
    clips = list(clips or [SAMPLE_VIDEO])
    weights = weights_label(model)
    path = payload_fit_path(model_id(model, input_size), weights)
    request = {"frames_per_clip": frames_per_clip, "clips": clips, "codecs": list(codecs)}
    if path.is_file():
        cached = load_payload_fit(path).source.get("request", {})
        if {**cached, "codecs": request["codecs"]} == request and set(request["codecs"]) <= set(cached["codecs"]):
            return path
    from l2p_ros.measure.payloads import clip_frames, measure_payloads, spread_indices

    log(f"fitting payload bytes of {model_id(model, input_size)} ({weights} weights) on "
        f"{frames_per_clip} real frames of {', '.join(clips)} into {path} ...")
    network = load_measured_model(model, input_size)
    all_frames, complexity, indices = [], [], {}
    for clip in clips:
        indices[clip] = spread_indices(asset_path(clip), frames_per_clip)
        frames, scores = clip_frames(asset_path(clip), indices[clip])
        all_frames += frames
        complexity.append(scores)
    bar = progress_factory(total=len(all_frames)) if progress_factory else None
    samples = measure_payloads(network, all_frames, np.concatenate(complexity), codecs=codecs,
                               source={"request": request, "frame_indices": indices},
                               progress=bar.update if bar else None)
    if bar:
        bar.close()
    fit = fit_payloads(samples, {"name": model_name(model), "input_size": input_size,
                                 "num_layers": len(network.spec.layers), "weights": weights})
    fit.save(path)
    return path
