"""The simulator's video: per-frame complexity and bytes on the wire measured on REAL frames.

A :class:`VideoTable` holds, for frames of real clips, the frame complexity the live pipeline
computes (:class:`l2p_ros.complexity.ComplexityMeter`) and the bytes every layer's output takes on
the wire under every codec (the real model run on the real frame, each output encoded by
``l2p_ros.codec`` as the edge would), plus the frame's size as JPEG. Crossing tensors are encoded
one record each, so the payload of any cut is the sum over its crossing tensors. Building a table
runs the model on every chosen frame, so it is cached under ``cache_dir()/simulation``.

The clips are real footage of different complexity: ``vtest.avi`` (a busy street, 768x576) and
``Megamind.avi`` (an animated film clip, 720x528), both from Debian's opencv-doc. Models other
than yolov3-tiny have no pretrained weights offline; their tables come from random weights and
say so: compressed sizes of random-weight activations do not show how real ones compress.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from l2p_ros.assets import SAMPLE_VIDEO, asset_path, cache_dir
from l2p_ros.codec_spec import IMAGE_CODECS, TENSOR_CODECS, full_size_name
from l2p_ros.measure.cache import video_table_path
from l2p_ros.measure.models import load_measured_model, model_name, weights_label
from l2p_ros.measure.payload_fit import PayloadSamples
from l2p_ros.model.graph import INPUT, Cut, LayerGraph

SCHEMA = "l2p-video-table/3"
SCHEMA_V2 = "l2p-video-table/2"  # its ``jpeg-qN`` was the camera-size image (``jpeg-full-qN``)
HIGH_COMPLEXITY_CLIP = SAMPLE_VIDEO  # vtest.avi: pedestrians on a street, complexity ~0.52
LOW_COMPLEXITY_CLIP = "Megamind.avi"  # animated film, complexity ~0.39
DEFAULT_CLIPS = (HIGH_COMPLEXITY_CLIP, LOW_COMPLEXITY_CLIP)


@dataclass(frozen=True)
class VideoTable:
    """Measured frames (R rows) of a model (L layers) under C tensor codecs and J image codecs.

    - ``clip_index`` (R,): index into ``clips``; ``frame_index`` (R,): frame number in that clip.
    - ``complexity`` (R,): ComplexityMeter's score 0..1, measured on the clip's consecutive frames.
    - ``tensor_bytes`` (R, C, L): bytes of layer l's output encoded alone under codec c
      (data plus quantization parameters, as ``codec.payload_size_bytes`` counts them).
    - ``image_bytes`` (R, J): the frame as the edge sends it under each image codec (``jpeg-qN``
      at network resolution, ``jpeg-full-qN`` at the camera's size).
    - ``model``: name, input_size, num_layers, weights ("pretrained", "random" or a path).
    - ``bottleneck_bytes``: per learned bottleneck codec, its cut and the (R,) bytes it sends for
      each frame (:func:`with_bottlenecks`; not part of the cached file).
    """

    model: dict
    clips: tuple[str, ...]
    clip_index: np.ndarray
    frame_index: np.ndarray
    complexity: np.ndarray
    tensor_codecs: tuple[str, ...]
    tensor_bytes: np.ndarray
    image_codecs: tuple[str, ...]
    image_bytes: np.ndarray
    note: str = ""
    bottleneck_bytes: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        rows = len(self.complexity)
        expected = {"clip_index": (rows,), "frame_index": (rows,),
                    "tensor_bytes": (rows, len(self.tensor_codecs), self.model["num_layers"]),
                    "image_bytes": (rows, len(self.image_codecs))}
        for name, shape in expected.items():
            if getattr(self, name).shape != shape:
                raise ValueError(f"video table: {name} has shape {getattr(self, name).shape}, expected {shape}")

    @cached_property
    def _codec_index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.tensor_codecs)}

    @cached_property
    def _image_index(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.image_codecs)}

    @property
    def num_rows(self) -> int:
        return len(self.complexity)

    @property
    def random_weights(self) -> bool:
        return self.model.get("weights") == "random"

    def rows_of(self, clip: str) -> np.ndarray:
        """Row indices of ``clip``, in frame order."""
        if clip not in self.clips:
            raise ValueError(f"clip {clip!r} is not in the video table (it has {', '.join(self.clips)})")
        return np.flatnonzero(self.clip_index == self.clips.index(clip))

    def codec_index(self, name: str) -> int:
        try:
            return self._codec_index[name]
        except KeyError:
            raise ValueError(f"the video table has no tensor codec {name!r}; it has "
                             f"{', '.join(self.tensor_codecs)}") from None

    def image_index(self, name: str) -> int:
        try:
            return self._image_index[name]
        except KeyError:
            raise ValueError(f"the video table has no image codec {name!r}; it has "
                             f"{', '.join(self.image_codecs)}") from None

    def payload_bytes(self, row: int, cut: Cut, codec_name: str) -> int:
        """Bytes the frame of ``row`` puts on the wire for ``cut`` under ``codec_name``."""
        if codec_name in self.bottleneck_bytes:
            after_layer, sizes = self.bottleneck_bytes[codec_name]
            if cut.after_layer != after_layer:
                raise ValueError(f"codec {codec_name} works at cut {after_layer} only, not {cut.crossing}")
            return int(sizes[row])
        if cut.crossing == (INPUT,):
            return int(self.image_bytes[row, self.image_index(codec_name)])
        if INPUT in cut.crossing:
            raise ValueError(f"cut {cut.crossing}: the image crosses together with tensors")
        return int(self.tensor_bytes[row, self.codec_index(codec_name), list(cut.crossing)].sum())

    def save(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"schema": SCHEMA, "model": self.model, "clips": list(self.clips), "note": self.note,
                "tensor_codecs": list(self.tensor_codecs), "image_codecs": list(self.image_codecs)}
        tmp = path.with_name(path.name + ".part.npz")
        np.savez_compressed(tmp, meta=np.array(json.dumps(meta)), clip_index=self.clip_index,
                            frame_index=self.frame_index, complexity=self.complexity,
                            tensor_bytes=self.tensor_bytes, image_bytes=self.image_bytes)
        tmp.replace(path)  # atomic: a concurrent reader never sees half a table


def load_table(path: str | Path) -> VideoTable:
    path = Path(path)
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
        if meta.get("schema") not in (SCHEMA, SCHEMA_V2):
            raise ValueError(f"{path}: schema {meta.get('schema')!r} is not {SCHEMA!r}")
        image_codecs = tuple(meta["image_codecs"])
        if meta["schema"] == SCHEMA_V2:
            image_codecs = tuple(full_size_name(name) for name in image_codecs)
        return VideoTable(meta["model"], tuple(meta["clips"]), data["clip_index"], data["frame_index"],
                          data["complexity"], tuple(meta["tensor_codecs"]), data["tensor_bytes"],
                          image_codecs, data["image_bytes"], meta["note"])


def measure_table(model: str = "yolov3-tiny", input_size: int = 416, frames_per_clip: int = 60,
                  clips: Sequence[str] = DEFAULT_CLIPS, weights: Path | None = None,
                  tensor_codecs: Sequence[str] = TENSOR_CODECS, image_codecs: Sequence[str] = IMAGE_CODECS,
                  progress_factory: Callable | None = None) -> VideoTable:
    """Run the model on ``frames_per_clip`` real frames spread over each clip and measure them."""
    from l2p_ros.measure.payloads import clip_complexity, measure_frames
    from l2p_ros.sources import read_video

    if frames_per_clip < 1:
        raise ValueError(f"frames_per_clip must be >= 1, got {frames_per_clip}")
    network = load_measured_model(model, input_size, weights)
    bar = progress_factory(total=frames_per_clip * len(clips)) if progress_factory else None
    clip_index, frame_index, complexity, tensor_bytes, image_bytes = [], [], [], [], []
    for c, clip in enumerate(clips):
        path = asset_path(clip)
        scores = clip_complexity(path)
        # Frame 0 is left out: it has no motion term (and Megamind.avi's is black).
        chosen = np.unique(np.linspace(1, len(scores) - 1, frames_per_clip).round().astype(int))
        indices, frames = zip(*read_video(path, chosen))
        measured = measure_frames(network, frames, tensor_codecs=tensor_codecs, image_codecs=image_codecs,
                                  progress=bar.update if bar else None)
        clip_index += [c] * len(indices)
        frame_index += indices
        complexity += [scores[i] for i in indices]
        tensor_bytes.append(measured.tensor_bytes)
        image_bytes.append(measured.image_bytes)
    if bar:
        bar.close()
    label = weights_label(model, weights)
    note = (f"{model}-{input_size} ({label} weights) on real frames of {', '.join(clips)}; "
            "tensor bytes per layer output, each encoded alone")
    if label == "random":
        note += "; RANDOM WEIGHTS: compressed sizes do not show how trained activations compress"
    return VideoTable({"name": model_name(model), "input_size": input_size, "num_layers": len(network.spec.layers),
                       "weights": label}, tuple(clips), np.array(clip_index), np.array(frame_index),
                      np.array(complexity), tuple(tensor_codecs), np.concatenate(tensor_bytes),
                      tuple(image_codecs), np.concatenate(image_bytes).astype(np.int64), note)


def _table_network(table: VideoTable):
    """The model the table was measured with (its recorded weights)."""
    weights = table.model["weights"]
    return load_measured_model(table.model["name"], table.model["input_size"],
                               None if weights in ("pretrained", "random") else Path(weights))


def _table_frames(table: VideoTable):
    """Each clip's row indices and their frames (BGR, in row order), read again from the clip."""
    from l2p_ros.sources import read_video

    for c, clip in enumerate(table.clips):
        rows = np.flatnonzero(table.clip_index == c)
        frames = dict(read_video(asset_path(clip), table.frame_index[rows]))
        yield rows, [frames[int(i)] for i in table.frame_index[rows]]


def with_image_codecs(table: VideoTable, image_codecs: Sequence[str]) -> VideoTable:
    """``table`` with every codec of ``image_codecs`` it lacks measured on its own frames (columns in
    ``image_codecs`` order, then the table's others); every other column is kept as it was."""
    from l2p_ros.measure.payloads import measure_frames

    missing = [name for name in image_codecs if name not in table.image_codecs]
    if not missing:
        return table
    network = _table_network(table)
    measured = np.zeros((table.num_rows, len(missing)), dtype=np.int64)
    for rows, frames in _table_frames(table):
        measured[rows] = measure_frames(network, frames, image_codecs=missing).image_bytes
    columns = {**dict(zip(table.image_codecs, table.image_bytes.T)), **dict(zip(missing, measured.T))}
    order = [*image_codecs, *(name for name in table.image_codecs if name not in image_codecs)]
    return replace(table, image_codecs=tuple(order), image_bytes=np.stack([columns[name] for name in order], axis=1))


def video_table(model: str = "yolov3-tiny", input_size: int = 416, frames_per_clip: int = 60,
                clips: Sequence[str] = DEFAULT_CLIPS, weights: Path | None = None, log=print,
                progress_factory: Callable | None = None) -> VideoTable:
    """The cached table for these settings, measured now (and cached) if there is none yet, or if
    the cached one lacks a codec measured today (a table from before network-resolution offload)."""
    path = video_table_path(model, input_size, frames_per_clip, clips, weights)
    if path.is_file():
        table = load_table(path)
        if set(TENSOR_CODECS) <= set(table.tensor_codecs):
            if set(IMAGE_CODECS) <= set(table.image_codecs):
                return table
            # Only image codecs are new: the image's bytes need no forward pass, the rest is kept.
            log(f"measuring image codecs {', '.join(sorted(set(IMAGE_CODECS) - set(table.image_codecs)))} "
                f"into {path} on its own frames ...")
            table = with_image_codecs(table, IMAGE_CODECS)
            table.save(path)
            return table
    log(f"measuring the simulator's video table into {path} ({frames_per_clip} real frames per clip) ...")
    table = measure_table(model, input_size, frames_per_clip, clips, weights,
                          progress_factory=progress_factory)
    table.save(path)
    return table


def with_bottlenecks(table: VideoTable, names: Sequence[str], log=print) -> VideoTable:
    """``table`` with each learned bottleneck's bytes on the table's own frames, measured once per
    bottleneck file (by content), coding (``NAME+ctx``: range-coded) and table, and cached beside
    the table."""
    import hashlib

    from l2p_ros.bottleneck_file import read_bottleneck, resolve_path
    from l2p_ros.codec_spec import CodecSpec, bottleneck_source

    added = {}
    for entry in names:
        name, coder = bottleneck_source(f"bn:{entry}")
        info, _ = read_bottleneck(name)
        path = resolve_path(name)
        codec = str(CodecSpec("bn", coder, bottleneck=path.stem))
        with path.open("rb") as handle:
            file_tag = hashlib.file_digest(handle, "sha256").hexdigest()[:12]
        frames_tag = hashlib.sha256(np.stack([table.clip_index, table.frame_index]).tobytes()
                                    + "+".join(table.clips).encode()).hexdigest()[:12]
        coding = "" if coder == "none" else f"-{coder}"
        cached = (cache_dir() / "simulation"
                  / f"bottleneck-{path.stem}{coding}-{file_tag}-{table.model['name']}-{frames_tag}.npy")
        if cached.is_file():
            sizes = np.load(cached, allow_pickle=False)
        else:
            log(f"measuring {codec} on the video table's {table.num_rows} frames into {cached} ...")
            sizes = measure_bottleneck_bytes(table, entry)
            cached.parent.mkdir(parents=True, exist_ok=True)
            np.save(cached, sizes)
        added[codec] = (info.cut_after_layer, sizes)
    return replace(table, bottleneck_bytes={**table.bottleneck_bytes, **added})


def measure_bottleneck_bytes(table: VideoTable, name: str) -> np.ndarray:
    """(R,) bytes the bottleneck ``name`` (``NAME+ctx``: its codes range-coded) sends for each of the
    table's frames, encoded as the edge encodes them (the model run to its cut, the codes zstd'd or
    range-coded)."""
    import dataclasses

    from l2p_ros.codec_spec import bottleneck_source
    from l2p_ros.model.postprocess import load_class_names
    from l2p_ros.split import SplitDetector

    detector = SplitDetector(_table_network(table), load_class_names(),
                             f"{table.model['name']}-{table.model['input_size']}")
    source, coder = bottleneck_source(f"bn:{name}")
    spec = dataclasses.replace(detector.add_bottleneck(source), compression=coder)
    cut = detector.bottleneck(spec).info.cut_after_layer
    sizes = np.zeros(table.num_rows, dtype=np.int64)
    for rows, frames in _table_frames(table):
        sizes[rows] = [detector.edge(frame, cut, spec).payload_bytes for frame in frames]
    return sizes


class FramePayloads:
    """A ``CostModel`` payload function giving one table row's true bytes (``row``, set by the
    simulator for the frame at hand); the complexity argument is not needed for the truth."""

    def __init__(self, table: VideoTable):
        self.table = table
        self.row = 0

    def __call__(self, cut: Cut, codec_name: str, complexity: float) -> float:
        return float(self.table.payload_bytes(self.row, cut, codec_name))


def payload_samples(table: VideoTable, graph: LayerGraph) -> PayloadSamples:
    """The table as ``(complexity, bytes)`` samples of every chain cut and codec, for
    ``payload_fit.fit_payloads``: the complexity fit the policies predict payloads with."""
    samples = {(INPUT, name): table.image_bytes[:, j].astype(float) for j, name in enumerate(table.image_codecs)}
    for cut in graph.chain_cuts()[1:]:
        crossing = list(cut.crossing)
        for c, name in enumerate(table.tensor_codecs):
            samples[cut.after_layer, name] = table.tensor_bytes[:, c, crossing].sum(axis=1).astype(float)
    return PayloadSamples(table.complexity.astype(float), samples, np.array([]),
                          {"video_table": table.note, "frames": table.num_rows})


def alternating_scenes(duration_s: float, rng: np.random.Generator, clips: Sequence[str] = DEFAULT_CLIPS,
                       mean_scene_s: float = 30.0, min_scene_s: float = 5.0) -> list[tuple[float, str]]:
    """Scenes ``(start_s, clip)`` cycling through ``clips`` from a random one, each lasting
    ``min_scene_s`` plus an exponential time of mean ``mean_scene_s - min_scene_s``."""
    if not 0 < min_scene_s <= mean_scene_s:
        raise ValueError(f"need 0 < min_scene_s <= mean_scene_s, got {min_scene_s}, {mean_scene_s}")
    scenes, t = [], 0.0
    position = int(rng.integers(len(clips)))
    while t < duration_s:
        scenes.append((t, clips[position % len(clips)]))
        t += min_scene_s + rng.exponential(mean_scene_s - min_scene_s)
        position += 1
    return scenes


def playback_rows(table: VideoTable, scenes: Sequence[tuple[float, str]], n_frames: int, fps: float) -> np.ndarray:
    """The table row shown at each of ``n_frames`` frames at ``fps`` (n_frames,).

    Within a scene its clip's measured frames play in order, one per simulated frame, looping;
    each clip resumes where it stopped when its scene comes back.
    """
    if not scenes or scenes[0][0] > 0:
        raise ValueError("scenes must start at time 0")
    starts = np.array([start for start, _ in scenes])
    clip_rows = {clip: table.rows_of(clip) for _, clip in scenes}
    cursor = dict.fromkeys(clip_rows, 0)
    rows = np.empty(n_frames, dtype=np.int64)
    scene_of_frame = np.searchsorted(starts, np.arange(n_frames) / fps, side="right") - 1
    for n, scene in enumerate(scene_of_frame):
        clip = scenes[scene][1]
        rows[n] = clip_rows[clip][cursor[clip] % len(clip_rows[clip])]
        cursor[clip] += 1
    return rows
