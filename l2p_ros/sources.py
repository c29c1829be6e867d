"""Frame sources for the camera node, without ROS: V4L2 devices, video files, image folders, rosbag2 bags.

``open_source(source)`` returns a ``FrameSource``; iterating it yields ``Frame(stamp_s, frame_id,
image_bgr)`` paced by ``rate_hz`` (or by the recorded timing with ``realtime``), looped and limited
as asked. ``image_bgr`` is always uint8 BGR of shape (H, W, 3).

What ``stamp_s`` (seconds since the epoch) means depends on the source:
- V4L2 device: wall time when the frame was read (the capture time).
- video file: wall time when the pass started plus the frame's position in the video (index / fps),
  so a bag made from a video keeps the video's timing.
- image folder: wall time when the image was read.
- bag: the recorded ``header.stamp`` (the bag's log time when the header stamp is zero).
``FrameSource.live`` tells the first case apart: its stamps are capture times on this machine.

A bag message that does not decode (corrupt CDR, a buffer that does not match its header, a
CompressedImage that is not an image) is skipped and counted in ``FrameSource.skipped``; the same
holds for an unreadable file in an image folder. Problems the user must fix (a missing path, no or
an ambiguous image topic, an unsupported encoding) raise ``SourceError`` when the source is opened.
"""
from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
BAG_EXTENSIONS = (".mcap", ".db3")
IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
# Bytes per pixel of the raw encodings the decoder accepts, and their conversion to BGR.
ENCODINGS = {"bgr8": (3, None), "rgb8": (3, cv2.COLOR_RGB2BGR), "mono8": (1, cv2.COLOR_GRAY2BGR),
             "bgra8": (4, cv2.COLOR_BGRA2BGR), "rgba8": (4, cv2.COLOR_RGBA2BGR)}


class SourceError(ValueError):
    """A source that cannot be used as asked; ``parameter`` names the argument to fix.

    The names match the camera node's parameters (``source``, ``image_topic``, ``rate_hz``, ...),
    so the node can report which parameter is wrong.
    """

    def __init__(self, parameter: str, message: str):
        super().__init__(message)
        self.parameter = parameter


class Frame(NamedTuple):
    stamp_s: float  # seconds since the epoch; meaning per source in the module docstring
    frame_id: str
    image_bgr: np.ndarray  # (H, W, 3) uint8 BGR


def decode_image_buffer(data, height: int, width: int, step: int, encoding: str) -> np.ndarray:
    """A raw sensor_msgs/Image buffer -> BGR uint8 (height, width, 3).

    Raises SourceError (parameter ``image_topic``) for an unsupported encoding and ValueError when
    the buffer does not match the header.
    """
    if encoding not in ENCODINGS:
        raise SourceError("image_topic", f"unsupported image encoding {encoding!r}; supported: {sorted(ENCODINGS)}")
    channels, conversion = ENCODINGS[encoding]
    buffer = np.frombuffer(data, dtype=np.uint8)
    row_bytes = width * channels
    if height == 0 or width == 0 or step < row_bytes or buffer.size < step * height:
        raise ValueError(f"image buffer of {buffer.size} B does not match {width}x{height} {encoding} with step {step}")
    rows = buffer[: step * height].reshape(height, step)[:, :row_bytes].reshape(height, width, channels)
    return np.ascontiguousarray(rows) if conversion is None else cv2.cvtColor(rows, conversion)


def decode_compressed(data) -> np.ndarray:
    """CompressedImage bytes (JPEG, PNG, ...) -> BGR uint8 (H, W, 3); ValueError if they do not decode."""
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{len(data)} B of compressed image data do not decode")
    return image


def image_msg_frame(msg, compressed: bool, frame_id: str, unstamped_s: float) -> Frame:
    """A sensor_msgs Image or CompressedImage (rosbags' or rclpy's: the same fields) as a Frame: its
    header's stamp (``unstamped_s`` where it is zero) and frame id (``frame_id`` where empty).
    ValueError when it does not decode."""
    if compressed:
        image = decode_compressed(msg.data)
    else:
        image = decode_image_buffer(msg.data, msg.height, msg.width, msg.step, msg.encoding)
    stamp = msg.header.stamp
    stamp_s = stamp.sec + stamp.nanosec * 1e-9 if (stamp.sec or stamp.nanosec) else unstamped_s
    return Frame(stamp_s, msg.header.frame_id or frame_id, image)


