"""Frame complexity on real frames: ordered as a person would order them, cheap, and stateful for TI."""
import cv2
import numpy as np
import pytest

from l2p_ros.assets import SAMPLE_VIDEO, asset_path
from l2p_ros.complexity import ComplexityMeter, entropy_bits, thumbnail


@pytest.fixture(scope="module")
def frames():
    capture = cv2.VideoCapture(str(asset_path(SAMPLE_VIDEO)))
    frames = [capture.read()[1] for _ in range(3)]
    capture.release()
    return frames


def test_a_busy_street_is_more_complex_than_its_blurred_self_and_a_flat_frame(frames):
    street = frames[0]
    flat = np.full_like(street, 128)
    blurred = cv2.GaussianBlur(street, (0, 0), 8)
    scores = [ComplexityMeter().measure(image) for image in (flat, blurred, street)]
    assert scores[0].complexity < scores[1].complexity < scores[2].complexity
    assert scores[0].entropy_bits == 0.0 and scores[0].spatial_information == 0.0
    assert all(0.0 <= s.complexity <= 1.0 for s in scores)


def test_temporal_information_needs_a_previous_frame_and_sees_motion(frames):
    meter = ComplexityMeter()
    first = meter.measure(frames[0])
    same = meter.measure(frames[0])
    moved = meter.measure(frames[2])
    assert first.temporal_information == 0.0 and same.temporal_information == 0.0
    assert moved.temporal_information > 0.5
    meter.reset()
    assert meter.measure(frames[2]).temporal_information == 0.0


def test_thumbnail_averages_by_an_integer_factor(frames):
    grey = thumbnail(frames[0])
    assert grey.shape == (144, 192) and grey.dtype == np.uint8  # 768x576 / 4
    assert thumbnail(np.zeros((100, 50, 3), np.uint8)).shape == (100, 50)
    with pytest.raises(ValueError, match="BGR"):
        thumbnail(np.zeros((10, 10), np.uint8))


def test_entropy_of_two_equal_levels_is_one_bit():
    grey = np.zeros((4, 4), np.uint8)
    grey[:2] = 255
    assert entropy_bits(grey) == pytest.approx(1.0)
