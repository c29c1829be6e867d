"""rosbag2 bags (mcap or sqlite3) without a ROS install: recording our messages, reading them back,
and making image bags from any frame source.

Bags are written and read with ``rosbags`` (rosbag2 format 9, what Jazzy and Kilted read). Message
payloads are CDR exactly as ``rclpy.serialization.serialize_message`` produces them, so a node's
messages are recorded without conversion and read back with ``deserialize_message``. rclpy is
imported only by the two helpers that (de)serialize ROS message objects (``write_message``,
``deserialize``); everything else works without ROS.

The l2p_msgs types are registered from their ``.msg`` files, looked up where an install puts
them first (they match the compiled classes whose CDR is recorded), then in the source checkout.
"""
from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import get_typestore, get_types_from_msg
from rosbags.typesys.store import Typestore

from l2p_ros.sources import COMPRESSED_TYPE, ENCODINGS, IMAGE_TYPE, ros2_store, ros_typestore

L2P_PACKAGE = "l2p_msgs"
STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
# BGR -> each raw encoding, for image bags in another encoding (tests cover every decoder).
_FROM_BGR = {"rgb8": cv2.COLOR_BGR2RGB, "mono8": cv2.COLOR_BGR2GRAY, "bgra8": cv2.COLOR_BGR2BGRA,
             "rgba8": cv2.COLOR_BGR2RGBA}


class BagMessage(NamedTuple):
    topic: str
    msgtype: str  # e.g. "l2p_msgs/msg/DetectionArray"
    stamp_ns: int  # the bag's log time, ns since the epoch
    cdr_bytes: bytes


def l2p_msg_dirs() -> list[Path]:
    """Folders that may hold the l2p_msgs ``.msg`` files, in search order.

    Installed shares come first because they match the compiled message classes: under a real
    ROS 2 install each prefix of ``AMENT_PREFIX_PATH``, here the venv (``$VIRTUAL_ENV`` or this
    interpreter's prefix, where the cmake install puts ``share/l2p_msgs/msg``); last the
    repository's ``msg/msg`` next to the package.
    """
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    prefixes += [p for p in (os.environ.get("VIRTUAL_ENV"), sys.prefix) if p]
    folders = [Path(p) / "share" / L2P_PACKAGE / "msg" for p in prefixes]
    folders.append(Path(__file__).resolve().parent.parent / "msg" / "msg")
    return list(dict.fromkeys(folders))


@lru_cache(maxsize=1)
def l2p_typestore() -> Typestore:
    """The standard ROS 2 types plus every l2p_msgs type (nested ones resolve, e.g. Detection in DetectionArray)."""
    for folder in l2p_msg_dirs():
        files = sorted(folder.glob("*.msg"))
        if files:
            break
    else:
        raise FileNotFoundError(f"no {L2P_PACKAGE} .msg files in any of: {', '.join(map(str, l2p_msg_dirs()))}")
    types = {}
    for path in files:
        types.update(get_types_from_msg(path.read_text(), f"{L2P_PACKAGE}/msg/{path.stem}"))
    store = get_typestore(ros2_store())
    store.register(types)  # all at once, so types referring to each other resolve
    return store


def _typestore_for(msgtype: str) -> Typestore:
    """A typestore defining ``msgtype``; the l2p_msgs files are only needed for l2p types."""
    for store in (ros_typestore, l2p_typestore):
        if msgtype in store().fielddefs:
            return store()
    raise ValueError(f"unknown message type {msgtype!r}: neither a standard ROS 2 type nor an {L2P_PACKAGE} type")


def msgtype_of(msg) -> str:
    """``"pkg/msg/Name"`` of an rclpy message object (its class lives in ``pkg.msg._name``)."""
    package, namespace = type(msg).__module__.split(".")[:2]
    return f"{package}/{namespace}/{type(msg).__name__}"


def message_class(msgtype: str):
    """The rclpy message class of ``"pkg/msg/Name"``."""
    package, namespace, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{package}.{namespace}"), name)


def deserialize(msgtype: str, cdr_bytes: bytes):
    """CDR bytes from a bag -> the rclpy message object (imports rclpy)."""
    from rclpy.serialization import deserialize_message

    return deserialize_message(cdr_bytes, message_class(msgtype))


