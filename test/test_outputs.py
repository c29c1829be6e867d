"""Detections as vision_msgs/Detection2DArray and as an ImageMarker overlay (l2p_ros.nodes.outputs)."""
from dataclasses import dataclass, field

import pytest
from geometry_msgs.msg import Point
from std_msgs.msg import ColorRGBA
from visualization_msgs.msg import ImageMarker

from l2p_msgs.msg import Detection, DetectionArray
from l2p_ros.nodes.outputs import OVERLAY_LIFETIME_S, fill_box_overlay, fill_detection2d_array


def _frame() -> DetectionArray:
    msg = DetectionArray(detections=[
        Detection(class_id=0, label="person", score=0.9, center_x=100.0, center_y=50.0, size_x=20.0, size_y=40.0),
        Detection(class_id=2, label="", score=0.4, center_x=10.0, center_y=10.0, size_x=4.0, size_y=2.0)])
    msg.header.stamp.sec, msg.header.frame_id = 7, "front_camera"
    return msg


# vision_msgs (4.x, ROS 2 Humble and later) has no wheel here: its structure, field for field.
@dataclass
class Point2D:
    x: float = 0.0
    y: float = 0.0


@dataclass
class Pose2D:
    position: Point2D = field(default_factory=Point2D)
    theta: float = 0.0


@dataclass
class BoundingBox2D:
    center: Pose2D = field(default_factory=Pose2D)
    size_x: float = 0.0
    size_y: float = 0.0


@dataclass
class ObjectHypothesis:
    class_id: str = ""
    score: float = 0.0


@dataclass
class ObjectHypothesisWithPose:
    hypothesis: ObjectHypothesis = field(default_factory=ObjectHypothesis)


@dataclass
class Detection2D:
    header: object = None
    results: list = field(default_factory=list)
    bbox: BoundingBox2D = field(default_factory=BoundingBox2D)
    id: str = ""


@dataclass
class Detection2DArray:
    header: object = None
    detections: list = field(default_factory=list)


def test_detections_become_a_detection2d_array_in_camera_pixels():
    msg = _frame()
    out = fill_detection2d_array(msg, Detection2DArray(), Detection2D, ObjectHypothesisWithPose)
    assert out.header is msg.header and len(out.detections) == 2
    person, unnamed = out.detections
    assert (person.bbox.center.position.x, person.bbox.center.position.y) == (100.0, 50.0)
    assert (person.bbox.size_x, person.bbox.size_y) == (20.0, 40.0)
    assert [(r.hypothesis.class_id, r.hypothesis.score) for r in person.results] == [("person", pytest.approx(0.9))]
    assert unnamed.results[0].hypothesis.class_id == "2"  # no label: the class index


def test_the_overlay_draws_four_edges_per_box_on_the_frames_header():
    msg = _frame()
    marker = fill_box_overlay(msg, ImageMarker(), Point, ColorRGBA(g=1.0, a=1.0))
    assert marker.header.frame_id == "front_camera" and marker.header.stamp.sec == 7
    assert (marker.type, marker.action) == (ImageMarker.LINE_LIST, ImageMarker.ADD)
    assert len(marker.points) == 2 * 4 * 2  # two boxes, four edges, two ends each
    first_box = {(p.x, p.y) for p in marker.points[:8]}
    assert first_box == {(90.0, 30.0), (110.0, 30.0), (110.0, 70.0), (90.0, 70.0)}
    assert marker.lifetime.nanosec == int(OVERLAY_LIFETIME_S * 1e9)
    assert not fill_box_overlay(DetectionArray(), ImageMarker(), Point, ColorRGBA()).points  # no boxes: cleared


def test_the_edge_publishes_detection2d_arrays_where_vision_msgs_is_installed():
    """The publisher itself needs vision_msgs, which has no wheel for this install: the conversion is
    tested above with stand-in classes; on a ROS 2 install with ros-<distro>-vision-msgs this
    checks the real message classes take what the conversion fills."""
    vision_msgs = pytest.importorskip("vision_msgs.msg", reason="vision_msgs is not installed (no PyPI wheel); "
                                      "the conversion is tested with stand-ins")
    msg = DetectionArray(detections=[Detection(class_id=0, label="person", score=0.9, center_x=10.0, center_y=20.0,
                                               size_x=4.0, size_y=6.0)])
    out = fill_detection2d_array(msg, vision_msgs.Detection2DArray(), vision_msgs.Detection2D,
                                 vision_msgs.ObjectHypothesisWithPose)
    [detection] = out.detections
    assert detection.results[0].hypothesis.class_id == "person" and detection.bbox.size_y == 6.0
