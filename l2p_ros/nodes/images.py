"""sensor_msgs/Image to and from BGR arrays (cv_bridge is not available as a wheel; buffers are
decoded by ``l2p_ros.sources``, which checks every encoding and size)."""
from __future__ import annotations

import numpy as np
from sensor_msgs.msg import Image

from l2p_ros.nodes.common import to_time_msg
from l2p_ros.sources import decode_image_buffer


def image_to_msg(image_bgr: np.ndarray, stamp_s: float, frame_id: str) -> Image:
    """BGR uint8 (H, W, 3) -> sensor_msgs/Image bgr8."""
    msg = Image()
    msg.header.stamp = to_time_msg(stamp_s)
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(image_bgr.shape[0]), int(image_bgr.shape[1])
    msg.encoding = "bgr8"
    msg.is_bigendian = 0
    msg.step = msg.width * 3
    msg.data = np.ascontiguousarray(image_bgr, dtype=np.uint8).tobytes()
    return msg


def msg_to_image(msg: Image) -> np.ndarray:
    """sensor_msgs/Image (bgr8, rgb8, mono8, bgra8, rgba8) -> BGR uint8 (H, W, 3).

    Raises ValueError for unsupported encodings or a buffer that does not match the header.
    """
    return decode_image_buffer(bytes(msg.data), msg.height, msg.width, msg.step, msg.encoding)
