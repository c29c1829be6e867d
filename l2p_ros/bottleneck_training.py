"""Distilling a learned bottleneck on a vehicle's own unlabeled video (``l2p train-bottleneck``).

The teacher is the unmodified model: the frozen head runs once per frame and its crossing tensor
is cached, with the frozen tail's raw yolo-layer inputs (what the detections are decoded from).
The bottleneck learns to reproduce both: the crossing tensor (so the tail sees what it expects)
and the tail's outputs through the frozen tail (so what matters for the detections weighs most).
No labels: every target is the model's own output on the same frame. Each training frame is
also seen in random crops and mirrors (:func:`augmented_views`); with varied photos beside a
camera's video that keeps the bottleneck working beyond its scene (docs/benchmarks.md). The
codes' bits are priced in the loss (:class:`CodeRate`), trading a little fidelity for bytes.

Held-out frames are never trained on: the given ``val`` sources, or else the last part of each
training source in time. They are evaluated as deployed: codes through the wire format,
detections against the full model's (same class, IoU >= 0.5), payload bytes against the same
frames as network-resolution JPEG.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from l2p_ros import codec, context_coder
from l2p_ros.bottleneck import Bottleneck, BottleneckInfo
from l2p_ros.context_coder import ContextModel
from l2p_ros.model.darknet import Darknet
from l2p_ros.model.graph import INPUT
from l2p_ros.model.matching import match_detections
from l2p_ros.model.postprocess import letterbox
from l2p_ros.model.runner import SplitRunner
from l2p_ros.sources import open_source
from l2p_ros.split import SplitDetector


@dataclass(frozen=True)
class Defaults:
    """Per model: the cut (one crossing tensor, cheap on the edge), code channels and bits."""

    cut: int
    channels: int
    bits: int
    rate_weight: float = 0.0


# Detection scores above this (a fifth of the usual 0.25 threshold) are candidates the loss
# weighs CANDIDATE_WEIGHT times more (Teacher.detection_loss).
CANDIDATE_SCORE = 0.05
CANDIDATE_WEIGHT = 400

# Random views added per training frame (augmented_views): measured in docs/benchmarks.md.
AUGMENT_VIEWS = 2

# The encoder's hidden width unless given (the decoder's is then twice it).
HIDDEN = 64

# yolov3-tiny: measured (docs/benchmarks.md): 32 channels of 4 bits send about 0.33x the
# network-resolution JPEG-q75 bytes (codes priced, below), the most detections kept within the
# 0.5x the codec is for; more channels bought about a point of detections for twice the bytes,
# 6 or 8 bits none (stop 22). yolov3: a single-tensor cut cheap for the edge (256x52x52 after
# layer 12); not yet measured (no pretrained yolov3 weights offline, and distilling it wants a GPU).
# tiny's codes priced at 0.005 per kilobyte (CodeRate): measured, 32x4 sent 13% fewer bytes and
# kept as many detections or more on every held-out set; 64 channels at 0.01 sent fewer still but
# lost detections everywhere, most outside the training scenes. yolov3's stay unpriced: its
# crossing has 8x the elements, so the same weight would press its codes 8x harder (unmeasured).
DEFAULTS = {"yolov3-tiny": Defaults(cut=7, channels=32, bits=4, rate_weight=0.005),
            "yolov3": Defaults(cut=12, channels=24, bits=4)}


def read_frames_per_source(sources: Sequence[str], max_frames: int) -> list[list[np.ndarray]]:
    """About ``max_frames`` frames of each source, spread evenly over it, one list per source:
    a long recording and a few photos are both represented. Each source is read in one pass
    with at most ``2 * max_frames`` of its frames held, so a recording of any length fits in
    memory: kept frames are thinned by half (every other one) whenever they reach twice the
    budget, then evenly to it."""
    if max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    per_source = []
    for source in sources:
        kept, stride, seen = [], 1, 0
        for frame in open_source(source):
            if seen % stride == 0:
                kept.append(frame.image_bgr)
                if len(kept) >= 2 * max_frames:
                    kept, stride = kept[::2], stride * 2
            seen += 1
        if not seen:
            raise ValueError(f"source {source}: no frame could be read")
        if len(kept) > max_frames:
            kept = [kept[i] for i in np.linspace(0, len(kept) - 1, max_frames).round().astype(int)]
        per_source.append(kept)
    return per_source


def read_frames(sources: Sequence[str], max_frames: int) -> list[np.ndarray]:
    """:func:`read_frames_per_source`, the sources' frames one after another."""
    return [frame for frames in read_frames_per_source(sources, max_frames) for frame in frames]


