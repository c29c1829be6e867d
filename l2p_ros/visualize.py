"""Drawing detections on frames (for annotated outputs and the demo)."""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from l2p_ros.model.postprocess import Detection


def _color(class_id: int) -> tuple[int, int, int]:
    # A fixed, well-spread colour per class so a class keeps its colour across frames.
    hue = (class_id * 47) % 180
    bgr = cv2.cvtColor(np.uint8([[[hue, 220, 255]]]), cv2.COLOR_HSV2BGR)[0, 0]
    return int(bgr[0]), int(bgr[1]), int(bgr[2])


def draw_detections(image_bgr: np.ndarray, detections: Sequence[Detection]) -> np.ndarray:
    """A copy of the image with each detection's box, label and score drawn."""
    canvas = image_bgr.copy()
    for det in detections:
        color = _color(det.class_id)
        p1, p2 = (int(round(det.x1)), int(round(det.y1))), (int(round(det.x2)), int(round(det.y2)))
        cv2.rectangle(canvas, p1, p2, color, 2)
        text = f"{det.label} {det.score:.2f}"
        (width, height), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
        top = max(p1[1] - height - 4, 0)
        cv2.rectangle(canvas, (p1[0], top), (p1[0] + width + 4, top + height + 4), color, -1)
        cv2.putText(canvas, text, (p1[0] + 2, top + height + 1), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1)
    return canvas
