"""The Darknet model layer: structure, shapes, weights I/O, Darknet semantics, determinism."""
from __future__ import annotations

import math
import shutil

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from l2p_ros.assets import asset_path
from l2p_ros.model.cfg import CfgError, LayerSpec, bundled_cfg, parse_cfg, parse_cfg_text
from l2p_ros.model.darknet import ConvLayer, Darknet, MaxPoolLayer, WeightsError, YoloLayer, load_model
from torchvision.ops import box_convert, nms

from l2p_ros.model.postprocess import (Detection, LetterboxInfo, letterbox, postprocess, postprocess_batch,
                                       unletterbox_boxes)


@pytest.fixture(scope="module")
def tiny() -> Darknet:
    return load_model("yolov3-tiny")


@pytest.fixture(scope="module")
def messi_blob() -> torch.Tensor:
    return letterbox(cv2.imread(str(asset_path("messi5.jpg"))), 416)[0]


def run_layers(model: Darknet, x: torch.Tensor, detach_layout: bool = False) -> list[torch.Tensor]:
    """Every layer's output via layer_forward; optionally hands each layer NCHW-contiguous copies,
    as a decoded wire tensor would be."""
    outputs: dict[int, torch.Tensor] = {-1: x}
    with torch.inference_mode():
        for layer in model.spec.layers:
            inputs = [outputs[i] for i in layer.inputs]
            if detach_layout:
                inputs = [t.contiguous().clone() for t in inputs]
            outputs[layer.index] = model.layer_forward(layer.index, inputs)
    return [outputs[i] for i in range(len(model.spec.layers))]


@pytest.mark.parametrize("name, count, yolo", [("yolov3", 107, [82, 94, 106]), ("yolov3-tiny", 24, [16, 23])])
def test_layer_count_and_heads(name, count, yolo):
    model = Darknet(parse_cfg(bundled_cfg(name)))
    assert len(model.layers) == len(model.output_shapes) == count
    assert model.yolo_indices == yolo
    assert model.num_classes == 80