def augmented_views(frames: list[np.ndarray], views: int, seed: int = 0) -> list[np.ndarray]:
    """``views`` random variants of each frame (a crop of 30-100% of its area, about its aspect,
    resized back; mirrored half the time; brightness and contrast within 25%), after the frames.

    Why: a bottleneck distilled on one camera's frames alone learns that scene's background and
    keeps nothing elsewhere (docs/benchmarks.md); crops and mirrors show it the same objects at
    other scales and places. Deterministic for a ``seed``.
    """
    if views < 0:
        raise ValueError(f"views must be >= 0, got {views}")
    from torchvision.transforms import v2

    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        extra = []
        for frame in frames:
            height, width = frame.shape[:2]
            aspect = width / height
            augment = v2.Compose([
                v2.RandomResizedCrop((height, width), scale=(0.3, 1.0), ratio=(aspect * 3 / 4, aspect * 4 / 3),
                                     antialias=True),
                v2.RandomHorizontalFlip(),
                # Brightness and contrast only: they do not care that the channels are BGR.
                v2.ColorJitter(brightness=0.25, contrast=0.25)])
            image = torch.from_numpy(np.ascontiguousarray(frame)).permute(2, 0, 1)
            extra += [np.ascontiguousarray(augment(image).permute(1, 2, 0).numpy()) for _ in range(views)]
    finally:
        torch.random.set_rng_state(generator_state)
    return list(frames) + extra


def split_in_time(frames: list[np.ndarray], held_out_share: float) -> tuple[list, list]:
    """The first part trains, the last part is held out (later in time: never seen in training)."""
    cut = int(round(len(frames) * (1 - held_out_share)))
    if not 0 < cut < len(frames):
        raise ValueError(f"{len(frames)} frames cannot be split into training and held-out parts")
    return frames[:cut], frames[cut:]


def split_each_in_time(per_source: list[list[np.ndarray]], held_out_share: float) -> tuple[list, list[list]]:
    """Every source split in time (:func:`split_in_time`), so each scene has later frames held
    out, not only the last source: the training frames, and each source's held-out frames (empty
    for a source too short to split, which trains whole)."""
    train_frames, held_out = [], []
    for frames in per_source:
        try:
            first, later = split_in_time(frames, held_out_share)
        except ValueError:
            first, later = frames, []
        train_frames += first
        held_out.append(later)
    if not train_frames or not any(held_out):
        raise ValueError(f"{sum(map(len, per_source))} frames from {len(per_source)} sources cannot be split into "
                         "training and held-out parts")
    return train_frames, held_out


class CodeRate(nn.Module):
    """What a batch's codes cost on the wire, differentiably: bits per frame under each code
    channel's running histogram of levels.

    Why: untrained for rate, the codes spread nearly evenly over their levels (measured on the
    stop-16 sample-scenes: zstd sent them at 3.4 of 4 bits, below even their per-channel order-0
    entropy), so no entropy coder could shrink them; priced in training they gather on few levels
    and zstd, which sends skewed, repetitive bytes in fewer bits, delivers the saving.
    A code between two levels (before rounding) is charged the two levels' costs interpolated,
    so the gradient moves it toward the cheaper. The histogram is a running average over
    batches (``momentum``), so the costs follow the codes as they change. Training-only: nothing
    of it is saved.
    """

    def __init__(self, channels: int, levels: int, momentum: float = 0.9):
        super().__init__()
        self.momentum = momentum
        self.levels = levels
        self.register_buffer("histogram", torch.full((channels, levels + 1), 1.0 / (levels + 1)))

    def forward(self, soft_codes: torch.Tensor) -> torch.Tensor:
        """(N, channels, H, W) codes in level units before rounding -> mean bits per frame."""
        # Each code touches only the two levels around it: gathered, not spread over every level
        # (which took 2 s a batch at 8 bits on this CPU, 200x this).
        per_channel = soft_codes.transpose(0, 1).reshape(soft_codes.shape[1], -1)
        below = per_channel.detach().floor().clamp(0, self.levels - 1).long()
        upper_share = per_channel - below  # 0 on the level below, 1 on the one above
        # Priced by the histogram of the batches before this one; a floor keeps an unused
        # level's cost finite (about 17 bits at 1e-5).
        bits_per_level = -torch.log2(self.histogram.clamp_min(1e-5))
        if self.training:
            with torch.no_grad():
                batch = torch.zeros_like(self.histogram)
                batch.scatter_add_(1, below, 1 - upper_share).scatter_add_(1, below + 1, upper_share)
                batch /= batch.sum(dim=-1, keepdim=True)
                self.histogram.mul_(self.momentum).add_((1 - self.momentum) * batch)
        bits = (1 - upper_share) * bits_per_level.gather(1, below) + upper_share * bits_per_level.gather(1, below + 1)
        return bits.sum() / soft_codes.shape[0]


