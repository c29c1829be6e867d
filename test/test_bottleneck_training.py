"""Distilling a bottleneck on unlabeled video, as a user runs it: ``l2p train-bottleneck`` on a
real clip (a few frames, a few epochs: the command's path, not its accuracy), then ``l2p detect
--codec bn:PATH`` with the file it wrote; and the distillation itself on real frames, judged on
frames it did not train on."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from l2p_ros import bottleneck_training as training
from l2p_ros import context_coder
from l2p_ros.assets import SAMPLE_IMAGES, AssetError, asset_path, training_photos_dir
from l2p_ros.bottleneck import encode_codes, load_bottleneck
from l2p_ros.codec_spec import CodecSpec
from l2p_ros.model.darknet import load_model
from l2p_ros.model.postprocess import load_class_names
from l2p_ros.sources import open_source, read_video
from l2p_ros.split import SplitDetector


def l2p(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "l2p_ros.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def test_train_bottleneck_writes_a_file_that_detect_uses(tmp_path):
    out = tmp_path / "street.safetensors"
    result = l2p("train-bottleneck", "--train", asset_path("vtest.avi"), "--max-frames", "10", "--epochs", "2",
                 "--tail-epochs", "1", "--channels", "4", "--rate-weight", "0.01", "--decoder-hidden", "24", "--out", out)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["out"] == str(out) and report["held_out"]["frames"] == 2  # the last 20% in time
    info = load_bottleneck(out).info
    assert (info.cut_after_layer, info.channels, info.bits) == (7, 4, 4)  # tiny's default cut and bits
    assert (info.hidden, info.decoder_width) == (64, 24)
    assert info.training["sources"] == [str(asset_path("vtest.avi"))] and info.training["held_out"] == report["held_out"]
    assert info.training["rate_weight"] == 0.01
    held_out = report["held_out"]  # its context model (bn:NAME+ctx), fitted on the 8 frames: same codes
    assert load_bottleneck(out).context is not None
    assert ("context_payload_bytes_mean" in held_out) == context_coder.available()  # measured where it can run
    if context_coder.available():
        assert held_out["context_matched_share"] == held_out["matched_share"] and held_out["context_payload_bytes_mean"] > 0
    assert "distil" in result.stderr or "crossing" in result.stderr  # the progress bar
    detect = l2p("detect", "--codec", f"bn:{out}", "--json", "--frames", "2", asset_path("vtest.avi"))
    assert detect.returncode == 0, detect.stderr
    records = [json.loads(line) for line in detect.stdout.splitlines()]
    assert [r["cut"] for r in records] == ["7", "7"] and all(r["codec"] == "bn:street" for r in records)
    assert all(0 < r["payload_bytes"] < 4 * 26 * 26 for r in records)


def test_train_bottleneck_reports_each_source_held_out_on_its_own(tmp_path):
    """A camera's video and a folder of photos: each keeps its later frames out, the record has the
    combined figure and each source's, so the varied source cannot hide what the camera loses."""
    vtest, photos = str(asset_path("vtest.avi")), str(training_photos_dir())
    out = tmp_path / "two.safetensors"
    result = l2p("train-bottleneck", "--train", vtest, photos, "--max-frames", "10", "--epochs", "1",
                 "--tail-epochs", "0", "--channels", "4", "--augment", "1", "--out", out)
    assert result.returncode == 0, result.stderr
    assert "16 training frames (+16 augmented views), 4 held out" in result.stderr
    held_out = load_bottleneck(out).info.training["held_out"]
    assert held_out["frames"] == 4 and list(held_out["per_source"]) == [vtest, photos]
    assert [report["frames"] for report in held_out["per_source"].values()] == [2, 2]
    assert all(0 <= report["matched_share"] <= 1 for report in held_out["per_source"].values())


def test_context_only_adds_a_context_model_to_a_file_without_one(tmp_path):
    """A bottleneck made before context models: ``--context-only`` fits one on the training frames
    and measures it held out; the network's weights are the file's own."""
    from l2p_ros.bottleneck import Bottleneck, BottleneckInfo

    model = load_model("yolov3-tiny")
    torch.manual_seed(0)
    info = BottleneckInfo("yolov3-tiny-416", model.weights_fingerprint, 7, (128, 26, 26), 8, 4, 16)
    old = Bottleneck(info).save(tmp_path / "old.safetensors")
    out = tmp_path / "with-context.safetensors"
    result = l2p("train-bottleneck", "--train", asset_path("vtest.avi"), "--max-frames", "10", "--context-only", old,
                 "--out", out)
    assert result.returncode == 0, result.stderr
    assert "8 training frames, 2 held out: fitting the context model" in result.stderr
    before, after = load_bottleneck(old), load_bottleneck(out)
    assert before.context is None and after.context is not None and after.context.channels == 8
    assert all(torch.equal(a, b) for a, b in zip(before.state_dict().values(), after.state_dict().values()))
    assert after.info.training["context"]["frames"] == 8
    held_out = json.loads(result.stdout)["held_out"]
    assert held_out == after.info.training["held_out"] and held_out["frames"] == 2
    assert held_out.get("context_matched_share", held_out["matched_share"]) == held_out["matched_share"]


