"""Distilling a bottleneck on unlabeled video, as a user runs it: ``l2p train-bottleneck`` on a
real clip (a few frames, a few epochs: the command's path, not its accuracy), then ``l2p detect
--codec bn:PATH`` with the file it wrote; and the distillation itself on real frames, judged on
frames it did not train on."""
import json
import subprocess
import sys

import pytest
import torch

from l2p_ros import bottleneck_training as training
from l2p_ros.assets import asset_path
from l2p_ros.bottleneck import load_bottleneck
from l2p_ros.codec_spec import CodecSpec
from l2p_ros.model.darknet import load_model
from l2p_ros.model.postprocess import load_class_names
from l2p_ros.split import SplitDetector


def l2p(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "l2p_ros.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def test_train_bottleneck_writes_a_file_that_detect_uses(tmp_path):
    out = tmp_path / "street.safetensors"
    result = l2p("train-bottleneck", "--train", asset_path("vtest.avi"), "--max-frames", "10", "--epochs", "2",
                 "--tail-epochs", "1", "--channels", "4", "--out", out)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["out"] == str(out) and report["held_out"]["frames"] == 2  # the last 20% in time
    info = load_bottleneck(out).info
    assert (info.cut_after_layer, info.channels, info.bits) == (7, 4, 4)  # tiny's default cut and bits
    assert info.training["sources"] == [str(asset_path("vtest.avi"))] and info.training["held_out"] == report["held_out"]
    assert "distil" in result.stderr or "crossing" in result.stderr  # the progress bar
    detect = l2p("detect", "--codec", f"bn:{out}", "--json", "--frames", "2", asset_path("vtest.avi"))
    assert detect.returncode == 0, detect.stderr
    records = [json.loads(line) for line in detect.stdout.splitlines()]
    assert [r["cut"] for r in records] == ["7", "7"] and all(r["codec"] == "bn:street" for r in records)
    assert all(0 < r["payload_bytes"] < 4 * 26 * 26 for r in records)


@pytest.mark.parametrize("args, message", [
    (("--model", "yolov3", "--random-weights", "--cut", "61", "--channels", "8", "--bits", "4"), "carries [36, 61]"),
    (("--bits", "9"), "bits must be 1..8"),
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
    report = training.evaluate(detector, CodecSpec("bn", bottleneck="quick"), held_out)
    assert report["reference_detections"] >= 50
    assert report["matched_share"] >= 0.6, report
    assert report["bytes_vs_image"] < 0.5, report


def test_frames_are_spread_over_every_source_in_one_bounded_pass():
    vtest, megamind = str(asset_path("vtest.avi")), str(asset_path("Megamind.avi"))
    frames = training.read_frames([vtest, megamind], 20)
    assert len(frames) == 20
    sizes = [frame.shape[:2] for frame in frames]
    assert sizes[0] == (576, 768) and sizes[-1] == (528, 720)  # both sources, in order
    assert 4 <= sum(size == (528, 720) for size in sizes) <= 10  # Megamind holds about a quarter of the frames
    train_frames, held_out = training.split_in_time(frames, 0.2)
    assert (len(train_frames), len(held_out)) == (16, 4) and held_out[-1] is frames[-1]
