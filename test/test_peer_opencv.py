"""Pretrained YOLOv3-tiny against a peer implementation: OpenCV 4.10's Darknet importer.

Both networks read the same cfg and weights and see the same letterboxed blob, on real images and
video frames. OpenCV's yolo rows are [cx, cy, w, h] normalised to the blob size, objectness, then
class scores already multiplied by objectness and zeroed below 0.2 (its region layer's threshold);
rows come in the same (y, x, anchor) order as ours.
"""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from l2p_ros.assets import SAMPLE_IMAGES, SAMPLE_VIDEO, asset_path
from l2p_ros.model.cfg import bundled_cfg
from l2p_ros.model.darknet import Darknet, load_model
from l2p_ros.model.postprocess import (
    Detection, LetterboxInfo, letterbox, load_class_names, postprocess, unletterbox_boxes,
)

INPUT_SIZE = 416
VIDEO_FRAMES = (0, 250, 500)
OPENCV_SCORE_FLOOR = 0.2  # OpenCV zeroes class scores at or below this
SCORE_THRESHOLD = 0.25
NMS_IOU = 0.45
SCORE_MARGIN = 0.01  # detections this close to the threshold may flip either way


FRAME_NAMES = [*SAMPLE_IMAGES, *(f"{SAMPLE_VIDEO}#{i}" for i in VIDEO_FRAMES)]


@pytest.fixture(scope="module")
def frames() -> dict[str, np.ndarray]:
    images = {name: cv2.imread(str(asset_path(name))) for name in SAMPLE_IMAGES}
    capture = cv2.VideoCapture(str(asset_path(SAMPLE_VIDEO)))
    for index in VIDEO_FRAMES:
        capture.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = capture.read()
        assert ok, f"cannot read frame {index} of {SAMPLE_VIDEO}"
        images[f"{SAMPLE_VIDEO}#{index}"] = frame
    capture.release()
    return images


@pytest.fixture(scope="module")
def tiny() -> Darknet:
    return load_model("yolov3-tiny", INPUT_SIZE)


@pytest.fixture(scope="module")
def opencv_tiny() -> cv2.dnn.Net:
    net = cv2.dnn.readNetFromDarknet(str(bundled_cfg("yolov3-tiny")), str(asset_path("yolov3-tiny.weights")))
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    return net


@pytest.fixture(scope="module")
def class_names() -> list[str]:
    return load_class_names()


@pytest.fixture(scope="module")
def runs(frames, tiny, opencv_tiny) -> dict[str, tuple[LetterboxInfo, list[np.ndarray], list[np.ndarray]]]:
    """Per frame: letterbox info, our yolo outputs (R_i, 85) and OpenCV's (R_i, 85)."""
    names = opencv_tiny.getUnconnectedOutLayersNames()
    results = {}
    for name, image in frames.items():
        blob, info = letterbox(image, INPUT_SIZE)
        ours = [out[0].numpy() for out in tiny(blob)]
        opencv_tiny.setInput(blob.numpy())
        results[name] = (info, ours, list(opencv_tiny.forward(names)))
    return results


def opencv_detections(rows: np.ndarray, info: LetterboxInfo, class_names: list[str], threshold: float):
    """OpenCV's way: every class score over the threshold, then OpenCV's own per-class NMS."""
    box_index, class_ids = np.nonzero(rows[:, 5:] > threshold)
    scores = rows[box_index, 5 + class_ids]
    cx, cy, w, h = (rows[box_index, :4] * INPUT_SIZE).T
    xywh = np.stack([cx - w / 2, cy - h / 2, w, h], axis=1)
    keep = cv2.dnn.NMSBoxesBatched(xywh.tolist(), scores.tolist(), class_ids.tolist(), threshold, NMS_IOU)
    keep = np.asarray(keep).reshape(-1).astype(int)
    xyxy = torch.from_numpy(np.concatenate([xywh[keep, :2], xywh[keep, :2] + xywh[keep, 2:]], axis=1))
    boxes = unletterbox_boxes(xyxy, info).tolist()
    return [
        Detection(int(class_ids[k]), class_names[class_ids[k]], float(scores[k]), *box) for k, box in zip(keep, boxes)
    ]


def iou(a: Detection, b: Detection) -> float:
    inter_w = max(0.0, min(a.x2, b.x2) - max(a.x1, b.x1))
    inter_h = max(0.0, min(a.y2, b.y2) - max(a.y1, b.y1))
    inter = inter_w * inter_h
    union = (a.x2 - a.x1) * (a.y2 - a.y1) + (b.x2 - b.x1) * (b.y2 - b.y1) - inter
    return inter / union if union > 0 else 0.0


def assert_covered(confident: list[Detection], candidates: list[Detection], what: str) -> None:
    for det in confident:
        matches = [c for c in candidates if c.label == det.label and iou(c, det) >= 0.9]
        assert matches, f"{what}: no match for {det}"
        assert min(abs(c.score - det.score) for c in matches) <= 0.01, f"{what}: score differs for {det}"


@pytest.mark.parametrize("frame", FRAME_NAMES)
def test_raw_outputs_agree(runs, frame):
    _, ours, theirs = runs[frame]
    assert [o.shape for o in ours] == [t.shape for t in theirs]
    for o, t in zip(ours, theirs):
        np.testing.assert_allclose(o[:, :4] / INPUT_SIZE, t[:, :4], atol=1e-4, rtol=0)
        np.testing.assert_allclose(o[:, 4], t[:, 4], atol=1e-4, rtol=0)
        class_scores = o[:, 4:5] * o[:, 5:]
        kept = t[:, 5:] > 0
        np.testing.assert_allclose(class_scores[kept], t[:, 5:][kept], atol=1e-4, rtol=0)
        assert (class_scores[~kept] <= OPENCV_SCORE_FLOOR + 1e-4).all()


@pytest.mark.parametrize("frame", FRAME_NAMES)
def test_detections_agree(runs, class_names, frame):
    info, ours_raw, theirs_raw = runs[frame]
    # Thresholds a margin apart: what one side finds clearly, the other must find at all.
    loose = SCORE_THRESHOLD - SCORE_MARGIN
    ours_all = postprocess([torch.from_numpy(o)[None] for o in ours_raw], info, class_names, loose, NMS_IOU)
    theirs_all = opencv_detections(np.concatenate(theirs_raw), info, class_names, loose)
    confident = SCORE_THRESHOLD + SCORE_MARGIN
    assert_covered([d for d in ours_all if d.score >= confident], theirs_all, f"{frame} ours -> OpenCV")
    assert_covered([d for d in theirs_all if d.score >= confident], ours_all, f"{frame} OpenCV -> ours")


def test_known_objects_are_found(runs, class_names):
    """The real scenes contain what they should: a guard against both sides being wrong alike."""
    labels = {}
    for frame, (info, ours, _) in runs.items():
        detections = postprocess([torch.from_numpy(o)[None] for o in ours], info, class_names)
        labels[frame] = {d.label for d in detections}
        for d in detections:
            assert 0 <= d.x1 < d.x2 <= info.image_width and 0 <= d.y1 < d.y2 <= info.image_height
            assert SCORE_THRESHOLD < d.score <= 1
        assert [d.score for d in detections] == sorted((d.score for d in detections), reverse=True)
    assert "person" in labels["messi5.jpg"]
    assert all("person" in labels[f"{SAMPLE_VIDEO}#{i}"] for i in VIDEO_FRAMES)