@pytest.mark.parametrize("size", [320, 416, 608])
def test_tiny_output_shapes_match_forward(size):
    model = load_model("yolov3-tiny", input_size=size)
    outputs = run_layers(model, torch.rand(1, 3, size, size))
    assert [tuple(t.shape) for t in outputs] == model.output_shapes
    cells = (size // 32) ** 2 * 3
    assert model.output_shapes[16] == (1, cells, 85) and model.output_shapes[23] == (1, 4 * cells, 85)


@pytest.mark.parametrize("size", [320, 416, 608])
def test_yolov3_output_shapes_match_forward(size):
    # Shapes only: the same layer code on the meta device (the CPU kernels are covered by tiny).
    model = Darknet(parse_cfg(bundled_cfg("yolov3")), size).to("meta")
    outputs = run_layers(model, torch.empty(1, 3, size, size, device="meta"))
    assert [tuple(t.shape) for t in outputs] == model.output_shapes
    assert [model.output_shapes[i][1] for i in model.yolo_indices] == [3 * (size // s) ** 2 for s in (32, 16, 8)]


def test_loaded_model_is_frozen_eval(tiny):
    assert not tiny.training
    assert not any(p.requires_grad for p in tiny.parameters())


def test_unknown_model_and_unsupported_cfg_are_clear_errors():
    with pytest.raises(ValueError, match="yolov4"):
        load_model("yolov4")
    cfg = "[net]\nchannels=3\n[convolutional]\nfilters=8\nsize=3\nactivation=mish\n"
    with pytest.raises(CfgError, match="layer 0.*mish"):
        Darknet(parse_cfg_text(cfg))


def test_input_size_must_be_multiple_of_32():
    with pytest.raises(ValueError, match="input_size"):
        load_model("yolov3-tiny", input_size=400)


def test_yolov3_without_weights_is_a_clear_error():
    with pytest.raises(WeightsError, match="--weights.*--random-weights"):
        load_model("yolov3")


def test_weights_file_size_mismatch_names_file_and_counts(tmp_path):
    truncated = tmp_path / "truncated.weights"
    data = asset_path("yolov3-tiny.weights").read_bytes()
    truncated.write_bytes(data[:-4])
    model = Darknet(parse_cfg(bundled_cfg("yolov3-tiny")))
    expected = model.darknet_float_count()
    with pytest.raises(WeightsError, match=rf"{truncated.name}.*expected {expected}.*found {expected - 1}"):
        model.load_darknet_weights(truncated)
    with pytest.raises(WeightsError, match="yolov3-tiny.weights"):
        load_model("yolov3", weights=asset_path("yolov3-tiny.weights"))


def test_cfg_path_and_weights_path(tmp_path, tiny, messi_blob):
    cfg = tmp_path / "my-tiny.cfg"
    shutil.copy(bundled_cfg("yolov3-tiny"), cfg)
    model = load_model(cfg, weights=asset_path("yolov3-tiny.weights"))
    assert all(torch.equal(a, b) for a, b in zip(model(messi_blob), tiny(messi_blob)))


def test_save_load_round_trip_is_exact(tmp_path, tiny, messi_blob):
    path = tmp_path / "copy.weights"
    tiny.save_darknet_weights(path)
    assert path.stat().st_size == 20 + 4 * tiny.darknet_float_count()  # header: 3 x int32, int64 seen
    copy = load_model("yolov3-tiny", weights=path)
    for a, b in zip(copy.parameters(), tiny.parameters()):
        assert torch.equal(a, b)
    assert all(torch.equal(a, b) for a, b in zip(copy(messi_blob), tiny(messi_blob)))


def test_random_weights_are_deterministic_and_sane():
    with pytest.warns(UserWarning, match="meaningless"):
        first = load_model("yolov3", input_size=320, random_weights=True)
    with pytest.warns(UserWarning):
        second = load_model("yolov3", input_size=320, random_weights=True)
    for a, b in zip(first.parameters(), second.parameters()):
        assert torch.equal(a, b)
    x = torch.rand(1, 3, 320, 320, generator=torch.Generator().manual_seed(1))
    outputs = first(x)
    assert all(torch.isfinite(o).all() for o in outputs)
    assert all(torch.equal(a, b) for a, b in zip(outputs, second(x)))


def test_forward_is_deterministic(tiny, messi_blob):
    runs = [tiny(messi_blob) for _ in range(3)]
    for other in runs[1:]:
        assert all(torch.equal(a, b) for a, b in zip(runs[0], other))


def test_layer_forward_ignores_memory_layout(tiny, messi_blob):
    # A tensor that crossed the network arrives NCHW-contiguous: results must not change by a bit.
    native = run_layers(tiny, messi_blob)
    relaid = run_layers(tiny, messi_blob, detach_layout=True)
    assert all(torch.equal(a, b) for a, b in zip(native, relaid))
    assert all(torch.equal(native[i], out) for i, out in zip(tiny.yolo_indices, tiny(messi_blob)))


def conv_layer(in_channels, filters, size, stride, activation, seed=0):
    spec = LayerSpec(0, "convolutional", {
        "filters": str(filters), "size": str(size), "stride": str(stride), "pad": "1", "activation": activation,
    }, (-1,))
    layer = ConvLayer(spec, in_channels)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        fan_in = in_channels * size * size
        layer.conv.weight.copy_(torch.randn(layer.conv.weight.shape, generator=generator) / math.sqrt(fan_in))
        layer.conv.bias.copy_(torch.randn(filters, generator=generator))
    return layer


@pytest.mark.parametrize("in_channels, filters, size, stride, hw, activation", [
    (3, 16, 3, 1, (13, 17), "leaky"),     # direct
    (64, 128, 3, 1, (13, 13), "leaky"),   # Winograd, partial edge tiles
    (96, 64, 3, 1, (8, 12), "linear"),    # Winograd, whole tiles
    (64, 128, 3, 2, (26, 26), "leaky"),   # strided: direct
    (128, 255, 1, 1, (13, 13), "linear"),  # 1x1: direct
])
def test_conv_matches_float64_reference(in_channels, filters, size, stride, hw, activation):
    layer = conv_layer(in_channels, filters, size, stride, activation)
    x = torch.randn(2, in_channels, *hw, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        y = layer(x)
    conv = layer.conv
    reference = F.conv2d(x.double(), conv.weight.double(), conv.bias.double(), stride, conv.padding)
    if activation == "leaky":
        reference = F.leaky_relu(reference, 0.1)
    assert y.shape == reference.shape
    torch.testing.assert_close(y.double(), reference, atol=1e-4, rtol=1e-4)


def darknet_maxpool_reference(x: torch.Tensor, size: int, stride: int, padding: int) -> torch.Tensor:
    """A direct port of Darknet's forward_maxpool_layer loop (outside positions are skipped)."""
    n, c, h, w = x.shape
    out_h, out_w = (h + padding - size) // stride + 1, (w + padding - size) // stride + 1
    offset = -(padding // 2)
    out = torch.empty(n, c, out_h, out_w)
    for i in range(out_h):
        for j in range(out_w):
            best = torch.full((n, c), -math.inf)
            for dy in range(size):
                for dx in range(size):
                    y, x_ = offset + i * stride + dy, offset + j * stride + dx
                    if 0 <= y < h and 0 <= x_ < w:
                        best = torch.maximum(best, x[:, :, y, x_])
            out[:, :, i, j] = best
    return out


def maxpool(size, stride, hw, padding=None):
    options = {"size": str(size), "stride": str(stride)}
    if padding is not None:
        options["padding"] = str(padding)
    return MaxPoolLayer(LayerSpec(0, "maxpool", options, (-1,)), hw)


def test_maxpool_size2_stride1_replicates_last_row_and_column():
    x = -1 - torch.rand(1, 4, 13, 13)  # all negative: zero padding would show up as 0 on the edges
    out = maxpool(2, 1, (13, 13))(x)
    expected = F.max_pool2d(F.pad(x, (0, 1, 0, 1), mode="replicate"), 2, 1)
    assert torch.equal(out, expected)
    assert out.shape == (1, 4, 13, 13) and (out < 0).all()


@pytest.mark.parametrize("size, stride, hw, padding", [
    (2, 2, (26, 26), None), (2, 2, (7, 9), None), (3, 2, (7, 8), None), (3, 1, (5, 6), None), (2, 1, (4, 4), 0),
])
def test_maxpool_matches_darknet_loop(size, stride, hw, padding):
    x = torch.randn(2, 3, *hw)
    layer = maxpool(size, stride, hw, padding)
    expected = darknet_maxpool_reference(x, size, stride, size - 1 if padding is None else padding)
    assert torch.equal(layer(x), expected)
    assert layer(x).shape[2:] == layer.out_hw


def test_yolo_decoding_follows_darknet():
    spec = LayerSpec(0, "yolo", {"mask": "1,2", "anchors": "10,14, 23,27, 37,58", "classes": "2"}, (-1,))
    layer = YoloLayer(spec, (3, 3), input_size=96)  # 3x3 grid: 32 px cells
    x = torch.randn(1, 2 * 7, 3, 3)
    out = layer(x)
    assert out.shape == (1, 3 * 3 * 2, 7)
    raw = x.view(2, 7, 3, 3)  # (anchor, entry, y, x) as Darknet lays it out
    for a, (anchor_w, anchor_h) in enumerate([(23, 27), (37, 58)]):
        for cy in range(3):
            for cx in range(3):
                row = out[0, (cy * 3 + cx) * 2 + a]
                t = raw[a, :, cy, cx]
                expected = torch.stack([
                    (cx + t[0].sigmoid()) * 32, (cy + t[1].sigmoid()) * 32,
                    t[2].exp() * anchor_w, t[3].exp() * anchor_h, *t[4:].sigmoid(),
                ])
                torch.testing.assert_close(row, expected)


def test_letterbox_keeps_aspect_centres_and_fills_grey():
    image = np.zeros((100, 200, 3), np.uint8)
    image[:, :, 2] = 255  # pure red, BGR
    blob, info = letterbox(image, 64)
    assert blob.shape == (1, 3, 64, 64) and blob.dtype == torch.float32 and blob.is_contiguous()
    assert info == LetterboxInfo(scale=0.32, pad_x=0, pad_y=16, image_width=200, image_height=100, input_size=64)
    assert (blob[0, :, :16] == 0.5).all() and (blob[0, :, 48:] == 0.5).all()
    assert (blob[0, 0, 16:48] == 1).all() and (blob[0, 1:, 16:48] == 0).all()  # RGB order


def test_unletterbox_inverts_letterbox_and_clips():
    info = LetterboxInfo(scale=0.32, pad_x=0, pad_y=16, image_width=200, image_height=100, input_size=64)
    boxes = torch.tensor([[0.0, 16.0, 64.0, 48.0], [-8.0, 0.0, 80.0, 64.0], [16.0, 24.0, 32.0, 40.0]])
    expected = torch.tensor([[0.0, 0.0, 200.0, 100.0], [0.0, 0.0, 200.0, 100.0], [50.0, 25.0, 100.0, 75.0]])
    torch.testing.assert_close(unletterbox_boxes(boxes, info), expected)


def yolo_rows(*rows):
    """(1, R, 5+3) decoded yolo output from (cx, cy, w, h, objectness, p0, p1, p2) rows."""
    return torch.tensor(rows, dtype=torch.float32)[None]


def test_postprocess_scores_nms_per_class_and_sorts():
    info = LetterboxInfo(scale=0.5, pad_x=0, pad_y=0, image_width=128, image_height=128, input_size=64)
    outputs = [
        yolo_rows(
            (32, 32, 20, 20, 0.9, 0.9, 0.5, 0.1),  # two classes over the threshold: 0.81 and 0.45
            (33, 32, 20, 20, 0.8, 0.9, 0.0, 0.0),  # same object, class 0, 0.72: suppressed by NMS
        ),
        yolo_rows(
            (50, 10, 8, 8, 0.5, 0.0, 0.0, 0.4),    # 0.2: below the threshold
            (2, 32, 10, 10, 1.0, 0.0, 1.0, 0.0),   # sticks out on the left: clipped
        ),
    ]
    detections = postprocess(outputs, info, ["a", "b", "c"])
    assert detections == [
        Detection(1, "b", 1.0, 0.0, 54.0, 14.0, 74.0),
        Detection(0, "a", pytest.approx(0.81), 44.0, 44.0, 84.0, 84.0),
        Detection(1, "b", pytest.approx(0.45), 44.0, 44.0, 84.0, 84.0),
    ]


def test_postprocess_edge_cases():
    info = LetterboxInfo(scale=1.0, pad_x=0, pad_y=0, image_width=64, image_height=64, input_size=64)
    assert postprocess([yolo_rows((32, 32, 20, 20, 0.0, 1.0, 1.0, 1.0))], info, ["a", "b", "c"]) == []
    with pytest.raises(ValueError, match="3 classes but 2 names"):
        postprocess([yolo_rows((32, 32, 20, 20, 1.0, 1.0, 1.0, 1.0))], info, ["a", "b"])


def postprocess_by_definition(outputs, info, names, threshold):
    """The rules spelled out the slow way: every (row, class) pair scored, NMS class by class
    (torchvision's plain nms), kept pairs sorted by score, ties by (row, class)."""
    rows = torch.cat([out[0] for out in outputs]).float()
    scores = rows[:, 4:5] * rows[:, 5:]
    boxes = box_convert(rows[:, :4], "cxcywh", "xyxy")
    kept = []
    for class_id in range(scores.shape[1]):
        candidates = torch.nonzero(scores[:, class_id] > threshold).flatten()
        for index in candidates[nms(boxes[candidates], scores[candidates, class_id], 0.45)].tolist():
            kept.append((-scores[index, class_id].item(), index, class_id))
    found = []
    for _, index, class_id in sorted(kept):
        box = unletterbox_boxes(boxes[index:index + 1], info)[0].tolist()
        found.append(Detection(class_id, names[class_id], scores[index, class_id].item(), *box))
    return found


@pytest.mark.parametrize("threshold", [0.25, 0.05])
def test_postprocess_keeps_what_scoring_every_pair_keeps(tiny, messi_blob, threshold):
    """Only rows whose objectness is above the threshold are scored: the same detections as
    scoring all 80 classes of every row (real outputs of messi5.jpg, many candidates at 0.05)."""
    info = LetterboxInfo(scale=416 / 1000, pad_x=0, pad_y=79, image_width=1000, image_height=600, input_size=416)
    names = [str(i) for i in range(80)]
    with torch.inference_mode():
        outputs = tiny(messi_blob)
    got = postprocess(outputs, info, names, threshold)
    want = postprocess_by_definition(outputs, info, names, threshold)
    assert len(want) >= (4 if threshold == 0.25 else 20)
    assert [(d.class_id, d.score) for d in got] == [(d.class_id, d.score) for d in want]
    for g, w in zip(got, want):
        assert (g.x1, g.y1, g.x2, g.y2) == pytest.approx((w.x1, w.y1, w.x2, w.y2), abs=1e-3)


def test_postprocess_batch_gives_each_image_what_it_gets_alone():
    """Random outputs (objectness spread around the threshold), five images with their own
    letterboxes, one with no candidate: per image the batch's detections are the lone image's."""
    generator = torch.Generator().manual_seed(3)
    batch, names = 5, ["a", "b", "c"]
    outputs = []
    for rows in (12, 48):
        centres = torch.rand(batch, rows, 2, generator=generator) * 64
        sizes = 4 + torch.rand(batch, rows, 2, generator=generator) * 30
        probabilities = torch.rand(batch, rows, 4, generator=generator)
        outputs.append(torch.cat([centres, sizes, probabilities], dim=2))
    outputs[0][3, :, 4] = outputs[1][3, :, 4] = 0.1  # image 3: no row above the threshold
    infos = [LetterboxInfo(scale=64 / (100 + 10 * i), pad_x=i, pad_y=2 * i, image_width=100 + 10 * i,
                           image_height=80, input_size=64) for i in range(batch)]
    together = postprocess_batch(outputs, infos, names)
    alone = [postprocess([out[i:i + 1] for out in outputs], infos[i], names) for i in range(batch)]
    assert together == alone
    assert together[3] == [] and sum(map(len, together)) >= 20


def test_postprocess_orders_equal_scores_by_row_and_class():
    info = LetterboxInfo(scale=1.0, pad_x=0, pad_y=0, image_width=64, image_height=64, input_size=64)
    outputs = [yolo_rows(
        (10, 10, 4, 4, 0.25, 1.0, 1.0, 1.0),  # objectness at the threshold, class 1.0: 0.25 is not above it
        (40, 40, 4, 4, 1.0, 0.0, 0.5, 0.5),   # two classes at 0.5
        (20, 50, 4, 4, 1.0, 0.5, 0.0, 0.0),   # a later row at 0.5
        (50, 10, 4, 4, 0.9, 0.0, 0.0, 1.0),   # 0.9: first
    )]
    found = postprocess(outputs, info, ["a", "b", "c"])
    assert [(d.label, d.x1) for d in found] == [("c", 48.0), ("b", 38.0), ("c", 38.0), ("a", 18.0)]
    # Over 1,000 candidates torchvision's batched_nms takes its other path, whose order of equal
    # scores is not the rows': 1,200 separate boxes, all at 0.5, still come out row by row.
    info = LetterboxInfo(scale=1.0, pad_x=0, pad_y=0, image_width=640, image_height=640, input_size=640)
    index = torch.arange(1200)
    rows = torch.zeros(1, 1200, 8)
    rows[0, :, 0], rows[0, :, 1] = (index % 40) * 16 + 8, (index // 40) * 16 + 8
    rows[0, :, 2:6] = torch.tensor([4.0, 4.0, 1.0, 0.5])
    found = postprocess([rows], info, ["a", "b", "c"])
    assert [(d.x1, d.y1) for d in found] == [((i % 40) * 16 + 6.0, (i // 40) * 16 + 6.0) for i in range(1200)]


def test_postprocess_batch_refuses_letterboxes_that_do_not_fit_the_batch():
    info = LetterboxInfo(scale=1.0, pad_x=0, pad_y=0, image_width=64, image_height=64, input_size=64)
    outputs = [torch.cat([yolo_rows((32, 32, 20, 20, 1.0, 1.0, 1.0, 1.0))] * 2)]
    with pytest.raises(ValueError, match="1 letterboxes for outputs of batch sizes \\[2\\]"):
        postprocess_batch(outputs, [info], ["a", "b", "c"])
