"""One frame through the split pipeline, without ROS: edge stage, wire encoding, cloud stage.

The ROS nodes wrap exactly these two calls, and ``l2p detect --split`` uses them in one process,
so what is tested here is what runs on the vehicle. The model may live on the CPU or on a CUDA
device, in fp32 or fp16 (CUDA): images and received payloads go straight to its device and dtype,
and every reported time waits for the device first, so it is the work's time, not its launch's.
"""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from l2p_ros import codec
from l2p_ros.bottleneck import Bottleneck, BottleneckError, decode_codes, encode_codes, load_bottleneck, resolve_path
from l2p_ros.context_coder import NO_MODEL
from l2p_ros.model.darknet import Darknet
from l2p_ros.model.device import precision_name, resolve_device, synchronize
from l2p_ros.model.graph import INPUT, Cut
from l2p_ros.model.postprocess import (Detection, LetterboxInfo, letterbox, letterbox_info, place_in_input,
                                       postprocess, postprocess_batch, resize_to_input)
from l2p_ros.model.runner import SplitRunner


@dataclass
class EncodedFrame:
    """What the edge sends to the next tier for one frame (maps onto l2p_msgs/FeatureMap)."""

    model_id: str
    cut_after_layer: int  # -1 for image offload; for a DAG cut, see edge_layers
    codec: codec.CodecSpec
    letterbox: LetterboxInfo
    records: list[codec.TensorRecord] = field(default_factory=list)
    image_jpeg: bytes = b""
    edge_layers: tuple[int, ...] = ()  # a general DAG cut's edge set; empty for a chain cut
    edge_ms: float = 0.0
    encode_ms: float = 0.0

    @property
    def payload_bytes(self) -> int:
        return len(self.image_jpeg) if self.image_jpeg else codec.payload_size_bytes(self.records)


@dataclass
class CloudResult:
    """One frame's detections and its cloud-stage times.

    From :meth:`SplitDetector.cloud_batch`, ``decode_ms`` is the frame's own validation and decoding
    and ``cloud_ms`` its own decode plus an equal share of its chunk's batched work (stacking, the
    tail and post-processing), so the ``cloud_ms`` of a batch's frames add up to the cloud's
    busy time; ``batch_ms`` is the whole call's wall time, which is what the frame waited in the
    cloud stage, and ``batch_size`` the number of frames in the call. From :meth:`SplitDetector.cloud`
    these are 1 and ``cloud_ms``.
    """

    detections: list[Detection]
    decode_ms: float
    cloud_ms: float  # decode + tail + postprocess
    batch_size: int = 1
    batch_ms: float = 0.0


def _ms_since(start: float) -> float:
    return (time.perf_counter() - start) * 1e3


# Unknown bottleneck names remembered as refused; past this many, unknown names are refused unread.
MAX_REFUSED_BOTTLENECKS = 256


def _context_model(spec: codec.CodecSpec, bottleneck: Bottleneck):
    """The context model ``bn:NAME+ctx`` codes with; None for ``bn:NAME`` (zstd). PayloadError
    (a ValueError) when the file has none: one trained before context models, or by another tool."""
    if spec.compression != codec.CONTEXT_CODER:
        return None
    if bottleneck.context is None:
        raise codec.PayloadError(f"codec {spec}: bottleneck {spec.bottleneck} {NO_MODEL}")
    return bottleneck.context


