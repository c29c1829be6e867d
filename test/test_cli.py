"""The `l2p` command as a user runs it: real files, real weights, JSON out, clear errors."""
import json
import subprocess
import sys

import pytest

from l2p_ros.assets import asset_path
from l2p_ros.measure.profile import load_profile


def l2p(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "l2p_ros.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def test_cuts_json_lists_every_cut_with_its_crossing():
    result = l2p("cuts", "--model", "yolov3", "--random-weights", "--json")
    assert result.returncode == 0, result.stderr
    cuts = json.loads(result.stdout)
    assert len(cuts) == 108  # image offload + 107 layers
    by_layer = {c["after_layer"]: c for c in cuts}
    assert by_layer[61]["crossing"] == [36, 61]
    assert by_layer[36]["fp32_bytes"] == 256 * 52 * 52 * 4
    assert by_layer[-1]["name"] == "cloud" and by_layer[106]["name"] == "edge"


def test_detect_split_equals_full_and_json_is_in_pixels(tmp_path):
    image = asset_path("messi5.jpg")
    full = l2p("detect", "--json", image)
    split = l2p("detect", "--json", "--split", "9", "--codec", "fp32", "--annotate-dir", tmp_path, image)
    assert full.returncode == 0 and split.returncode == 0, full.stderr + split.stderr
    full_record, split_record = json.loads(full.stdout), json.loads(split.stdout)
    assert split_record["cut"] == "9" and split_record["payload_bytes"] > 0
    assert full_record["detections"] == split_record["detections"]  # fp32 split is exact
    labels = {d["label"] for d in full_record["detections"]}
    assert "person" in labels and "sports ball" in labels
    for det in full_record["detections"]:
        x1, y1, x2, y2 = det["box"]
        assert 0 <= x1 < x2 <= 548 and 0 <= y1 < y2 <= 342  # messi5.jpg is 548x342
    assert (tmp_path / "messi5.jpg.png").is_file()


def test_profile_writes_a_loadable_profile(tmp_path):
    out = tmp_path / "tiny.yaml"
    result = l2p("profile", "--model", "yolov3-tiny", "--size", "320", "--repeats", "2", "--warmup", "1",
                 "--out", out)
    assert result.returncode == 0, result.stderr
    profile = load_profile(out)
    assert len(profile.layers) == 24 and len(profile.cuts) == 25
    assert profile.machine["device"] == "cpu" and profile.model["input_size"] == 320
    assert all(layer.latency_ms_median > 0 for layer in profile.layers if layer.type == "convolutional")
    cut7 = profile.cut(7)
    assert cut7.payload_bytes["fp32"] == 128 * 20 * 20 * 4
    assert cut7.payload_bytes["int8-channel+zstd"] < cut7.payload_bytes["fp32"] / 3


@pytest.mark.parametrize("args, message", [
    (("detect", "x.jpg"), "input not found: x.jpg"),
    (("detect", "--split", "99", "IMAGE"), "must be in -1..23"),
    (("detect", "--codec", "int9", "IMAGE"), "int9"),
    (("detect", "--model", "yolov3", "IMAGE"), "--random-weights"),
    (("detect", "--size", "300", "IMAGE"), "multiple of 32"),
    (("profile", "--weights", "/nowhere.weights", "--out", "x.yaml"), "/nowhere.weights"),
    (("run", "--device", "tpu"), "device='tpu' is not a device"),
    (("run", "--precision", "fp16"), "precision='fp16' needs a CUDA device"),
    (("run", "--summary-json", "/proc/x/s.json"), "cannot create the folder for /proc/x/s.json"),
    (("run", "--frames", "-5"), "--frames: must be >= 0"),
    (("run", "--rate-hz", "-1"), "--rate-hz: must be >= 0"),
    (("make-bag", "IMAGE", "/tmp"), "/tmp already exists; choose a new path"),
    (("evaluate", "--out", "/proc/nope"), "cannot create the folder for /proc/nope"),
    (("detect", "--frames", "-1", "IMAGE"), "--frames: must be >= 1"),
    (("make-bag", "IMAGE", "NEW", "--frames", "-2"), "--frames: must be >= 0"),
    (("demo", "--frames", "0"), "--frames: must be >= 1"),
    (("demo", "--bottlenecks", "sample-scenes"), "--bottlenecks needs --shaped-link"),
    (("profile", "--out", "/proc/nope/p.yaml"), "cannot create the folder for /proc/nope/p.yaml"),
    (("run", "--record", "/tmp"), "/tmp already exists; choose a new path"),
    (("evaluate", "--image-codec", "jpeg-q70"), "'jpeg-q70' is not an image codec the simulator measures"),
])
def test_errors_name_the_problem(args, message, tmp_path):
    args = [str(asset_path("messi5.jpg")) if a == "IMAGE" else a for a in args]
    args = [str(tmp_path / "new" / "bag") if a == "NEW" else a for a in args]
    result = l2p(*args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("name, message", [("notes.jpg", "as an image"), ("notes.avi", "as a video")])
def test_detect_on_a_file_that_is_not_what_it_says_fails(tmp_path, name, message):
    path = tmp_path / name
    path.write_text("not a picture\n")
    result = l2p("detect", path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr and str(path) in result.stderr
    assert "Traceback" not in result.stderr


def test_a_refused_command_leaves_nothing_behind(tmp_path):
    """Output folders are checked by creating them and removed again: a run refused after that check
    (here for its policy) leaves no empty folder where its summary and bag would have gone."""
    summary, bag = tmp_path / "a" / "b" / "s.json", tmp_path / "c" / "bag"
    result = l2p("run", "--summary-json", summary, "--record", bag, "--policy", "nonsense")
    assert result.returncode == 2 and "--policy 'nonsense'" in result.stderr, result.stderr
    assert list(tmp_path.iterdir()) == []