class BagRecorder:
    """Writes CDR messages to a new rosbag2 bag; one connection per topic, created on first write.

    ``path`` is the bag directory to create (it must not exist). Use as a context manager or
    call ``close()``; the bag is only complete once closed.
    """

    def __init__(self, path: str | Path, storage: str = "mcap"):
        if storage not in STORAGES:
            raise ValueError(f"storage {storage!r} is not one of {sorted(STORAGES)}")
        self.path = Path(path)
        if self.path.exists():
            raise FileExistsError(f"bag {self.path} already exists; choose a new path")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = Writer(self.path, version=9, storage_plugin=STORAGES[storage])
        self._writer.open()
        self._connections = {}
        self.messages_written = 0

    def write(self, topic: str, msgtype: str, cdr_bytes: bytes, stamp_ns: int) -> None:
        """Record one message: ``cdr_bytes`` as from ``serialize_message``, ``stamp_ns`` its log time (ns)."""
        connection = self._connections.get(topic)
        if connection is None:
            connection = self._connections[topic] = self._writer.add_connection(topic, msgtype,
                                                                                typestore=_typestore_for(msgtype))
        elif connection.msgtype != msgtype:
            raise ValueError(f"topic {topic} is recorded as {connection.msgtype}, not {msgtype}")
        self._writer.write(connection, int(stamp_ns), cdr_bytes)
        self.messages_written += 1

    def write_message(self, topic: str, msg, stamp_ns: int) -> None:
        """Record an rclpy message object (imports rclpy for serialization)."""
        from rclpy.serialization import serialize_message

        self.write(topic, msgtype_of(msg), serialize_message(msg), stamp_ns)

    def close(self) -> None:
        self._writer.close()

    def __enter__(self) -> BagRecorder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_bag(path: str | Path, topics: Iterable[str] | None = None) -> Iterator[BagMessage]:
    """Every message of a bag (directory or .mcap/.db3 file) in log-time order, optionally of some topics."""
    with Reader(Path(path)) as reader:
        wanted = set(topics) if topics is not None else None
        connections = [c for c in reader.connections if wanted is None or c.topic in wanted]
        for connection, stamp_ns, raw in reader.messages(connections=connections):
            yield BagMessage(connection.topic, connection.msgtype, stamp_ns, bytes(raw))


def _image_msg(store: Typestore, image_bgr: np.ndarray, header, encoding: str):
    channels = ENCODINGS[encoding][0]
    pixels = image_bgr if encoding == "bgr8" else cv2.cvtColor(image_bgr, _FROM_BGR[encoding])
    height, width = image_bgr.shape[:2]
    return store.types[IMAGE_TYPE](header=header, height=height, width=width, encoding=encoding, is_bigendian=0,
                                   step=width * channels, data=np.ascontiguousarray(pixels, np.uint8).reshape(-1))


def write_image_bag(path: str | Path, frames: Iterable, storage: str = "mcap", compressed: bool = False,
                    topic: str = "/camera/image_raw", encoding: str = "bgr8", jpeg_quality: int = 90) -> int:
    """Write frames as a new image bag; returns the number of messages written.

    frames: ``(stamp_s, frame_id, image_bgr)`` tuples (e.g. a ``sources.open_source(...)``), with
        image_bgr uint8 (H, W, 3); each stamp becomes header.stamp and the message's log time.
    compressed: sensor_msgs/CompressedImage (JPEG at ``jpeg_quality``) instead of sensor_msgs/Image.
    encoding: raw Image encoding, one of bgr8, rgb8, mono8, bgra8, rgba8 (ignored when compressed).
    """
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding {encoding!r} is not one of {sorted(ENCODINGS)}")
    store = ros_typestore()
    header_type, time_type = store.types["std_msgs/msg/Header"], store.types["builtin_interfaces/msg/Time"]
    msgtype = COMPRESSED_TYPE if compressed else IMAGE_TYPE
    count = 0
    with BagRecorder(path, storage) as recorder:
        for stamp_s, frame_id, image_bgr in frames:
            stamp_ns = int(round(stamp_s * 1e9))
            header = header_type(stamp=time_type(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000),
                                 frame_id=frame_id)
            if compressed:
                ok, jpeg = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
                if not ok:
                    raise ValueError(f"frame {count} does not encode as JPEG")
                msg = store.types[COMPRESSED_TYPE](header=header, format="jpeg", data=jpeg.reshape(-1))
            else:
                msg = _image_msg(store, image_bgr, header, encoding)
            recorder.write(topic, msgtype, bytes(store.serialize_cdr(msg, msgtype)), stamp_ns)
            count += 1
    return count


__all__ = ["BagMessage", "BagRecorder", "read_bag", "deserialize", "message_class", "msgtype_of",
           "write_image_bag", "l2p_typestore", "ros_typestore", "l2p_msg_dirs", "STORAGES"]