@pytest.mark.parametrize("args, message", [
    (("--model", "yolov3", "--random-weights", "--cut", "61", "--channels", "8", "--bits", "4"), "carries [36, 61]"),
    (("--bits", "9"), "bits must be 1..8"),
    (("--rate-weight", "-0.1"), "--rate-weight"),
    (("--train", "/nowhere.avi"), "/nowhere.avi does not exist"),
])
def test_train_bottleneck_errors_name_the_problem(tmp_path, args, message):
    base = ["--train", asset_path("vtest.avi"), "--max-frames", "5", "--epochs", "1", "--tail-epochs", "0"]
    if "--train" in args:
        base = base[2:]
    result = l2p("train-bottleneck", *base, *args, "--out", tmp_path / "x.safetensors")
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


def test_a_distilled_bottleneck_keeps_most_detections_on_frames_it_never_saw():
    """A small, quick distillation (the shipped defaults train longer on more frames)."""
    torch.set_num_threads(2)
    model = load_model("yolov3-tiny")
    frames = training.read_frames([str(asset_path("vtest.avi"))], 60)
    train_frames, held_out = training.split_in_time(frames, 0.2)
    bottleneck, record = training.train(model, "yolov3-tiny-416", train_frames, cut=7, channels=16, bits=4,
                                        epochs=60, tail_epochs=2)
    curve = record["loss_curves"]["crossing"]
    assert curve[-1] < 0.3 * curve[0]
    detector = SplitDetector(model, load_class_names(), "yolov3-tiny-416")
    detector.bottlenecks["quick"] = bottleneck
    report = training.evaluate(detector, CodecSpec("bn", bottleneck="quick"), held_out,
                               sources=[("first half", 6), ("second half", 6)])
    assert report["reference_detections"] >= 50
    assert report["matched_share"] >= 0.6, report
    assert report["bytes_vs_image"] < 0.5, report
    # Each source's figures are its frames' own, from the same run: they add up to the whole.
    halves = list(report["per_source"].values())
    assert [half["frames"] for half in halves] == [6, 6] == [len(held_out) // 2] * 2
    assert sum(half["reference_detections"] for half in halves) == report["reference_detections"]
    matched = sum(half["matched_share"] * half["reference_detections"] for half in halves)
    assert matched == pytest.approx(report["matched_share"] * report["reference_detections"], abs=0.01)
    assert np.mean([half["payload_bytes_mean"] for half in halves]) == pytest.approx(report["payload_bytes_mean"],
                                                                                     abs=0.1)
    with pytest.raises(ValueError, match="sources count 5 frames, not 12"):
        training.evaluate(detector, CodecSpec("bn", bottleneck="quick"), held_out, sources=[("some", 5)])


def test_frames_are_spread_over_every_source_in_one_bounded_pass():
    """The budget is per source: a long recording is thinned evenly to it, a short one read whole."""
    vtest, megamind = str(asset_path("vtest.avi")), str(asset_path("Megamind.avi"))
    per_source = training.read_frames_per_source([vtest, megamind], 300)
    assert [len(frames) for frames in per_source] == [300, 270]  # 795 frames thinned; 270 whole
    assert {f.shape[:2] for f in per_source[0]} == {(576, 768)} and {f.shape[:2] for f in per_source[1]} == {(528, 720)}
    first, last = (frame for _, frame in read_video(vtest, [0, 794]))
    assert (per_source[0][0] == first).all() and (per_source[0][-1] == last).all()  # first to last
    frames = training.read_frames([vtest, megamind], 300)
    assert len(frames) == 570 and all(a is b or (a == b).all() for a, b in zip(frames, per_source[0] + per_source[1]))
    train_frames, held_out = training.split_in_time(frames, 0.2)
    assert (len(train_frames), len(held_out)) == (456, 114) and held_out[-1] is frames[-1]


def test_each_source_holds_out_its_own_later_frames():
    """Without --val every scene has later frames held out, not only the last source; a source
    too short to split (one photo) trains whole."""
    vtest = [np.full((4, 4, 3), i, np.uint8) for i in range(10)]
    megamind = [np.full((4, 4, 3), 100 + i, np.uint8) for i in range(5)]
    photo = [np.full((4, 4, 3), 200, np.uint8)]
    train_frames, held_out = training.split_each_in_time([vtest, megamind, photo], 0.2)
    assert [[int(f[0, 0, 0]) for f in frames] for frames in held_out] == [[8, 9], [104], []]
    assert [int(f[0, 0, 0]) for f in train_frames] == [*range(8), 100, 101, 102, 103, 200]
    with pytest.raises(ValueError, match="cannot be split"):
        training.split_each_in_time([photo, photo], 0.2)


def test_augmented_views_are_new_views_of_each_frame_and_repeatable():
    frames = [frame.image_bgr for frame in open_source(asset_path("vtest.avi"), max_frames=3)]
    views = training.augmented_views(frames, 2, seed=5)
    assert len(views) == 9 and all(v is f for v, f in zip(views, frames))  # the frames first, unchanged
    assert all(v.shape == frames[0].shape and v.dtype == np.uint8 for v in views)
    assert all(np.abs(v.astype(int) - frames[i // 2].astype(int)).mean() > 3 for i, v in enumerate(views[3:]))
    again = training.augmented_views(frames, 2, seed=5)
    assert all((a == b).all() for a, b in zip(views, again))
    other = training.augmented_views(frames, 2, seed=6)
    assert any((a != b).any() for a, b in zip(views[3:], other[3:]))
    assert training.augmented_views(frames, 0) == frames
    with pytest.raises(ValueError, match="views must be >= 0"):
        training.augmented_views(frames, -1)


def test_the_detection_loss_weighs_candidate_detections_most():
    """The same change in a class logit costs far more where the teacher's detection score is a
    candidate (above CANDIDATE_SCORE) than in an empty cell: the cells that decide which boxes
    are kept are the ones the student must get right."""
    model = load_model("yolov3-tiny")
    teacher = training.Teacher(model, 7)
    classes = 80
    output = torch.full((1, 3 * (5 + classes), 13, 13), -8.0)
    rows = output.view(1, 3, 5 + classes, 13, 13)
    rows[:, :, :4] = 0.0  # box terms
    rows[0, 0, 4, 6, 6] = 2.0   # objectness 0.88 at one cell ...
    rows[0, 0, 5, 6, 6] = 0.0   # ... class 0 at 0.5: a detection score of 0.44, a candidate
    weights = teacher.loss_weights(output)
    assert float(teacher.detection_loss(output, output, weights)) == 0.0
    at_candidate, at_empty = output.clone(), output.clone()
    at_candidate.view(1, 3, 5 + classes, 13, 13)[0, 0, 5, 6, 6] -= 1.0
    at_empty.view(1, 3, 5 + classes, 13, 13)[0, 0, 5, 2, 2] += 9.0  # an empty cell's class goes to 0.73
    candidate_loss = float(teacher.detection_loss(at_candidate, output, weights))
    empty_loss = float(teacher.detection_loss(at_empty, output, weights))
    assert candidate_loss > 20 * empty_loss > 0, (candidate_loss, empty_loss)


def test_the_code_rate_charges_each_code_its_channels_cost_in_bits():
    """On a level, a code costs -log2 of its channel's share of that level; between two levels,
    the two costs interpolated, so its gradient points to the cheaper level."""
    rate = training.CodeRate(channels=2, levels=3).eval()
    rate.histogram.copy_(torch.tensor([[0.5, 0.25, 0.125, 0.125], [0.25, 0.25, 0.25, 0.25]]))
    codes = torch.zeros(1, 2, 2, 2)
    codes[0, 0] = torch.tensor([[0.0, 1.0], [2.0, 3.0]])  # 1 + 2 + 3 + 3 bits
    codes[0, 1] = 2.0  # 4 codes of 2 bits
    assert float(rate(codes)) == pytest.approx(9 + 8)
    between = torch.tensor(0.25, requires_grad=True)  # channel 0, a quarter of the way to level 1
    bits = rate(torch.zeros(1, 2, 1, 1) + torch.stack([between, torch.tensor(0.0)]).view(1, 2, 1, 1))
    assert float(bits.detach()) == pytest.approx(0.75 * 1 + 0.25 * 2 + 2)
    bits.backward()
    assert float(between.grad) == pytest.approx(1.0)  # down, toward the cheaper level 0


@pytest.mark.parametrize("levels", [3, 15, 255])
def test_the_code_rate_is_its_definition_over_every_level(levels):
    """Bits and histogram as the definition spells them: each code's weight on every level is
    1 - its distance to it (at most two levels), however the code computes it."""
    torch.manual_seed(levels)
    rate = training.CodeRate(channels=3, levels=levels)
    histogram = rate.histogram.clone()
    codes = torch.sigmoid(2 * torch.randn(2, 3, 5, 5)) * levels
    codes[0, 0, 0, :3] = torch.tensor([0.0, float(levels), 1.0])  # the ends and a level exactly
    weights = torch.relu(1 - (codes.unsqueeze(-1) - torch.arange(levels + 1.0)).abs())
    expected_bits = (weights * -torch.log2(histogram)[None, :, None, None, :]).sum() / 2
    assert float(rate(codes)) == pytest.approx(float(expected_bits), rel=1e-5)
    seen = weights.sum(dim=(0, 2, 3)) / 25 / 2
    assert torch.allclose(rate.histogram, 0.9 * histogram + 0.1 * seen, atol=1e-7)


def test_the_code_rate_follows_the_codes_it_sees_in_training():
    """Its histogram is the codes' running one: codes that settle on one level become nearly
    free, the others on that channel expensive."""
    rate = training.CodeRate(channels=1, levels=15)
    before = float(rate(torch.full((4, 1, 8, 8), 5.0)))
    assert before == pytest.approx(64 * 4)  # 4 bits a code while nothing is known
    for _ in range(60):
        after = float(rate(torch.full((4, 1, 8, 8), 5.0)))
    assert after < 0.01 * before and rate.histogram[0, 5] > 0.99
    rate.eval()
    assert float(rate(torch.full((1, 1, 8, 8), 6.0))) > 64 * 10  # an unseen level: over 10 bits a code


def test_a_rate_weight_trades_code_bytes_for_fidelity():
    """Priced in training, the codes shrink on the wire (zstd, as sent) on frames not trained on."""
    torch.set_num_threads(2)
    model = load_model("yolov3-tiny")
    frames = training.read_frames([str(asset_path("vtest.avi"))], 20)
    train_frames, held_out = training.split_in_time(frames, 0.2)
    sent = {}
    for rate_weight in (0.0, 0.02):
        bottleneck, record = training.train(model, "yolov3-tiny-416", train_frames, cut=7, channels=16, bits=4,
                                            epochs=12, tail_epochs=0, rate_weight=rate_weight)
        assert record["rate_weight"] == rate_weight and len(record["code_kb_curves"]["crossing"]) == 12
        crossing, _ = training.Teacher(model, 7).targets(held_out)
        sent[rate_weight] = np.mean([len(encode_codes(7, bottleneck.encode(crossing[i:i + 1]))[0].data)
                                     for i in range(len(held_out))])
    assert sent[0.02] < 0.7 * sent[0.0], sent
    with pytest.raises(ValueError, match="rate_weight must be >= 0"):
        training.train(model, "yolov3-tiny-416", train_frames, cut=7, channels=4, bits=4, rate_weight=-1)


def test_no_epochs_at_all_gives_the_untrained_bottleneck_and_empty_curves():
    """``--epochs 0 --tail-epochs 0`` is accepted: no phase runs, nothing is judged collapsed."""
    model = load_model("yolov3-tiny")
    frames = training.read_frames([str(asset_path("vtest.avi"))], 4)
    bottleneck, record = training.train(model, "yolov3-tiny-416", frames, cut=7, channels=4, bits=4, epochs=0,
                                        tail_epochs=0, rate_weight=0.01)
    assert record["loss_curves"] == {} and record["code_kb_curves"] == {}
    assert bottleneck.info.channels == 4


def test_codes_priced_so_high_they_collapse_are_refused_with_the_way_out():
    """Priced far too high, every code settles on one level and carries nothing: training says so
    and what to change, rather than write a file that keeps no detection."""
    torch.set_num_threads(2)
    model = load_model("yolov3-tiny")
    frames = training.read_frames([str(asset_path("vtest.avi"))], 8)
    with pytest.raises(ValueError, match="collapsed onto a single level .* lower --rate-weight"):
        training.train(model, "yolov3-tiny-416", frames, cut=7, channels=8, bits=4, epochs=40, tail_epochs=0,
                       batch_size=1, rate_weight=50.0)


def test_the_training_photos_are_fetched_beside_the_media_without_the_held_out_ones(tmp_path):
    folder = training_photos_dir()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["package"].startswith("opencv-doc_") and len(manifest["files"]) >= 50
    assert not set(manifest["files"]) & set(SAMPLE_IMAGES)  # the evaluation's photos are never trained on
    assert all((folder / name).is_file() for name in manifest["files"])
    with pytest.raises(AssetError, match="run `l2p fetch-assets`"):
        training_photos_dir(tmp_path)
