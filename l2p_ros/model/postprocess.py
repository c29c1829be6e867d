"""Image to network input (Darknet letterbox) and decoded yolo outputs to detections.

Small pure functions in the style of torchvision.ops: ``letterbox`` before the network,
``postprocess`` (threshold, class-aware NMS, back to original-image pixels) after it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor
from torchvision.ops import batched_nms, box_convert

from l2p_ros.model.cfg import BUNDLED_CFG_DIR

LETTERBOX_FILL = 0.5  # Darknet's letterbox_image fills with grey 0.5


@dataclass
class LetterboxInfo:
    """How an image was fitted into the square network input.

    A pixel (u, v) of the original image lands at (u * scale + pad_x, v * scale + pad_y) in the
    ``input_size`` x ``input_size`` network input.
    """

    scale: float
    pad_x: int
    pad_y: int
    image_width: int
    image_height: int
    input_size: int


@dataclass(frozen=True)
class Detection:
    """One detected object; the box is in pixels of the original image (x1, y1 top-left)."""

    class_id: int
    label: str
    score: float
    x1: float
    y1: float
    x2: float
    y2: float

    def to_dict(self) -> dict:
        """JSON-ready: label, class_id, score and the box as x1, y1, x2, y2 pixels."""
        return {"label": self.label, "class_id": self.class_id, "score": round(self.score, 5),
                "box": [round(v, 2) for v in (self.x1, self.y1, self.x2, self.y2)]}


def fitted_size(width: int, height: int, input_size: int) -> tuple[int, int]:
    """(width, height) of a ``width`` x ``height`` image fitted into the network input: Darknet's
    integer arithmetic, the longer side becomes ``input_size``."""
    if width >= height:
        return input_size, max(1, height * input_size // width)
    return max(1, width * input_size // height), input_size


def letterbox_info(width: int, height: int, input_size: int) -> LetterboxInfo:
    """Where a ``width`` x ``height`` image lands in the square network input (no pixels touched)."""
    new_w, new_h = fitted_size(width, height, input_size)
    scale = input_size / max(width, height)
    return LetterboxInfo(scale, (input_size - new_w) // 2, (input_size - new_h) // 2, width, height, input_size)


def resize_to_input(image_bgr: np.ndarray, input_size: int) -> np.ndarray:
    """The image resized (bilinear, aspect kept) to what the network will see of it: the first
    half of :func:`letterbox`, which an edge sending images at network resolution runs alone."""
    if image_bgr.ndim != 3 or image_bgr.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) BGR image, got shape {image_bgr.shape}")
    height, width = image_bgr.shape[:2]
    return cv2.resize(image_bgr, fitted_size(width, height, input_size), interpolation=cv2.INTER_LINEAR)


def place_in_input(resized_bgr: np.ndarray, info: LetterboxInfo, device: torch.device | str | None = None,
                   dtype: torch.dtype = torch.float32) -> Tensor:
    """The second half of :func:`letterbox`: an image already at its fitted size, centred on the
    grey canvas -> (1, 3, S, S) RGB in 0..1 on ``device`` (default: the CPU) as ``dtype``.
    ValueError when it is not at that size. The uint8 pixels travel to the device as they are (a
    quarter of the float bytes) and are scaled there, in float32 on every device."""
    new_w, new_h = fitted_size(info.image_width, info.image_height, info.input_size)
    if resized_bgr.ndim != 3 or resized_bgr.shape != (new_h, new_w, 3):
        raise ValueError(f"expected a {new_w}x{new_h} BGR image for a {info.image_width}x{info.image_height} "
                         f"frame at {info.input_size} px, got shape {resized_bgr.shape}")
    size = info.input_size
    pixels = torch.from_numpy(np.ascontiguousarray(resized_bgr)).to(device=device)
    canvas = torch.full((1, 3, size, size), LETTERBOX_FILL, dtype=torch.float32, device=pixels.device)
    canvas[0, :, info.pad_y: info.pad_y + new_h, info.pad_x: info.pad_x + new_w] = (
        pixels.flip(2).permute(2, 0, 1) * (1 / 255))
    return canvas.to(dtype)


def letterbox(image_bgr: np.ndarray, input_size: int, device: torch.device | str | None = None,
              dtype: torch.dtype = torch.float32) -> tuple[Tensor, LetterboxInfo]:
    """Darknet-style letterbox: (H, W, 3) uint8 BGR -> (1, 3, S, S) RGB in 0..1 on ``device``
    (default: the CPU) as ``dtype``.

    The image keeps its aspect ratio (bilinear resize), is centred, and the border is filled with 0.5.
    """
    resized = resize_to_input(image_bgr, input_size)
    info = letterbox_info(image_bgr.shape[1], image_bgr.shape[0], input_size)
    return place_in_input(resized, info, device, dtype), info


def unletterbox_boxes(boxes_xyxy: Tensor, info: LetterboxInfo) -> Tensor:
    """(K, 4) x1y1x2y2 boxes in network-input pixels -> original-image pixels, clipped to the image."""
    offset = boxes_xyxy.new_tensor([info.pad_x, info.pad_y, info.pad_x, info.pad_y])
    boxes = (boxes_xyxy - offset) / info.scale
    limit = boxes.new_tensor([info.image_width, info.image_height, info.image_width, info.image_height])
    return boxes.clamp(min=0).minimum(limit)


def postprocess(
    yolo_outputs: list[Tensor],
    info: LetterboxInfo,
    class_names: list[str],
    score_threshold: float = 0.25,
    nms_iou: float = 0.45,
) -> list[Detection]:
    """Decoded yolo outputs of one image -> detections, best first.

    Every (box, class) pair scoring above ``score_threshold`` is a candidate (Darknet keeps all
    classes over the threshold, not only the best one); NMS is per class, IoU > ``nms_iou`` suppresses.
    """
    if any(out.shape[0] != 1 for out in yolo_outputs):
        raise ValueError(f"postprocess takes one image, got batch sizes {[out.shape[0] for out in yolo_outputs]}")
    return postprocess_batch(yolo_outputs, [info], class_names, score_threshold, nms_iou)[0]


def postprocess_batch(
    yolo_outputs: list[Tensor],
    infos: list[LetterboxInfo],
    class_names: list[str],
    score_threshold: float = 0.25,
    nms_iou: float = 0.45,
) -> list[list[Detection]]:
    """Decoded yolo outputs of a batch (each (B, R_i, 5+C)) -> each image's detections, best first.

    Per image exactly :func:`postprocess`'s rules and numbers (its detections do not depend on the
    batch), but the batch is scored, thresholded and moved back to the host at once: on a GPU
    the host waits for the device four times a batch and once per image's NMS, not a dozen times
    a frame. Equal scores keep the order of their rows and classes, so the order is deterministic.
    """
    batch = yolo_outputs[0].shape[0]
    if any(out.shape[0] != batch for out in yolo_outputs) or len(infos) != batch:
        raise ValueError(f"{len(infos)} letterboxes for outputs of batch sizes "
                         f"{[out.shape[0] for out in yolo_outputs]}")
    if any(out.shape[2] - 5 != len(class_names) for out in yolo_outputs):
        raise ValueError(f"the model predicts {yolo_outputs[0].shape[2] - 5} classes but {len(class_names)} "
                         "names were given")
    # A class score (objectness x class probability <= 1) never exceeds its objectness, even rounded,
    # so rows with objectness at or below the threshold hold no candidate (Darknet's own shortcut):
    # only the others are gathered and scored, exactly, skipping ~99% of the (row, class) pairs.
    images, rows, gathered, first_row = [], [], [], 0
    for out in yolo_outputs:
        image, row = torch.nonzero(out[..., 4].float() > score_threshold, as_tuple=True)
        images.append(image)
        rows.append(row + first_row)
        gathered.append(out[image, row])
        first_row += out.shape[1]
    image_of_row, row = torch.cat(images), torch.cat(rows)
    # Each image's rows in the order of its outputs concatenated (the keys are unique).
    order = torch.argsort(image_of_row * first_row + row)
    image_of_row, kept = image_of_row[order], torch.cat(gathered)[order].float()
    scores = kept[:, 4:5] * kept[:, 5:]
    candidate, class_ids = torch.nonzero(scores > score_threshold, as_tuple=True)
    picked_scores = scores[candidate, class_ids]
    boxes = box_convert(kept[candidate, :4], "cxcywh", "xyxy")
    image_ids = image_of_row[candidate]
    counts = torch.bincount(image_ids, minlength=batch).tolist()
    # NMS image by image (one call each, classes kept apart by batched_nms): the same boxes and
    # offsets as a lone image gets, so its result is exactly the lone image's. NMS in
    # network-input pixels, before clipping, as Darknet does; IoU is scale-invariant.
    keep, first = [], 0
    for count in counts:
        if count:
            span = slice(first, first + count)
            keep.append(first + batched_nms(boxes[span], picked_scores[span], class_ids[span], nms_iou))
        first += count
    results: list[list[Detection]] = [[] for _ in range(batch)]
    if not keep:
        return results
    keep = _best_first(torch.cat(keep), picked_scores, image_ids)
    final = _unletterbox_rows(boxes[keep], image_ids[keep], infos)
    # One transfer to the host for every image's detections (float64 holds each value exactly).
    table = torch.cat([image_ids[keep, None].double(), class_ids[keep, None].double(),
                       picked_scores[keep, None].double(), final.double()], dim=1).tolist()
    for image, class_id, score, *box in table:
        results[int(image)].append(Detection(int(class_id), class_names[int(class_id)], score, *box))
    return results


def _best_first(keep: Tensor, scores: Tensor, image_ids: Tensor) -> Tensor:
    """``keep`` (candidate indices) ordered by image, each image's highest score first, equal scores
    by candidate order (NMS's own order among them depends on its code path): stable sorts by
    the keys from the least to the most significant."""
    keep = keep.sort().values
    keep = keep[torch.sort(scores[keep], descending=True, stable=True).indices]
    return keep[torch.sort(image_ids[keep], stable=True).indices]


def _unletterbox_rows(boxes_xyxy: Tensor, image_ids: Tensor, infos: list[LetterboxInfo]) -> Tensor:
    """:func:`unletterbox_boxes` for boxes of several images, each with its own letterbox (the
    same float32 operations, so a box comes out as its image alone would give it)."""
    table = boxes_xyxy.new_tensor([[info.pad_x, info.pad_y, info.pad_x, info.pad_y, info.scale,
                                    info.image_width, info.image_height, info.image_width, info.image_height]
                                   for info in infos])[image_ids]
    boxes = (boxes_xyxy - table[:, 0:4]) / table[:, 4:5]
    return boxes.clamp(min=0).minimum(table[:, 5:9])


def load_class_names(path: str | Path | None = None) -> list[str]:
    """Class names, one per line (blank lines ignored); defaults to the bundled COCO names."""
    path = Path(path) if path is not None else BUNDLED_CFG_DIR / "coco.names"
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]