class _VideoReader:
    """A V4L2 device or a video file through cv2.VideoCapture; one pass = one play of the video."""

    def __init__(self, target: str | int, frame_id: str, live: bool):
        self.target, self.frame_id, self.live = target, frame_id, live
        self.skipped = 0
        self._capture = self._open()  # opened now so a bad source fails at open time
        size = f"{int(self._capture.get(cv2.CAP_PROP_FRAME_WIDTH))}x{int(self._capture.get(cv2.CAP_PROP_FRAME_HEIGHT))}"
        self.fps = self._capture.get(cv2.CAP_PROP_FPS)
        self.description = (f"V4L2 device {target} ({size})" if live else
                            f"video file {target} ({size}, {self.fps:g} fps, "
                            f"{int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT))} frames)")

    def _open(self) -> cv2.VideoCapture:
        if self.live:
            capture = cv2.VideoCapture(self.target, cv2.CAP_V4L2)
            # Keep the driver from queueing frames: a paced reader wants the newest frame, not a stale one.
            capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        else:
            capture = cv2.VideoCapture(str(self.target))
        if not capture.isOpened():
            kind = "video device" if self.live else "video file"
            raise SourceError("source", f"cannot open {kind} {self.target}")
        return capture

    def read_pass(self) -> Iterator[Frame]:
        capture, self._capture = self._capture or self._open(), None
        start_s = time.time()
        try:
            index = 0
            while True:
                ok, image = capture.read()
                if not ok:
                    return
                if self.live or self.fps <= 0:
                    stamp_s = time.time()
                else:
                    stamp_s = start_s + index / self.fps
                index += 1
                yield Frame(stamp_s, self.frame_id, image)
        finally:
            capture.release()


