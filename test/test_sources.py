"""Frame sources on real media: the sample video, real photos in a folder, pacing, looping, limits, errors."""
import shutil
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest

from l2p_ros.assets import SAMPLE_IMAGES, SAMPLE_VIDEO, asset_path
from l2p_ros.sources import ENCODINGS, SourceError, decode_image_buffer, open_source


@pytest.fixture(scope="module")
def video_frames():
    """The first 5 frames of the sample video, read straight with OpenCV."""
    capture = cv2.VideoCapture(str(asset_path(SAMPLE_VIDEO)))
    frames = [capture.read()[1] for _ in range(5)]
    capture.release()
    return frames


@pytest.fixture
def image_folder(tmp_path):
    """The three sample photos under names that sort in a known order, plus files that are not images."""
    for index, name in enumerate(SAMPLE_IMAGES):
        shutil.copy(asset_path(name), tmp_path / f"frame_{index:03d}{asset_path(name).suffix}")
    (tmp_path / "notes.txt").write_text("not an image")
    return tmp_path


def test_video_file_yields_its_frames_on_the_video_timeline(video_frames):
    source = open_source(asset_path(SAMPLE_VIDEO), max_frames=5, frame_id="front")
    frames = list(source)
    assert len(frames) == 5 and not source.live
    for frame, expected in zip(frames, video_frames):
        assert frame.frame_id == "front"
        assert frame.image_bgr.shape == (576, 768, 3) and frame.image_bgr.dtype == np.uint8
        assert np.array_equal(frame.image_bgr, expected)
    # vtest.avi is 10 fps: stamps follow the video's own timing, not the read speed.
    assert np.allclose(np.diff([f.stamp_s for f in frames]), 0.1)


def test_image_folder_in_sorted_order_skipping_unreadable_files(image_folder):
    (image_folder / "frame_001b.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    source = open_source(image_folder)
    frames = list(source)
    expected = [cv2.imread(str(asset_path(name))) for name in SAMPLE_IMAGES]
    assert len(frames) == 3 and source.skipped == 1
    for frame, image in zip(frames, expected):
        assert np.array_equal(frame.image_bgr, image)
    assert "4 images" in source.description  # the unreadable one is found, then skipped


def test_loop_with_max_frames_cycles_the_folder(image_folder):
    frames = list(open_source(image_folder, loop=True, max_frames=7))
    shapes = [f.image_bgr.shape for f in frames]
    assert len(frames) == 7
    assert shapes[:3] * 2 + shapes[:1] == shapes
    assert all(b.stamp_s >= a.stamp_s for a, b in zip(frames, frames[1:]))


def test_loop_reopens_a_video_file(tmp_path, video_frames):
    path = tmp_path / "short.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (768, 576))
    for frame in video_frames[:2]:
        writer.write(frame)
    writer.release()
    frames = list(open_source(path, loop=True, max_frames=5))
    assert len(frames) == 5
    assert np.array_equal(frames[0].image_bgr, frames[2].image_bgr)
    assert np.array_equal(frames[1].image_bgr, frames[3].image_bgr)


def test_rate_hz_paces_the_frames(image_folder):
    start = time.monotonic()
    frames = list(open_source(image_folder, rate_hz=20.0, loop=True, max_frames=10))
    # 10 frames at 20 Hz: the first leaves at once, the other 9 one period apart.
    assert len(frames) == 10 and time.monotonic() - start >= 0.4


def test_close_from_another_thread_ends_the_iteration(image_folder):
    source = open_source(image_folder, rate_hz=2.0, loop=True)
    threading.Timer(0.3, source.close).start()
    start = time.monotonic()
    frames = list(source)
    assert len(frames) == 1 and time.monotonic() - start < 1.0


@pytest.mark.parametrize("kwargs, parameter, words", [
    ({"source": "/nonexistent/clip.avi"}, "source", "/nonexistent/clip.avi"),
    ({"source": "/dev/video97"}, "source", "/dev/video97"),
    ({"rate_hz": -1.0}, "rate_hz", ">= 0"),
    ({"rate_hz": float("nan")}, "rate_hz", ">= 0"),
    ({"max_frames": -1}, "max_frames", ">= 0"),
])
def test_wrong_arguments_name_what_to_fix(kwargs, parameter, words):
    kwargs = {"source": asset_path(SAMPLE_VIDEO), **kwargs}
    with pytest.raises(SourceError, match=words) as error:
        open_source(kwargs.pop("source"), **kwargs)
    assert error.value.parameter == parameter


def test_folder_errors(tmp_path, image_folder):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SourceError, match="holds no images") as error:
        open_source(empty)
    assert error.value.parameter == "source"
    with pytest.raises(SourceError, match="real time") as error:
        open_source(image_folder, realtime=True)
    assert error.value.parameter == "realtime"


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_decode_image_buffer_every_encoding_with_row_padding(encoding):
    image = cv2.imread(str(asset_path("fruits.jpg")))[:37, :53]
    conversions = {"rgb8": cv2.COLOR_BGR2RGB, "mono8": cv2.COLOR_BGR2GRAY, "bgra8": cv2.COLOR_BGR2BGRA,
                   "rgba8": cv2.COLOR_BGR2RGBA}
    pixels = cv2.cvtColor(image, conversions[encoding]) if encoding in conversions else image
    pixels = pixels.reshape(37, -1)
    padded = np.zeros((37, pixels.shape[1] + 7), np.uint8)  # step > width * channels
    padded[:, : pixels.shape[1]] = pixels
    decoded = decode_image_buffer(padded.tobytes(), 37, 53, padded.shape[1], encoding)
    expected = cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR) \
        if encoding == "mono8" else image
    assert decoded.shape == (37, 53, 3) and np.array_equal(decoded, expected)


def test_decode_image_buffer_rejects_bad_input():
    with pytest.raises(SourceError, match="16UC1"):
        decode_image_buffer(b"\x00" * 8, 2, 2, 4, "16UC1")
    with pytest.raises(ValueError, match="does not match"):
        decode_image_buffer(b"\x00" * 11, 2, 2, 6, "bgr8")


def test_sources_and_bags_work_without_ros():
    code = ("import sys, l2p_ros.sources, l2p_ros.bag; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('rclpy', 'sensor_msgs', 'l2p_msgs')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "[]", result.stderr