class Teacher:
    """The frozen model's crossing tensor at ``cut`` and its tail's raw yolo inputs, per frame."""

    def __init__(self, model: Darknet, cut: int):
        self.runner = SplitRunner(model)
        self.cut = self.runner.cut(cut)
        if len(self.cut.crossing) != 1 or INPUT in self.cut.crossing:
            raise ValueError(f"cut {cut} carries {list(self.cut.crossing)}: a bottleneck needs exactly one "
                             "tensor from inside the network")
        self.layer = self.cut.crossing[0]
        self.rest = sorted(set(range(self.runner.graph.num_layers)) - self.cut.edge_layers)
        # The yolo layers only decode; their inputs are the convolutions the loss compares.
        self.outputs = sorted(model.spec.layers[y].inputs[0] for y in model.yolo_indices)
        anchors = {model.layers[y].num_anchors for y in model.yolo_indices}
        if len(anchors) != 1:
            raise ValueError(f"yolo layers with different anchor counts {sorted(anchors)}")
        self.anchors = anchors.pop()

    @torch.inference_mode()
    def targets(self, frames: list[np.ndarray], progress: Callable[[int], None] | None = None):
        crossing, outputs = [], []
        for frame in frames:
            image = letterbox(frame, self.runner.model.input_size)[0]
            x = self.runner.head(image, self.cut)[self.layer]
            tail = self.runner.run_segment({self.layer: x}, self.rest, self.outputs)
            crossing.append(x)
            outputs.append([tail[i] for i in self.outputs])
            if progress:
                progress(1)
        return torch.cat(crossing), [torch.cat([o[k] for o in outputs]) for k in range(len(self.outputs))]

    @torch.inference_mode()
    def crossings(self, frames: list[np.ndarray], progress: Callable[[int], None] | None = None) -> torch.Tensor:
        """The crossing tensors alone (the head only): what a context model is fitted on."""
        crossing = []
        for frame in frames:
            crossing.append(self.runner.head(letterbox(frame, self.runner.model.input_size)[0], self.cut)[self.layer])
            if progress:
                progress(1)
        return torch.cat(crossing)

    def _split(self, output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A yolo layer's input (N, A*(5+C), H, W) as box terms (N, A, 4, H, W) and score
        probabilities, objectness then classes (N, A, 1+C, H, W)."""
        n, _, h, w = output.shape
        rows = output.view(n, self.anchors, -1, h, w)
        return rows[:, :, :4], torch.sigmoid(rows[:, :, 4:])

    def loss_weights(self, output: torch.Tensor) -> tuple[float, float]:
        """Normalizers for :meth:`detection_loss` from the teacher's outputs on the training frames:
        the variance of its score probabilities, and its objectness-weighted box variance."""
        boxes, scores = self._split(output)
        objectness = scores[:, :, :1]
        box_var = float((objectness * (boxes - boxes.mean()) ** 2).sum() / objectness.sum().clamp_min(1e-8))
        return max(float(scores.var()), 1e-8), max(box_var, 1e-8)

    def detection_loss(self, student: torch.Tensor, teacher: torch.Tensor, weights: tuple[float, float]) -> torch.Tensor:
        """What the detections are decoded from, compared as they are used.

        - Detection scores (objectness times each class probability), weighted
          ``CANDIDATE_WEIGHT`` times more where the teacher's score is above ``CANDIDATE_SCORE``:
          those few cells decide which boxes are kept, and an average over every cell, nearly all
          empty, let them drift (measured: with scores compared as plain probabilities
          vtest-street kept 91.6% of the detections even on its training frames; 20 epochs more
          with this loss, 97.7% there, though not on held-out frames: augmented_views' job).
        - Objectness as a probability, relative to its spread: empty cells stay empty.
        - Box terms weighted by the teacher's objectness (a box nobody keeps does not matter),
          relative to their spread.
        """
        score_var, box_var = weights
        student_boxes, student_scores = self._split(student)
        teacher_boxes, teacher_scores = self._split(teacher)
        objectness = teacher_scores[:, :, :1]
        teacher_detection = objectness * teacher_scores[:, :, 1:]
        student_detection = student_scores[:, :, :1] * student_scores[:, :, 1:]
        weight = 1 + CANDIDATE_WEIGHT * (teacher_detection > CANDIDATE_SCORE).float()
        # x100: the scale at which it was measured against the other two terms (docs/benchmarks.md).
        detection = 100 * (weight * (student_detection - teacher_detection) ** 2).sum() / weight.sum()
        objectness_loss = ((student_scores[:, :, :1] - objectness) ** 2).mean() / score_var
        box_loss = (objectness * (student_boxes - teacher_boxes) ** 2).sum() / objectness.sum().clamp_min(1e-8) / 4
        return detection + objectness_loss + box_loss / box_var

    def tail(self, crossing: torch.Tensor) -> list[torch.Tensor]:
        """The frozen tail on a (decoded) crossing tensor, differentiable."""
        values = self.runner.run_segment_with_grad({self.layer: crossing}, self.rest, self.outputs)
        return [values[i] for i in self.outputs]


def train(model: Darknet, model_id: str, train_frames: list[np.ndarray], *, cut: int, channels: int, bits: int,
          hidden: int = HIDDEN, decoder_hidden: int | None = None, epochs: int = 40, tail_epochs: int = 15,
          batch_size: int = 8, learning_rate: float = 3e-3, rate_weight: float = 0.0, seed: int = 0,
          context_frames: int | None = None, progress_factory=None) -> tuple[Bottleneck, dict]:
    """Distil a bottleneck at ``cut`` from the frozen ``model`` on ``train_frames``, in two phases.
    ``hidden`` is the encoder's hidden width, ``decoder_hidden`` the decoder's (None: twice
    ``hidden``; wider decodes better outside the training scenes and costs the receiver more,
    docs/benchmarks.md).

    First ``epochs`` on the crossing tensor alone (its mean squared error relative to its
    variance: cheap, no tail), then ``tail_epochs`` adding the frozen tail's outputs, which is what
    the detections are decoded from (:meth:`Teacher.detection_loss`). In both, ``rate_weight``
    times the codes' estimated kilobytes per frame (:class:`CodeRate`) is added to the loss,
    its weight rising from 0 over the first half of the crossing epochs: priced in full from the
    start, while the decoder can use nothing yet, the codes collapse onto one level and stay
    there (measured: every code equal, 72 B a frame, no detection).

    Then the codes' context model (codec ``bn:NAME+ctx``) is fitted on the first ``context_frames``
    of ``train_frames`` (None: all): the camera's own frames, not augmented views of them, whose
    codes it would code worse (measured: 6.2 KB a held-out vtest frame fitted on the views too,
    6.0 KB on the frames alone).
    """
    if rate_weight < 0:
        raise ValueError(f"rate_weight must be >= 0, got {rate_weight}")
    torch.manual_seed(seed)
    teacher = Teacher(model, cut)
    started = time.perf_counter()
    bar = progress_factory(total=len(train_frames), desc="teacher") if progress_factory else None
    crossing, outputs = teacher.targets(train_frames, bar.update if bar else None)
    if bar:
        bar.close()
    teacher_s = time.perf_counter() - started
    info = BottleneckInfo(model_id, model.weights_fingerprint, teacher.cut.after_layer,
                          tuple(crossing.shape[1:]), channels, bits, hidden, decoder_hidden=decoder_hidden)
    bottleneck = Bottleneck(info)
    code_rate = CodeRate(channels, info.levels)
    crossing_var = crossing.var().clamp_min(1e-8)
    output_weights = [teacher.loss_weights(o) for o in outputs]
    generator = torch.Generator().manual_seed(seed)
    batches = -(-len(train_frames) // batch_size)
    curves, rate_curves = {}, {}
    for phase, phase_epochs, with_tail in (("crossing", epochs, False), ("tail", tail_epochs, True)):
        if not phase_epochs:
            continue
        # Through the tail the loss is sharper: a third of the rate keeps it from jumping (measured).
        rate = learning_rate / 3 if with_tail else learning_rate
        optimizer = torch.optim.Adam(bottleneck.parameters(), lr=rate)
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=rate, total_steps=phase_epochs * batches)
        bar = progress_factory(total=phase_epochs * batches, desc=phase) if progress_factory else None
        curve = curves[phase] = []
        code_kb = rate_curves[phase] = []
        for _ in range(phase_epochs):
            order = torch.randperm(len(train_frames), generator=generator)
            total, total_kb = 0.0, 0.0
            for start in range(0, len(order), batch_size):
                index = order[start:start + batch_size]
                decoded, soft_codes = bottleneck(crossing[index])
                with torch.set_grad_enabled(rate_weight > 0):  # unpriced: only recorded
                    kilobytes = code_rate(soft_codes) / 8000
                warm = 1.0 if with_tail else min(1.0, schedule.last_epoch / max(1, phase_epochs * batches // 2))
                loss = ((decoded - crossing[index]) ** 2).mean() / crossing_var + warm * rate_weight * kilobytes
                if with_tail:
                    student = teacher.tail(decoded)
                    loss = loss + sum(teacher.detection_loss(s, o[index], w)
                                      for s, o, w in zip(student, outputs, output_weights)) / len(outputs)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
                total += float(loss.detach()) * len(index)
                total_kb += float(kilobytes.detach()) * len(index)
                if bar:
                    bar.update(1)
            curve.append(round(total / len(train_frames), 5))
            code_kb.append(round(total_kb / len(train_frames), 3))
        if bar:
            bar.close()
    _check_not_collapsed(info, rate_weight, [kb for phase in rate_curves.values() for kb in phase])
    bottleneck.eval()
    bottleneck.requires_grad_(False)
    bottleneck.context = fit_context(bottleneck, crossing[:context_frames])
    record = {"frames": len(train_frames), "epochs": epochs, "tail_epochs": tail_epochs, "batch_size": batch_size,
              "learning_rate": learning_rate, "rate_weight": rate_weight, "seed": seed, "teacher_s": round(teacher_s, 1),
              "wall_time_s": round(time.perf_counter() - started, 1), "torch_threads": torch.get_num_threads(),
              "loss_curves": curves, "code_kb_curves": rate_curves}
    return bottleneck, record


@torch.inference_mode()
def fit_context(bottleneck: Bottleneck, crossing: torch.Tensor, batch_size: int = 64) -> ContextModel:
    """The context model (codec ``bn:NAME+ctx``) of the codes ``bottleneck`` makes of (N, C, H, W)
    crossing tensors, those of its training frames."""
    codes = torch.cat([bottleneck.encode(crossing[start:start + batch_size])
                       for start in range(0, len(crossing), batch_size)])
    return ContextModel.fit(codes.cpu().numpy(), bottleneck.info.levels)


# Below this share of their raw size the codes carry nothing: collapsed runs measured 0.7-1.5%
# (every code on one level, no detection), working ones 20% and more.
COLLAPSED_SHARE = 0.05


def _check_not_collapsed(info: BottleneckInfo, rate_weight: float, code_kb: list[float]) -> None:
    """ValueError when the last epoch's codes (``code_kb``: KB per frame of every epoch, in order)
    were nearly free: priced too high, they all settled on one level and the decoder gets nothing
    (a file of it would keep no detection)."""
    raw_kb = int(np.prod(info.code_shape)) * info.bits / 8000
    if rate_weight > 0 and code_kb and code_kb[-1] < COLLAPSED_SHARE * raw_kb:
        raise ValueError(f"the codes collapsed onto a single level ({code_kb[-1] * 1000:.0f} B a frame of "
                         f"{raw_kb * 1000:.0f} B raw): rate weight {rate_weight:g} is too high for these frames; "
                         "train again with a lower --rate-weight")


@torch.inference_mode()
def measure_frames(detector: SplitDetector, frames: list[np.ndarray], references: list[list], cut,
                   spec: codec.CodecSpec) -> list[dict]:
    """One codec at one cut on each of ``frames``, as deployed (edge stage, wire format, cloud
    stage): its bytes, the full model's detections (``references``) matched, and the ms of the
    head, the encoding, the receiver's decoding and the tail."""
    rows = []
    for frame, reference in zip(frames, references):
        encoded = detector.edge(frame, cut, spec)
        result = detector.cloud(encoded)
        rows.append({"bytes": encoded.payload_bytes, "matched": match_detections(reference, result.detections),
                     "references": len(reference), "head_ms": encoded.edge_ms, "encode_ms": encoded.encode_ms,
                     "decode_ms": result.decode_ms, "tail_ms": result.cloud_ms - result.decode_ms})
    return rows


def summarize_frames(rows: list[dict]) -> dict:
    """:func:`measure_frames` rows as mean bytes per frame, the share of the references matched,
    and each stage's median ms."""
    return {"bytes_mean": float(np.mean([row["bytes"] for row in rows])),
            "matched_share": sum(row["matched"] for row in rows) / max(1, sum(row["references"] for row in rows)),
            **{stage: float(np.median([row[stage] for row in rows]))
               for stage in ("head_ms", "encode_ms", "decode_ms", "tail_ms")}}


def measure_codec(detector: SplitDetector, frames: list[np.ndarray], references: list[list], cut,
                  spec: codec.CodecSpec) -> dict:
    """:func:`measure_frames` summarized over ``frames``."""
    return summarize_frames(measure_frames(detector, frames, references, cut, spec))


def evaluate(detector: SplitDetector, spec: codec.CodecSpec, frames: list[np.ndarray],
             image_codec: str = "jpeg-q75", sources: Sequence[tuple[str, int]] = ()) -> dict:
    """Held-out frames as deployed: detections of the full model matched through the bottleneck
    (and through ``image_codec`` for comparison), and bytes per frame of each. ``sources``: (name,
    frame count) of consecutive runs of ``frames``, each also reported alone under ``per_source``
    (from the same measurements: every frame is run once). With a context model, the same codes
    through ``bn:NAME+ctx`` too (``context_*``: its bytes, detections and coding ms), where this
    machine can range-code (``context_coder.available``)."""
    if sources and sum(count for _, count in sources) != len(frames):
        raise ValueError(f"sources count {sum(count for _, count in sources)} frames, not {len(frames)}")
    with torch.inference_mode():
        references = [detector.detect(frame) for frame in frames]
    bottleneck = detector.bottleneck(spec)
    cut = bottleneck.info.cut_after_layer
    ours = measure_frames(detector, frames, references, cut, spec)
    image = measure_frames(detector, frames, references, "cloud", codec.CodecSpec.parse(image_codec))
    coded = None if bottleneck.context is None or not context_coder.available() else measure_frames(
        detector, frames, references, cut, codec.CodecSpec("bn", codec.CONTEXT_CODER, bottleneck=spec.bottleneck))

    def report(first: int, last: int) -> dict:
        mine, theirs = summarize_frames(ours[first:last]), summarize_frames(image[first:last])
        return {"frames": last - first, "reference_detections": sum(row["references"] for row in ours[first:last]),
                "matched_share": round(mine["matched_share"], 4), "payload_bytes_mean": round(mine["bytes_mean"], 1),
                "image_codec": image_codec, "image_matched_share": round(theirs["matched_share"], 4),
                "image_bytes_mean": round(theirs["bytes_mean"], 1),
                "bytes_vs_image": round(mine["bytes_mean"] / theirs["bytes_mean"], 4),
                **{f"{stage}_median": round(mine[stage], 3) for stage in ("head_ms", "encode_ms", "decode_ms", "tail_ms")},
                **({} if coded is None else context_report(summarize_frames(coded[first:last])))}

    def context_report(theirs: dict) -> dict:  # the same codes range-coded: the same detections
        return {"context_payload_bytes_mean": round(theirs["bytes_mean"], 1),
                "context_matched_share": round(theirs["matched_share"], 4),
                **{f"context_{stage}_median": round(theirs[stage], 3) for stage in ("encode_ms", "decode_ms")}}

    whole = report(0, len(frames))
    if sources:
        bounds = np.cumsum([0, *(count for _, count in sources)])
        whole["per_source"] = {name: report(int(first), int(last))
                               for (name, count), first, last in zip(sources, bounds[:-1], bounds[1:]) if count}
    return whole