def read_video(path: str | Path, indices: Iterable[int] | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """``(index, BGR frame)`` of a video file in order: every frame, or only ``indices``.

    For measuring and tests, which want given frames of a clip rather than a paced source; stops at
    the end of the file (a missing index is simply not yielded). SourceError if it cannot be opened.
    """
    wanted = None if indices is None else set(int(i) for i in indices)
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise SourceError("source", f"cannot open video file {path}")
    try:
        index = 0
        while wanted is None or wanted:
            ok, frame = capture.read()
            if not ok:
                return
            if wanted is None or index in wanted:
                if wanted is not None:
                    wanted.discard(index)
                yield index, frame
            index += 1
    finally:
        capture.release()


def video_frame_count(path: str | Path) -> int:
    """Frames a video file's container declares (without decoding them)."""
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise SourceError("source", f"cannot open video file {path}")
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    capture.release()
    return count


class _FolderReader:
    """Images of a folder in sorted file-name order."""

    live = False

    def __init__(self, folder: Path, frame_id: str):
        self.frame_id = frame_id
        self.skipped = 0
        self.paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
        if not self.paths:
            raise SourceError("source", f"image folder {folder} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
        self.description = f"image folder {folder} ({len(self.paths)} images)"

    def read_pass(self) -> Iterator[Frame]:
        for path in self.paths:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                self.skipped += 1
                continue
            yield Frame(time.time(), self.frame_id, image)


def _normalize_topic(topic: str) -> str:
    return "/" + topic.lstrip("/")


def ros2_store():
    """The rosbags type store of the ROS 2 distribution we read and write (older rosbags lack
    Kilted; the standard types used here are the same in Jazzy)."""
    from rosbags.typesys import Stores

    return getattr(Stores, "ROS2_KILTED", Stores.ROS2_JAZZY)


@lru_cache(maxsize=1)
def ros_typestore():
    """The standard ROS 2 types (std_msgs, sensor_msgs, ...); rosbags is imported on first use."""
    from rosbags.typesys import get_typestore

    return get_typestore(ros2_store())


class _BagReader:
    """sensor_msgs/Image or CompressedImage messages of one topic of a rosbag2 bag (mcap or sqlite3)."""

    live = False

    def __init__(self, path: Path, image_topic: str, frame_id: str):
        from rosbags.rosbag2 import Reader

        self.path, self.frame_id = path, frame_id
        self.skipped = 0
        self._typestore = ros_typestore()
        try:
            with Reader(path) as reader:
                all_topics = {c.topic: c.msgtype for c in reader.connections}
                image_topics = sorted({t for t, m in all_topics.items() if m in (IMAGE_TYPE, COMPRESSED_TYPE)})
                self.topic = self._select(image_topics, all_topics, image_topic)
                connections = [c for c in reader.connections if c.topic == self.topic]
                self.msgtype = connections[0].msgtype
                count = sum(c.msgcount for c in connections)
                self._check_encoding(reader, connections)
        except SourceError:
            raise
        except Exception as error:  # rosbags raises several types for an unreadable bag
            raise SourceError("source", f"cannot read bag {path}: {error}") from error
        self.description = f"bag {path} topic {self.topic} ({self.msgtype}, {count} messages)"

    @staticmethod
    def _select(image_topics: list[str], all_topics: dict[str, str], wanted: str) -> str:
        if wanted:
            if _normalize_topic(wanted) in image_topics:
                return _normalize_topic(wanted)
            raise SourceError("image_topic", f"image topic {wanted!r} is not in the bag; image topics found: "
                              f"{image_topics or 'none'}")
        if len(image_topics) == 1:
            return image_topics[0]
        if not image_topics:
            listing = ", ".join(f"{t} ({m})" for t, m in sorted(all_topics.items())) or "none"
            raise SourceError("source", f"the bag has no {IMAGE_TYPE} or {COMPRESSED_TYPE} topic; topics: {listing}")
        raise SourceError("image_topic", f"the bag has several image topics, choose one with image_topic: "
                          f"{image_topics}")

    def _check_encoding(self, reader, connections) -> None:
        """Fail at open time when the topic's images use an encoding we cannot decode."""
        if self.msgtype != IMAGE_TYPE:
            return
        for _, _, raw in reader.messages(connections=connections):
            try:
                encoding = self._typestore.deserialize_cdr(raw, IMAGE_TYPE).encoding
            except Exception:  # a corrupt first message says nothing about the topic: look further
                continue
            if encoding not in ENCODINGS:
                raise SourceError("image_topic", f"topic {self.topic} uses image encoding {encoding!r}; "
                                  f"supported: {sorted(ENCODINGS)}")
            return

    def _decode(self, raw: bytes, log_time_ns: int) -> Frame:
        msg = self._typestore.deserialize_cdr(raw, self.msgtype)
        return image_msg_frame(msg, self.msgtype != IMAGE_TYPE, self.frame_id, log_time_ns * 1e-9)

    def read_pass(self) -> Iterator[Frame]:
        from rosbags.rosbag2 import Reader

        with Reader(self.path) as reader:
            connections = [c for c in reader.connections if c.topic == self.topic]
            for _, log_time_ns, raw in reader.messages(connections=connections):
                try:
                    frame = self._decode(raw, log_time_ns)
                except Exception:  # any failure to decode untrusted bytes: skip this message, count it
                    self.skipped += 1
                    continue
                yield frame


class FrameSource:
    """An opened source. Iterate it for paced frames; ``close()`` (from any thread) ends the iteration."""

    def __init__(self, reader, *, rate_hz: float, realtime: bool, loop: bool, max_frames: int):
        self._reader = reader
        self._period_s = 1.0 / rate_hz if rate_hz > 0 else 0.0
        self._realtime, self._loop, self._max_frames = realtime, loop, max_frames
        self._stop = threading.Event()
        self.frames_yielded = 0

    @property
    def description(self) -> str:
        return self._reader.description

    @property
    def live(self) -> bool:
        """True for a V4L2 device: stamps are capture times on this machine."""
        return self._reader.live

    @property
    def skipped(self) -> int:
        """Bag messages or folder files that did not decode, over all passes."""
        return self._reader.skipped

    def close(self) -> None:
        self._stop.set()
        if hasattr(self._reader, "close"):  # a reader that blocks waiting for frames (a live topic)
            self._reader.close()

    def _wait_until(self, due_monotonic_s: float) -> bool:
        """Sleep until the deadline; False when closed meanwhile."""
        delay_s = due_monotonic_s - time.monotonic()
        return not self._stop.wait(delay_s) if delay_s > 0 else not self._stop.is_set()

    def __iter__(self) -> Iterator[Frame]:
        next_due_s = time.monotonic()
        while not self._stop.is_set():
            frames = self._reader.read_pass()
            anchor = None  # (monotonic s, recorded stamp s) of the pass's first frame, for realtime
            yielded_in_pass = 0
            try:
                while True:
                    # Fixed rate: wait before reading, so a live frame is fresh when it is yielded.
                    if self._period_s and not self._realtime and not self._wait_until(next_due_s):
                        return
                    frame = next(frames, None)
                    if frame is None:
                        break
                    if self._realtime:
                        anchor = anchor or (time.monotonic(), frame.stamp_s)
                        if not self._wait_until(anchor[0] + max(0.0, frame.stamp_s - anchor[1])):
                            return
                    # Absolute deadlines keep the rate from drifting; after a stall, restart from now
                    # instead of bursting to catch up.
                    next_due_s = max(next_due_s + self._period_s, time.monotonic())
                    yield frame
                    yielded_in_pass += 1
                    self.frames_yielded += 1
                    if self._max_frames and self.frames_yielded >= self._max_frames:
                        return
            finally:
                frames.close()
            if not self._loop or yielded_in_pass == 0:  # an empty pass would loop forever
                return


TOPIC_PREFIX = "topic:"  # a live ROS image topic (read by the camera node: l2p_ros.nodes.topic_source)


def topic_of(source: str) -> str | None:
    """``"topic:/front/image_raw"`` -> "/front/image_raw"; None for any other source."""
    return source[len(TOPIC_PREFIX):] if source.startswith(TOPIC_PREFIX) else None


def device_target(source: str) -> str | int | None:
    """``"0"`` -> 0, ``"/dev/video2"`` -> the path; None for anything that is not a V4L2 device."""
    if re.fullmatch(r"\d+", source):
        return int(source)
    return source if source.startswith("/dev/video") else None


def open_source(source: str | int | Path, *, image_topic: str = "", frame_id: str = "camera",
                rate_hz: float = 0.0, realtime: bool = False, loop: bool = False,
                max_frames: int = 0) -> FrameSource:
    """Open a frame source.

    source: a V4L2 device (``/dev/video0`` or an index such as ``0``), a video file, a folder of
        images, or a rosbag2 bag (its directory, or its ``.mcap``/``.db3`` file).
    image_topic: for bags, the Image/CompressedImage topic to read; may be empty when there is one.
    frame_id: frame id of the images (a bag's recorded frame id is kept when it is not empty).
    rate_hz: frames per second at most; 0 = as fast as they can be read.
    realtime: replay with the recorded timing (bags and video files); overrides rate_hz.
    loop: start over at the end (not for devices); max_frames: stop after this many (0 = no limit).
    Raises SourceError naming the argument to fix.
    """
    if not rate_hz >= 0:  # also rejects NaN
        raise SourceError("rate_hz", f"rate_hz must be >= 0 (0 = as fast as possible), got {rate_hz}")
    if max_frames < 0:
        raise SourceError("max_frames", f"max_frames must be >= 0 (0 = no limit), got {max_frames}")
    text = str(source)
    device = device_target(text) if isinstance(source, (str, int)) else None
    if device is not None:
        if loop or realtime:
            raise SourceError("loop" if loop else "realtime",
                              f"a live device {text} cannot loop or replay in real time")
        reader = _VideoReader(device, frame_id, live=True)
    else:
        path = Path(text).expanduser()
        if not path.exists():
            raise SourceError("source", f"source {path} does not exist (expected a V4L2 device, a video file, "
                              f"an image folder or a rosbag2 bag)")
        if (path.is_dir() and (path / "metadata.yaml").is_file()) or path.suffix in BAG_EXTENSIONS:
            reader = _BagReader(path, image_topic, frame_id)
        elif path.is_dir():
            if realtime:
                raise SourceError("realtime", f"image folder {path} has no recorded timing to replay in real time")
            reader = _FolderReader(path, frame_id)
        else:
            reader = _VideoReader(path, frame_id, live=False)
    return FrameSource(reader, rate_hz=rate_hz, realtime=realtime, loop=loop, max_frames=max_frames)


__all__ = ["Frame", "FrameSource", "SourceError", "open_source", "read_video", "video_frame_count",
           "decode_image_buffer", "decode_compressed", "ENCODINGS", "IMAGE_EXTENSIONS"]
