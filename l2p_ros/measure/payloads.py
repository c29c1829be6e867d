"""The one loop that measures bytes on the wire on REAL frames, and the frames it reads.

Measured, not guessed (invariant 6): the model runs on real frames and every layer output a cut
may carry is encoded as the edge encodes it (``l2p_ros.codec``), each alone, as each crossing
tensor is sent as its own record; the bytes of a cut are the sum over its crossing tensors. The
profile (one frame), the payload fit (frames of a clip, against their complexity) and the
simulator's video table (frames of several clips) are all this loop on different frames.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import torch

from l2p_ros import codec
from l2p_ros.complexity import ComplexityMeter
from l2p_ros.measure.payload_fit import RAW_IMAGE, PayloadSamples, is_image_codec
from l2p_ros.measure.profile import ProfileError
from l2p_ros.model.darknet import Darknet
from l2p_ros.model.graph import INPUT, crossing_bytes
from l2p_ros.model.postprocess import letterbox, resize_to_input
from l2p_ros.model.runner import SplitRunner
from l2p_ros.sources import read_video, video_frame_count


@dataclass
class FrameBytes:
    """What :func:`measure_frames` measured on R frames of a model with L layers.

    ``tensor_bytes`` (R, C, L): layer l's output encoded alone under ``tensor_codecs[c]`` (data
    plus quantization parameters, as ``codec.payload_size_bytes`` counts them); 0 for layers not
    kept. ``image_bytes`` (R, J): the frame under ``image_codecs[j]``, as the edge sends it
    (``jpeg-qN`` at network resolution, ``jpeg-full-qN`` at its own size; ``raw``: the letterboxed
    input's uint8 bytes). ``compute_ms`` (R,): the forward pass, when timed.
    """

    tensor_codecs: tuple[str, ...]
    image_codecs: tuple[str, ...]
    tensor_bytes: np.ndarray
    image_bytes: np.ndarray
    compute_ms: np.ndarray

    def cut_bytes(self, crossing: Iterable[int], codec_name: str) -> np.ndarray:
        """(R,) bytes of a cut carrying the ``crossing`` layer outputs under a tensor codec."""
        return self.tensor_bytes[:, self.tensor_codecs.index(codec_name), list(crossing)].sum(axis=1)


@torch.inference_mode()
def measure_frames(model: Darknet, frames: Iterable[np.ndarray], *, tensor_codecs: Sequence[str] = (),
                   image_codecs: Sequence[str] = (), keep_layers: Iterable[int] | None = None,
                   time_compute: bool = False, progress: Callable[[int], None] | None = None) -> FrameBytes:
    """Bytes on the wire of every kept layer output (default: every layer) and of the image, per frame.

    One forward pass per frame runs the layers up to the last kept one, on the model's device.
    ``time_compute`` times that pass after one untimed warm-up pass (lazy initialisation).
    """
    runner = SplitRunner(model)
    num_layers = runner.graph.num_layers
    keep = sorted(range(num_layers) if keep_layers is None else set(keep_layers))
    layers = range(keep[-1] + 1) if tensor_codecs and keep else range(0)
    specs = [codec.CodecSpec.parse(name) for name in tensor_codecs]
    raw_bytes = crossing_bytes(runner.graph.chain_cut(INPUT), model.output_shapes, runner.input_shape, 1)
    image_specs = [None if name == RAW_IMAGE else codec.CodecSpec.parse(name) for name in image_codecs]
    device = next(model.parameters()).device
    tensor_rows, image_rows, compute_ms, warmed_up = [], [], [], not time_compute
    for frame in frames:
        sizes = np.zeros((len(specs), num_layers), dtype=np.int64)
        if layers:
            image = letterbox(frame, model.input_size)[0].to(device)
            if not warmed_up:
                runner.run_segment({INPUT: image}, layers, keep)
                warmed_up = True
            start = time.perf_counter()
            outputs = runner.run_segment({INPUT: image}, layers, keep)
            if time_compute:
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                compute_ms.append((time.perf_counter() - start) * 1e3)
            for layer, tensor in outputs.items():
                for s, spec in enumerate(specs):
                    sizes[s, layer] = codec.payload_size_bytes(codec.encode_tensors({layer: tensor}, spec))
        tensor_rows.append(sizes)
        resized = resize_to_input(frame, model.input_size) if any(s and not s.full_size for s in image_specs) else None
        image_rows.append([raw_bytes if s is None else
                           len(codec.encode_image(frame if s.full_size else resized, s.quality, s.tables))
                           for s in image_specs])
        if progress:
            progress(1)
    return FrameBytes(tuple(tensor_codecs), tuple(image_codecs),
                      np.stack(tensor_rows) if tensor_rows else np.zeros((0, len(specs), num_layers), np.int64),
                      np.array(image_rows, dtype=np.int64).reshape(len(image_rows), len(image_codecs)),
                      np.array(compute_ms))


def measure_payloads(model: Darknet, frames: Sequence[np.ndarray], complexity: Sequence[float],
                     cuts: Sequence[int] | None = None,
                     codecs: Sequence[str] = (*codec.CODECS, RAW_IMAGE),
                     source: Mapping | None = None, progress=None) -> PayloadSamples:
    """Bytes on the wire of every (chain cut, codec) on real ``frames`` (default: every chain cut),
    as ``(complexity, bytes)`` samples for ``payload_fit.fit_payloads``. Image codecs are measured
    at image offload (cut -1), tensor codecs at the tensor cuts; ``compute_ms`` times the forward
    pass up to the last tensor cut."""
    graph = SplitRunner(model).graph
    cuts = list(range(INPUT, graph.num_layers)) if cuts is None else sorted(cuts)
    tensor_cuts = [graph.chain_cut(k) for k in cuts if k != INPUT]
    tensor_codecs = [c for c in codecs if not is_image_codec(c)] if tensor_cuts else []
    image_codecs = [c for c in codecs if is_image_codec(c)] if INPUT in cuts else []
    measured = measure_frames(model, frames, tensor_codecs=tensor_codecs, image_codecs=image_codecs,
                              keep_layers={t for cut in tensor_cuts for t in cut.crossing},
                              time_compute=True, progress=progress)
    samples = {(INPUT, name): measured.image_bytes[:, j].astype(float) for j, name in enumerate(image_codecs)}
    for name in tensor_codecs:
        for cut in tensor_cuts:
            samples[cut.after_layer, name] = measured.cut_bytes(cut.crossing, name).astype(float)
    return PayloadSamples(np.asarray(complexity, dtype=float), samples, measured.compute_ms,
                          {**(source or {}), "frames": len(frames), "cuts": cuts, "codecs": list(codecs),
                           "torch_threads": torch.get_num_threads()})


def clip_complexity(clip_path: str | Path) -> np.ndarray:
    """ComplexityMeter's score of every frame of a clip, in order (its motion term compares
    consecutive frames, as the partitioner sees them)."""
    meter = ComplexityMeter()
    scores = np.array([meter.measure(frame).complexity for _, frame in read_video(clip_path)])
    if not scores.size:
        raise ProfileError(f"cannot decode any frame of {clip_path}")
    return scores


def clip_frames(clip_path: str | Path, indices: Sequence[int]) -> tuple[list[np.ndarray], np.ndarray]:
    """BGR frames ``indices`` of a clip and their complexity, measured over every frame in order."""
    wanted = set(indices)
    meter = ComplexityMeter()
    frames, complexity, last = [], [], -1
    for index, frame in read_video(clip_path):
        if index > max(wanted):
            break
        score = meter.measure(frame).complexity
        if index in wanted:
            frames.append(frame)
            complexity.append(score)
        last = index
    if last < max(wanted):
        raise ProfileError(f"{clip_path} has no frame {last + 1} (wanted up to {max(wanted)})")
    return frames, np.array(complexity)


def spread_indices(clip_path: str | Path, count: int) -> list[int]:
    """``count`` frame indices spread over a clip, skipping frame 0 (it has no motion term)."""
    total = video_frame_count(clip_path)
    if total < count + 1:
        raise ProfileError(f"{clip_path} has {total} frames, fewer than {count + 1}")
    return sorted({int(i) for i in np.linspace(1, total - 1, count).round()})
