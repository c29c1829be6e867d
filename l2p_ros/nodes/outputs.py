"""The detections in the messages other tools read, beside our own ``l2p/detections``:

- ``vision_msgs/Detection2DArray`` (what yolo_ros, Isaac ROS and most trackers publish and consume),
  where vision_msgs is installed: one Detection2D per box, the box centre and size in the camera
  image's pixels, one hypothesis whose ``class_id`` is the class name (e.g. ``person``) and score;
- a ``visualization_msgs/ImageMarker`` (LINE_LIST: four edges per box) that Foxglove and rviz draw
  over the camera image: same header (stamp and frame_id) as the frame, pixels of the camera image.

The edge node publishes both for every frame it publishes on ``l2p/detections``; an empty topic
parameter turns one off. The conversions take the message classes as arguments, so they are tested
without vision_msgs installed (it has no wheel here).
"""
from __future__ import annotations

from typing import Any

from l2p_ros.nodes.common import DETECTIONS_QOS, declare

OVERLAY_LINE_WIDTH_PX = 2.0
OVERLAY_LIFETIME_S = 0.5  # a marker disappears when no newer frame's replaces it (e.g. the camera stopped)


def fill_detection2d_array(msg, out, detection_type, hypothesis_type):
    """``out`` (a vision_msgs/Detection2DArray) filled from ``msg`` (an l2p DetectionArray)."""
    out.header = msg.header
    detections = []
    for d in msg.detections:
        detection = detection_type()
        detection.header = msg.header
        detection.bbox.center.position.x = float(d.center_x)
        detection.bbox.center.position.y = float(d.center_y)
        detection.bbox.size_x, detection.bbox.size_y = float(d.size_x), float(d.size_y)
        hypothesis = hypothesis_type()
        hypothesis.hypothesis.class_id = d.label or str(d.class_id)
        hypothesis.hypothesis.score = float(d.score)
        detection.results = [hypothesis]
        detections.append(detection)
    out.detections = detections
    return out


def fill_box_overlay(msg, marker, point_type, color):
    """``marker`` (a visualization_msgs/ImageMarker) drawing every box of ``msg`` as a LINE_LIST."""
    marker.header = msg.header
    marker.ns, marker.id = "l2p_detections", 0
    marker.type, marker.action = marker.LINE_LIST, marker.ADD
    marker.scale = OVERLAY_LINE_WIDTH_PX
    marker.outline_color = color
    marker.lifetime.sec, marker.lifetime.nanosec = 0, int(OVERLAY_LIFETIME_S * 1e9)
    points = []
    for d in msg.detections:
        x1, y1 = d.center_x - d.size_x / 2, d.center_y - d.size_y / 2
        x2, y2 = d.center_x + d.size_x / 2, d.center_y + d.size_y / 2
        corners = ((x1, y1), (x2, y1), (x2, y2), (x1, y2))
        for (ax, ay), (bx, by) in zip(corners, corners[1:] + corners[:1]):
            points += [point_type(x=float(ax), y=float(ay), z=0.0), point_type(x=float(bx), y=float(by), z=0.0)]
    marker.points = points
    return marker


class DetectionOutputs:
    """The optional publishers of one node: Detection2DArray and the overlay, each off when its topic
    parameter is empty; Detection2DArray off, said once, when vision_msgs is not installed."""

    def __init__(self, node):
        self._node = node
        vision_topic = declare(node, "detections_2d_topic", "l2p/detections_2d",
                               "vision_msgs/Detection2DArray of every frame ('' = off; needs vision_msgs)")
        overlay_topic = declare(node, "overlay_topic", "l2p/detections_overlay",
                                "visualization_msgs/ImageMarker boxes over the camera image ('' = off)")
        self._vision: tuple[Any, ...] | None = None
        if vision_topic:
            try:
                from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose
            except ImportError:
                node.get_logger().info(f"vision_msgs is not installed: {vision_topic} is not published")
            else:
                self._vision = (node.create_publisher(Detection2DArray, vision_topic, DETECTIONS_QOS),
                                Detection2DArray, Detection2D, ObjectHypothesisWithPose)
        self._overlay: tuple[Any, ...] | None = None
        if overlay_topic:
            from geometry_msgs.msg import Point
            from std_msgs.msg import ColorRGBA
            from visualization_msgs.msg import ImageMarker

            self._overlay = (node.create_publisher(ImageMarker, overlay_topic, DETECTIONS_QOS), ImageMarker, Point,
                             ColorRGBA(r=0.0, g=1.0, b=0.0, a=1.0))

    def publish(self, msg) -> None:
        """Publish ``msg`` (an l2p DetectionArray) on every output that is on."""
        if self._vision is not None:
            publisher, array_type, detection_type, hypothesis_type = self._vision
            publisher.publish(fill_detection2d_array(msg, array_type(), detection_type, hypothesis_type))
        if self._overlay is not None:
            publisher, marker_type, point_type, color = self._overlay
            publisher.publish(fill_box_overlay(msg, marker_type(), point_type, color))
