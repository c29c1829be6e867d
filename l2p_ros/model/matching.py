"""Agreement between two detection lists (same class, IoU above a threshold, one-to-one)."""
from __future__ import annotations

from typing import Sequence

import torch
from torchvision.ops import box_iou

from l2p_ros.model.postprocess import Detection


def _boxes(detections: Sequence[Detection]) -> torch.Tensor:
    return torch.tensor([[d.x1, d.y1, d.x2, d.y2] for d in detections], dtype=torch.float64).reshape(-1, 4)


def match_pairs(reference: Sequence[Detection], candidate: Sequence[Detection],
                iou_threshold: float = 0.5) -> list[tuple[int, int, float]]:
    """Greedy one-to-one matching in descending IoU: (reference index, candidate index, IoU)."""
    if not reference or not candidate:
        return []
    iou = box_iou(_boxes(reference), _boxes(candidate))
    same_class = torch.tensor([[r.class_id == c.class_id for c in candidate] for r in reference])
    iou = torch.where(same_class, iou, torch.zeros_like(iou))
    pairs = []
    used_ref, used_cand = set(), set()
    order = torch.argsort(iou.flatten(), descending=True)
    for flat in order.tolist():
        r, c = divmod(flat, len(candidate))
        value = float(iou[r, c])
        if value < iou_threshold:
            break
        if r in used_ref or c in used_cand:
            continue
        used_ref.add(r)
        used_cand.add(c)
        pairs.append((r, c, value))
    return pairs


def match_detections(reference: Sequence[Detection], candidate: Sequence[Detection],
                     iou_threshold: float = 0.5) -> int:
    """How many reference detections the candidate list reproduces."""
    return len(match_pairs(reference, candidate, iou_threshold))
