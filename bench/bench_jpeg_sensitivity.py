"""What yolov3-tiny's detections are sensitive to, per JPEG DCT frequency and colour component, and
the quantization tables that follow from it.

    python bench/bench_jpeg_sensitivity.py --threads 2

On the training photos (``l2p fetch-assets``; not the clips the tables are evaluated on) each image
is taken at network resolution, as ``jpeg-qN`` sends it. The distortion measure is the bottleneck
distillation loss (``bottleneck_training.Teacher.detection_loss``: detection scores, the candidates
weighted, objectness, objectness-weighted boxes), written as a vector F of the model's outputs whose
squared change is that loss. Its Gauss-Newton curvature per input coefficient, diag(J^T J), is
estimated with random-sign probes r (E[(J^T r)_k^2] = (J^T J)_kk), the gradient carried from
pixels to JPEG's YCbCr and its orthonormal 8x8 DCT on the JPEG's own block grid, and averaged per
frequency: w[component, u, v].

JPEG's DCT is orthonormal, so a step Q_k on coefficient k adds Q_k^2/12 of squared error there; at
a given rate the weighted error sum w_k Q_k^2 is least when Q_k is proportional to w_k^-1/2 (the
high-rate solution), luma and chroma alike: that fixes both tables' shapes and the chroma's level
against the luma (no "chroma 15 below" choice). Cb and Cr share a table in JPEG: their mean w.
The luma table is normalized to the standard luma table's mean step, so a quality scales it as
libjpeg scales the standard tables (``dnn_jpeg.scaled_table``).

Writes bench/results/jpeg_sensitivity_yolov3-tiny_416.json; ``bench_image_offload.py --compare
sensitivity`` measures the tables against the square-root ones (``jpeg-dnn-qN``).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import save  # noqa: E402

from l2p_ros.assets import training_photos_dir  # noqa: E402
from l2p_ros.bottleneck_training import CANDIDATE_SCORE, CANDIDATE_WEIGHT, read_frames  # noqa: E402
from l2p_ros.dnn_jpeg import STANDARD_LUMA  # noqa: E402
from l2p_ros.model.darknet import Darknet, load_model  # noqa: E402
from l2p_ros.model.graph import INPUT  # noqa: E402
from l2p_ros.model.postprocess import LETTERBOX_FILL, letterbox_info, resize_to_input  # noqa: E402
from l2p_ros.model.runner import SplitRunner  # noqa: E402

RESULT = "jpeg_sensitivity_yolov3-tiny_416"
# ITU-T T.871: JPEG's YCbCr = RGB_TO_YCBCR @ RGB + offset; a gradient in RGB is one in YCbCr
# through the inverse's transpose.
RGB_TO_YCBCR = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5], [0.5, -0.418688, -0.081312]])
GRADIENT_TO_YCBCR = np.linalg.inv(RGB_TO_YCBCR).T
_k = np.arange(8)
DCT_8 = np.sqrt(2 / 8) * np.cos(np.pi * (2 * _k[None, :] + 1) * _k[:, None] / 16)  # orthonormal DCT-II rows
DCT_8[0] /= np.sqrt(2)


def loss_vector(outputs: list[torch.Tensor], anchors: int) -> torch.Tensor:
    """The yolo layers' inputs as one vector whose squared change from this frame's is the terms of
    ``Teacher.detection_loss`` against this frame (the teacher's weights and spreads held fixed),
    normalized over the yolo layers together where training normalizes each layer alone. The
    split of each layer's rows repeats ``Teacher._split``, which needs a model cut to exist."""
    rows = []
    for output in outputs:
        n, _, h, w = output.shape
        terms = output.view(n, anchors, -1, h, w)
        rows.append((terms[:, :, :4], torch.sigmoid(terms[:, :, 4:])))
    with torch.no_grad():
        scores = torch.cat([s.flatten() for _, s in rows])
        objectness = [s[:, :, :1] for _, s in rows]
        candidate = [1 + CANDIDATE_WEIGHT * (s[:, :, :1] * s[:, :, 1:] > CANDIDATE_SCORE).float() for _, s in rows]
        candidate_sum = float(sum(c.sum() for c in candidate))
        objectness_sum = max(float(sum(o.sum() for o in objectness)), 1e-8)
        box_mean = float(torch.cat([b.flatten() for b, _ in rows]).mean())
        box_var = max(float(sum((o * (b - box_mean) ** 2).sum() for (b, _), o in zip(rows, objectness))) / objectness_sum, 1e-8)
        score_var = max(float(scores.var()), 1e-8)
        cells = sum(o.numel() for o in objectness)
    vector = []
    for (boxes, probabilities), weight, teacher_objectness in zip(rows, candidate, objectness):
        detection = probabilities[:, :, :1] * probabilities[:, :, 1:]
        vector.append((10 * (weight / candidate_sum).sqrt() * detection).flatten())  # x100 in the loss
        vector.append((probabilities[:, :, :1] / np.sqrt(score_var * cells)).flatten())
        vector.append(((teacher_objectness / (objectness_sum * 4 * box_var)).sqrt() * boxes).flatten())
    return torch.cat(vector)


def frame_sensitivity(model: Darknet, runner: SplitRunner, frame: np.ndarray, probes: int,
                      generator: torch.Generator) -> np.ndarray:
    """w[component, u, v] of one frame: mean over its whole 8x8 blocks and ``probes`` probes."""
    size = model.input_size
    resized = resize_to_input(frame, size)
    info = letterbox_info(frame.shape[1], frame.shape[0], size)
    pixels = torch.tensor(resized, dtype=torch.float32, requires_grad=True)  # BGR, 0..255
    height, width = resized.shape[:2]
    # The letterbox of l2p_ros.model.postprocess.place_in_input, differentiable.
    canvas = torch.full((1, 3, size, size), LETTERBOX_FILL)
    canvas[0, :, info.pad_y: info.pad_y + height, info.pad_x: info.pad_x + width] = pixels.flip(2).permute(2, 0, 1) / 255
    yolo_inputs = sorted(model.spec.layers[y].inputs[0] for y in model.yolo_indices)
    values = runner.run_segment_with_grad({INPUT: canvas}, range(len(model.spec.layers)), yolo_inputs)
    vector = loss_vector([values[i] for i in yolo_inputs], model.layers[model.yolo_indices[0]].num_anchors)
    rows, columns = height // 8, width // 8
    total = np.zeros((3, 8, 8))
    for probe in range(probes):
        signs = torch.randint(0, 2, vector.shape, generator=generator).float() * 2 - 1
        (gradient,) = torch.autograd.grad((signs * vector).sum(), pixels, retain_graph=probe < probes - 1)
        ycbcr = gradient.numpy()[:, :, ::-1] @ GRADIENT_TO_YCBCR.T  # BGR -> RGB -> YCbCr, per pixel
        blocks = ycbcr[: rows * 8, : columns * 8].reshape(rows, 8, columns, 8, 3).transpose(4, 0, 2, 1, 3)
        coefficients = np.einsum("uk,cijkl,vl->cijuv", DCT_8, blocks, DCT_8)
        total += (coefficients ** 2).mean(axis=(1, 2))
    return total / probes


def table_shapes(sensitivity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Luma and chroma step shapes (64 each, natural order) proportional to w^-1/2, on one scale:
    the luma's mean step is the standard luma table's."""
    luma = sensitivity[0].flatten() ** -0.5
    chroma = ((sensitivity[1] + sensitivity[2]).flatten() / 2) ** -0.5
    scale = STANDARD_LUMA.mean() / luma.mean()
    return luma * scale, chroma * scale


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=100, help="training photos used (at most)")
    parser.add_argument("--probes", type=int, default=4, help="random-sign probes per photo")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model("yolov3-tiny")
    runner = SplitRunner(model)
    frames = read_frames([str(training_photos_dir())], args.frames)
    generator = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    per_frame = np.stack([frame_sensitivity(model, runner, frame, args.probes, generator)
                          for frame in tqdm(frames, desc="sensitivity", unit="photo")])
    sensitivity = per_frame.mean(axis=0)
    luma, chroma = table_shapes(sensitivity)
    np.set_printoptions(precision=2, suppress=True, linewidth=120)
    for name, shape in (("luma", luma), ("chroma", chroma)):
        print(f"{name} step shape (standard luma mean {STANDARD_LUMA.mean():.1f}):\n{shape.reshape(8, 8)}")
    # How much the estimate moves between halves of the photos: its own noise.
    halves = [per_frame[: len(frames) // 2].mean(axis=0), per_frame[len(frames) // 2:].mean(axis=0)]
    half_shapes = [np.concatenate(table_shapes(half)) for half in halves]
    spread = float(np.max(np.abs(np.log(half_shapes[0] / half_shapes[1]))))
    print(f"{len(frames)} photos in {time.perf_counter() - start:.0f} s; the two halves' steps differ by at most "
          f"{np.exp(spread) - 1:.0%}")
    save(RESULT, {"command": " ".join(["python", *sys.argv]), "photos": len(frames), "probes": args.probes,
                  "sensitivity_ycbcr": np.round(sensitivity / sensitivity[0, 0, 0], 5).tolist(),
                  "luma_step_shape": np.round(luma, 3).tolist(), "chroma_step_shape": np.round(chroma, 3).tolist(),
                  "halves_max_step_ratio": round(float(np.exp(spread)), 3)})


if __name__ == "__main__":
    main()