class SplitDetector:
    """A model with its runner and post-processing, able to run any cut on either side.

    ``device``/``precision`` (e.g. 'cuda:0', 'fp16'), when given, move ``model`` there (in place);
    otherwise it runs where it is. Either way the placement is validated here, at construction:
    an unknown device, CUDA without one, or fp16 on the CPU raises ValueError.
    """

    def __init__(self, model: Darknet, class_names: list[str], model_id: str,
                 score_threshold: float = 0.25, nms_iou: float = 0.45,
                 device: str | torch.device | None = None, precision: str | None = None):
        current_precision = precision_name(model.dtype) if precision is None else precision
        current_device = model.device if device is None else device
        self.device, self.dtype = resolve_device(current_device, current_precision)
        if (model.device, model.dtype) != (self.device, self.dtype):
            model.to(device=self.device, dtype=self.dtype)
        self.model = model
        self.runner = SplitRunner(model)
        self.class_names = class_names
        self.model_id = model_id
        self.score_threshold = score_threshold
        self.nms_iou = nms_iou
        self.bottlenecks: dict[str, Bottleneck] = {}
        self._refused_bottlenecks: dict[str, str] = {}
        self._bottleneck_lock = threading.Lock()  # decode workers may look one up at once
        self._decode_pool: tuple[int, ThreadPoolExecutor] | None = None  # (workers, pool) of cloud_batch

    def add_bottleneck(self, name_or_path: str | Path) -> codec.CodecSpec:
        """Load a learned bottleneck (a name in models/bottleneck/ or a file path) for this model and
        these weights, place it beside the model, and return its codec (``bn:<file stem>``).
        BottleneckError when it is missing, altered, or made for another model, weights or cut."""
        bottleneck = load_bottleneck(name_or_path, model_id=self.model_id,
                                     weights_fingerprint=self.model.weights_fingerprint)
        info = bottleneck.info
        cut = self.cut(info.cut_after_layer)
        shapes = self.runner.expected_shapes(cut)
        if list(shapes) != [info.cut_after_layer] or tuple(shapes[info.cut_after_layer][1:]) != info.crossing_shape:
            raise BottleneckError(f"{name_or_path}: cut {info.cut_after_layer} of {self.model_id} carries "
                                  f"{dict(shapes)}, the bottleneck expects one "
                                  f"{info.crossing_shape} tensor")
        spec = codec.CodecSpec("bn", bottleneck=resolve_path(name_or_path).stem)
        self.bottlenecks[spec.bottleneck] = bottleneck.to(device=self.device, dtype=self.dtype)
        return spec

    def bottleneck(self, spec: codec.CodecSpec) -> Bottleneck:
        """The bottleneck a ``bn:`` codec names: one added, or else one bundled under that name.
        PayloadError when there is none (a received frame naming an unknown bottleneck)."""
        if spec.bottleneck in self.bottlenecks:
            return self.bottlenecks[spec.bottleneck]
        with self._bottleneck_lock:
            return self._load_named_bottleneck(spec)

    def _load_named_bottleneck(self, spec: codec.CodecSpec) -> Bottleneck:
        if spec.bottleneck not in self.bottlenecks:
            refused = self._refused_bottlenecks.get(spec.bottleneck)
            if refused is None and len(self._refused_bottlenecks) >= MAX_REFUSED_BOTTLENECKS:
                # A sender inventing names: the memory of refusals stays bounded, and so do lookups.
                raise codec.PayloadError(f"codec {spec}: not loaded, and {MAX_REFUSED_BOTTLENECKS} unknown "
                                         "bottleneck names were refused already")
            if refused is None:  # looked up once: frames naming it again are refused without disk reads
                try:
                    self.add_bottleneck(spec.bottleneck)
                except BottleneckError as error:
                    refused = self._refused_bottlenecks[spec.bottleneck] = str(error)
            if refused is not None:
                raise codec.PayloadError(f"codec {spec}: {refused}")
        return self.bottlenecks[spec.bottleneck]

    @property
    def num_layers(self) -> int:
        return self.runner.graph.num_layers

    def cut(self, value: Cut | int | str) -> Cut:
        return self.runner.cut(value)

    def frame_cut(self, frame: EncodedFrame) -> Cut:
        """The cut a received frame claims; PayloadError when it is not a cut of this model."""
        try:
            if frame.edge_layers:
                return self.runner.graph.dag_cut(frame.edge_layers)
            return self.cut(frame.cut_after_layer)
        except ValueError as error:
            raise codec.PayloadError(f"invalid cut: {error}") from None

    def _postprocess(self, outputs: list[torch.Tensor], info: LetterboxInfo) -> list[Detection]:
        return postprocess(outputs, info, self.class_names, self.score_threshold, self.nms_iou)

    def warm_up(self) -> None:
        """One pass on a grey frame, so the first real frame does not pay for lazy initialisation."""
        self.detect(np.full((self.model.input_size, self.model.input_size, 3), 127, dtype=np.uint8))

    def _letterbox(self, image_bgr: np.ndarray) -> tuple[torch.Tensor, LetterboxInfo]:
        """Resized on the CPU, placed and scaled on the model's device, in its dtype."""
        return letterbox(image_bgr, self.model.input_size, self.device, self.dtype)

    def _ms_since(self, start: float) -> float:
        synchronize(self.device)
        return _ms_since(start)

    @torch.inference_mode()
    def detect(self, image_bgr: np.ndarray) -> list[Detection]:
        """The reference: the full forward pass in one place."""
        tensor, info = self._letterbox(image_bgr)
        return self._postprocess(self.model(tensor), info)

    @torch.inference_mode()
    def edge(self, image_bgr: np.ndarray, cut: Cut | int | str, spec: codec.CodecSpec) -> EncodedFrame:
        """Run the layers before ``cut`` and encode what crosses it.

        Image offload under ``jpeg-qN`` resizes the frame to the network's resolution before
        encoding (the letterbox's own resize, so the receiver only pads it), as does ``jpeg-dnn-qN``
        (4:4:4, a detector's quantization tables); ``jpeg-full-qN`` sends it at the camera's size.
        Either way the letterbox describes the camera frame, so detections come back in its pixels.
        """
        cut = self.cut(cut)
        start = time.perf_counter()
        if cut.is_image_offload and spec.dtype == "jpeg":
            info = letterbox_info(image_bgr.shape[1], image_bgr.shape[0], self.model.input_size)
            sent = image_bgr if spec.full_size else resize_to_input(image_bgr, self.model.input_size)
            frame = EncodedFrame(self.model_id, INPUT, spec, info, image_jpeg=codec.encode_image(sent, spec.quality, spec.tables))
            frame.encode_ms = _ms_since(start)
            return frame
        if spec.dtype == "jpeg":
            raise ValueError(f"codec {spec} only applies to image offload (cut 'cloud'), not cut {cut.after_layer}")
        self._check_bottleneck_cut(spec, cut)
        tensor, info = self._letterbox(image_bgr)
        payload = self.runner.head(tensor, cut)
        edge_ms = self._ms_since(start)
        start = time.perf_counter()
        records = self._encode(payload, spec)
        after_layer = INPUT if cut.after_layer is None else cut.after_layer
        edge_layers = () if cut.after_layer is not None else tuple(sorted(cut.edge_layers))
        return EncodedFrame(self.model_id, after_layer, spec, info, records, edge_layers=edge_layers,
                            edge_ms=edge_ms, encode_ms=_ms_since(start))

    def _check_bottleneck_cut(self, spec: codec.CodecSpec, cut: Cut) -> None:
        if spec.dtype != "bn":
            return
        works_at = self.bottleneck(spec).info.cut_after_layer
        if cut.after_layer != works_at:
            raise ValueError(f"bottleneck {spec.bottleneck} works at cut {works_at}, not at cut {cut.name(self.num_layers)}")

    def _encode(self, payload: dict, spec: codec.CodecSpec) -> list[codec.TensorRecord]:
        """The crossing tensors under a tensor codec, or a bottleneck's codes of its one tensor."""
        if spec.dtype != "bn":
            return codec.encode_tensors(payload, spec)
        (layer, tensor), = payload.items()
        bottleneck = self.bottleneck(spec)
        return encode_codes(layer, bottleneck.encode(tensor), _context_model(spec, bottleneck))

    def _decode(self, frame: EncodedFrame) -> tuple[Cut, dict]:
        if frame.model_id != self.model_id:
            raise codec.PayloadError(f"frame is for model {frame.model_id!r}, this node runs {self.model_id!r}")
        cut = self.frame_cut(frame)
        if frame.codec.dtype == "bn":
            bottleneck = self.bottleneck(frame.codec)
            if cut.after_layer != bottleneck.info.cut_after_layer:
                raise codec.PayloadError(f"codec {frame.codec} works at cut {bottleneck.info.cut_after_layer}, "
                                         f"the frame says cut {cut.name(self.num_layers)}")
            codes = decode_codes(frame.records, bottleneck.info,
                                 context=_context_model(frame.codec, bottleneck)).to(self.device)
            return cut, {cut.after_layer: bottleneck.decode(codes)}
        return cut, codec.decode_tensors(frame.records, frame.codec, self.runner.expected_shapes(cut),
                                         device=self.device, dtype=self.dtype)

    @torch.inference_mode()
    def fog(self, frame: EncodedFrame, until_layer: int, spec: codec.CodecSpec) -> EncodedFrame:
        """A middle tier: decode, run the layers up to ``until_layer``, encode what crosses there.

        An image passed on as an image is forwarded as received: a second JPEG pass would only
        lose quality.
        """
        second = self.cut(until_layer)
        if frame.image_jpeg and second.is_image_offload and spec.dtype == "jpeg":
            return frame
        if spec.dtype == "jpeg":
            raise ValueError(f"codec {spec} only applies to image offload (cut 'cloud'), not cut {second.after_layer}")
        self._check_bottleneck_cut(spec, second)
        start = time.perf_counter()
        first, payload, info, _ = self._receive(frame)
        middle = self.runner.middle(payload, first, second)
        compute_ms = self._ms_since(start)
        start = time.perf_counter()
        records = self._encode(middle, spec)
        return EncodedFrame(self.model_id, second.after_layer, spec, info, records,
                            edge_ms=compute_ms, encode_ms=_ms_since(start))

    @torch.inference_mode()
    def cloud(self, frame: EncodedFrame) -> CloudResult:
        """Validate and decode a received frame, run the rest of the network, post-process.

        Raises ``codec.PayloadError`` for anything that does not fit this model at that cut.
        """
        start = time.perf_counter()
        cut, payload, info, decode_ms = self._receive(frame)
        # Image offload runs the whole model; a tensor cut the rest of the network.
        outputs = self.model(payload[INPUT]) if frame.image_jpeg else self.runner.tail(payload, cut)
        detections = self._postprocess(outputs, info)  # plain Python values: the device is done
        cloud_ms = self._ms_since(start)
        return CloudResult(detections, decode_ms, cloud_ms, batch_size=1, batch_ms=cloud_ms)

    def _receive(self, frame: EncodedFrame, wait: bool = True) -> tuple[Cut, dict, LetterboxInfo, float]:
        """One received frame, validated and decoded for :meth:`cloud` and :meth:`cloud_batch`: its
        cut, the tensors that cross it (a JPEG becomes the letterboxed image crossing the
        image-offload cut), its letterbox, and its decode ms (JPEG: the decoding alone; with
        ``wait`` False the host's part, the upload to the device possibly still in flight)."""
        start = time.perf_counter()
        if frame.image_jpeg:
            if frame.model_id != self.model_id:
                raise codec.PayloadError(f"frame is for model {frame.model_id!r}, this node runs {self.model_id!r}")
            image = codec.decode_image(frame.image_jpeg)
            decode_ms = _ms_since(start)
            tensor, info = self._image_input(image, frame)
            return self.cut(INPUT), {INPUT: tensor}, info, decode_ms
        cut, payload = self._decode(frame)
        return cut, payload, frame.letterbox, self._ms_since(start) if wait else _ms_since(start)

    def _image_input(self, image: np.ndarray, frame: EncodedFrame) -> tuple[torch.Tensor, LetterboxInfo]:
        """A received image as the network input; PayloadError unless it has the size its codec
        and the frame's stated camera size imply (the letterbox is recomputed from that size, not
        trusted from the message)."""
        info = letterbox_info(frame.letterbox.image_width, frame.letterbox.image_height, self.model.input_size)
        if frame.codec.full_size:
            if image.shape[:2] != (info.image_height, info.image_width):
                raise codec.PayloadError(f"{frame.codec} image is {image.shape[1]}x{image.shape[0]}, the frame "
                                         f"says {info.image_width}x{info.image_height}")
            return self._letterbox(image)[0], info
        try:
            return place_in_input(image, info, self.device, self.dtype), info
        except ValueError as error:
            raise codec.PayloadError(f"{frame.codec} image: {error}") from None

    def _chunk_sizes(self, count: int, max_chunk: int | None) -> list[int]:
        """How a group of ``count`` frames is split into batched runs: one run, or, where the model
        packs weights per input shape (CPU fp32), powers of two, largest first (7 -> 4, 2, 1), so a
        cloud sees at most log2(max batch) + 1 shapes instead of repacking for every size."""
        limit = count if max_chunk is None else max(1, max_chunk)
        sizes = []
        while count:
            size = min(count, limit)
            if self.model.packs_per_input_shape:
                size = 1 << (size.bit_length() - 1)
            sizes.append(size)
            count -= size
        return sizes

    def _receive_all(self, frames: Sequence[EncodedFrame], workers: int
                     ) -> list[tuple[tuple[Cut, dict, LetterboxInfo, float], float] | codec.PayloadError]:
        """:meth:`_receive` (not waiting for the device) of every frame with its wall ms, or its
        PayloadError; on ``workers`` threads when more than one: JPEG decoding, zstd and numpy let
        go of the GIL, so frames decode in parallel on a many-core cloud host."""
        @torch.inference_mode()
        def receive(frame: EncodedFrame):
            start = time.perf_counter()
            try:
                received = self._receive(frame, wait=False)
            except codec.PayloadError as error:
                return error
            return received, _ms_since(start)

        if workers <= 1 or len(frames) < 2:
            return [receive(frame) for frame in frames]
        if self._decode_pool is None or self._decode_pool[0] != workers:
            if self._decode_pool is not None:
                self._decode_pool[1].shutdown(wait=False)
            self._decode_pool = (workers, ThreadPoolExecutor(workers, thread_name_prefix="l2p-decode"))
        return list(self._decode_pool[1].map(receive, frames))

    @torch.inference_mode()
    def cloud_batch(self, frames: Sequence[EncodedFrame], max_chunk: int | None = None, decode_workers: int = 1
                    ) -> list[CloudResult | codec.PayloadError]:
        """:meth:`cloud` for several frames at once: one result per frame, in order.

        Each frame is validated and decoded on its own; a malformed one yields its
        ``codec.PayloadError`` in its slot and does not affect the others. Frames that share a cut
        (image offload included: the letterboxed images are its crossing tensor) run their tail as
        one batch, their crossing tensors stacked along dim 0, and are post-processed together, each
        with its own letterbox (:func:`postprocess_batch`). Per frame the detections equal
        :meth:`cloud`'s (on the CPU in fp32 bit for bit, as far as tested: oneDNN computes each
        image of a batch alike). Where the model packs weights per input shape (CPU fp32), a group
        runs in power-of-two chunks (see :meth:`_chunk_sizes`); ``max_chunk`` caps a chunk's size.
        ``decode_workers`` > 1 validates and decodes the frames on that many threads (the results
        are the same). Times: see :class:`CloudResult`; with decode workers a frame's decode is its
        own thread's time, so a batch's ``cloud_ms`` add up to the busy time of every thread.
        """
        call_start = time.perf_counter()
        results: list[CloudResult | codec.PayloadError | None] = [None] * len(frames)
        received: dict[int, tuple[Cut, dict, LetterboxInfo]] = {}
        decode_ms: dict[int, float] = {}  # validation and decoding (JPEG: the decoding alone)
        own_ms: dict[int, float] = {}  # decode (+ letterbox) + a share of its chunk's tail and post-processing
        groups: dict[frozenset[int], list[int]] = {}
        for position, outcome in enumerate(self._receive_all(frames, decode_workers)):
            if isinstance(outcome, codec.PayloadError):
                results[position] = outcome
                continue
            (cut, payload, info, decode_ms[position]), own_ms[position] = outcome
            received[position] = (cut, payload, info)
            groups.setdefault(frozenset(cut.edge_layers), []).append(position)
        # One wait for every frame's upload instead of one a frame; the frames share what it waited.
        start = time.perf_counter()
        synchronize(self.device)
        upload_ms = _ms_since(start) / max(1, len(received))
        for position in received:
            decode_ms[position] += upload_ms
            own_ms[position] += upload_ms
        detections = {}
        for positions in groups.values():
            cut = received[positions[0]][0]
            offset = 0
            for size in self._chunk_sizes(len(positions), max_chunk):
                chunk = positions[offset: offset + size]
                offset += size
                start = time.perf_counter()
                payloads = [received[p][1] for p in chunk]
                stacked = {node: torch.cat([payload[node] for payload in payloads]) if len(payloads) > 1
                           else payloads[0][node] for node in cut.crossing}
                outputs = self.runner.tail(stacked, cut)
                found = postprocess_batch(outputs, [received[p][2] for p in chunk], self.class_names,
                                          self.score_threshold, self.nms_iou)
                share_ms = _ms_since(start) / len(chunk)  # the device is done: the results are on the host
                for p, frame_detections in zip(chunk, found):
                    detections[p] = frame_detections
                    own_ms[p] += share_ms
        batch_ms = self._ms_since(call_start)
        for position in received:
            results[position] = CloudResult(detections[position], decode_ms[position], own_ms[position],
                                            batch_size=len(frames), batch_ms=batch_ms)
        return results
