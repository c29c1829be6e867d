"""A live ROS image topic as a camera source: frames from another driver (usb_cam, a GMSL camera
driver, a robot's own camera node) enter the pipeline through the camera node, raw or compressed.

``source:=topic:/front/image_raw`` reads sensor_msgs/Image; a topic ending in ``/compressed`` (the
image_transport convention) reads sensor_msgs/CompressedImage (JPEG or PNG). The frames keep the
driver's header stamp and frame_id (a live source: its stamps are capture times), and the latest
frame wins: one that a newer frame replaced before the camera node took it is counted in
``replaced``. A message that does not decode is skipped and counted, like a bag's.
"""
from __future__ import annotations

import threading
import time
from typing import Iterator

from sensor_msgs.msg import CompressedImage, Image

from l2p_ros.nodes.common import IMAGE_SUB_QOS
from l2p_ros.sources import Frame, image_msg_frame

_POLL_S = 0.1  # how often a waiting read looks at whether it was closed


class TopicReader:
    """A reader for ``sources.FrameSource``: one pass that lasts until :meth:`close`."""

    live = True

    def __init__(self, node, topic: str, frame_id: str):
        if not topic:
            raise ValueError("topic: needs a topic name, e.g. topic:/front/image_raw")
        self.compressed = topic.rstrip("/").endswith("/compressed")
        self.frame_id = frame_id
        self.skipped = 0  # messages that did not decode
        self.replaced = 0  # frames a newer one replaced before they were read
        self._latest = None
        self._closed = False
        self._cond = threading.Condition()
        msg_type = CompressedImage if self.compressed else Image
        self.subscription = node.create_subscription(msg_type, topic, self._on_message, IMAGE_SUB_QOS)
        self.description = f"topic {self.subscription.topic_name} ({'sensor_msgs/CompressedImage' if self.compressed else 'sensor_msgs/Image'})"

    def _on_message(self, msg) -> None:
        with self._cond:
            if self._latest is not None:
                self.replaced += 1
            self._latest = msg
            self._cond.notify()

    def _decode(self, msg) -> Frame:
        return image_msg_frame(msg, self.compressed, self.frame_id, time.time())

    def read_pass(self) -> Iterator[Frame]:
        while True:
            with self._cond:
                while self._latest is None and not self._closed:
                    self._cond.wait(_POLL_S)
                if self._closed:
                    return
                msg, self._latest = self._latest, None
            try:
                yield self._decode(msg)
            except ValueError:  # untrusted bytes that are no image: skip and count
                self.skipped += 1

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
