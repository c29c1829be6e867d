"""camera_node: frames of a V4L2 device, a video file, an image folder, a rosbag2 bag or another
driver's live image topic (``topic:/front/image_raw``, raw or ``.../compressed``), published as
sensor_msgs/Image (bgr8) on ``output_topic`` with sensor-data QoS (best effort, depth 1).

Stamps and frame identity. ``header.stamp`` is the frame's time for the user (latency is not
measured from it: the edge takes its own ingest stamp when a frame arrives, so any stamp works):
- a live device: the capture (read) time, on the system clock;
- a replay (video file, image folder, bag): the publish time on the node's clock (ROS time: sim time
  under ``use_sim_time``). The source's own stamp (a bag's recorded header stamp) is reported as
  ``last_source_stamp_s`` in the diagnostics, and ``use_recorded_stamps:=true`` publishes it instead
  (to line frames up with other recorded topics; it cannot be combined with ``loop``).
Stamps strictly increase (nudged by 1 ns if the clock repeats), so a stamp identifies one frame:
sensor_msgs/Image has no sequence number, and downstream nodes key frames by ``header.stamp``, the
ROS convention. ``header.frame_id`` is the ``frame_id`` parameter (a bag's recorded frame id when set).

Frames published before a subscriber has matched are lost (best effort, volatile), so
``min_subscribers`` holds the first frame until that many subscribers are matched on ``output_topic``,
then for ``DISCOVERY_SETTLE_S``: matching is per side, and a reader that has not yet matched this
writer drops its data even though the writer already counts the reader (seen losing the first
frame of a replay on a loaded machine).

Frames are read and paced by ``l2p_ros.sources`` in a worker thread; the executor thread only runs
the diagnostics timer and the end-of-source callback. When a finite source ends (loop false) the
node logs a summary and shuts its context down, so the process exits 0.
"""
from __future__ import annotations

import threading
import time
from collections import deque

import rclpy
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image

from l2p_ros.assets import SAMPLE_VIDEO, AssetError, asset_path
from l2p_ros.nodes.common import IMAGE_SUB_QOS, Diagnostics, bounded, declare, image_qos, parameter_error, run_node
from l2p_ros.nodes.images import image_to_msg
from l2p_ros.nodes.topic_source import TopicReader
from l2p_ros.sources import FrameSource, SourceError, open_source, topic_of
from l2p_ros.stats import ERROR, camera_status

# After the last frame: best-effort delivery has no acknowledgement to wait for, so give the last
# message time to reach the subscribers before the process tears its transport down.
LINGER_S = 0.5
# After the writer has matched min_subscribers readers: time for the readers to match the writer.
# Neither rclpy nor the RMW reports the readers' side to the writer, hence a wait and not a check.
DISCOVERY_SETTLE_S = 1.0


class CameraNode(Node):
    def __init__(self):
        super().__init__("camera_node")
        # Set first: the context's cleanup calls destroy_node even on a node whose __init__ failed.
        self._stopping = threading.Event()
        self._source = self._worker = None
        source = declare(self, "source", "", "V4L2 device (/dev/video0 or an index), video file, image folder, "
                         "topic:/NAME (a live Image topic, or CompressedImage if NAME ends in /compressed) "
                         "or rosbag2 bag (directory, .mcap or .db3); empty = the sample video")
        image_topic = declare(self, "image_topic", "", "bag only: the Image/CompressedImage topic to read "
                              "(may be empty when the bag has one)")
        output_topic = declare(self, "output_topic", "camera/image_raw", "topic the frames are published on")
        frame_id = declare(self, "frame_id", "camera", "header.frame_id of the frames (a bag's own is kept)")
        rate_hz = declare(self, "rate_hz", 10.0, "frames per second at most; 0 = as fast as possible")
        loop = declare(self, "loop", False, "start the source over at its end (not for devices)")
        max_frames = declare(self, "max_frames", 0, "stop after this many frames; 0 = no limit")
        realtime = declare(self, "realtime", False, "bags and videos: replay with the recorded timing "
                           "(overrides rate_hz)")
        self._use_recorded = declare(self, "use_recorded_stamps", False, "replay: publish the source's "
                                     "recorded stamps instead of the publish time")
        reliability = declare(self, "qos_reliability", "best_effort",
                              "best_effort (sensor data: a late frame is worth less than the next) or reliable "
                              "(for subscribers that keep image_transport's reliable default)")
        depth = declare(self, "qos_depth", 1, "frames the publisher keeps for slow readers")
        camera_info_topic = declare(self, "camera_info_topic", "",
                                    "sensor_msgs/CameraInfo to pass through next to the frames (on the output "
                                    "topic's camera_info, e.g. camera/camera_info); '' = none")
        min_subscribers = declare(self, "min_subscribers", 0, "start publishing once output_topic has this "
                                  "many subscribers, so a replay loses no frame to discovery", minimum=0)
        if self._use_recorded and loop:
            raise parameter_error(self, "use_recorded_stamps", True, "recorded stamps would repeat with loop:=true")
        try:
            qos = image_qos(reliability, depth)
        except ValueError as error:
            raise parameter_error(self, "qos_reliability/qos_depth", f"{reliability}/{depth}", str(error)) from None
        if not source:
            try:
                source = str(asset_path(SAMPLE_VIDEO))
            except AssetError as error:
                raise parameter_error(self, "source", source, str(error)) from error
        values = {"source": source, "image_topic": image_topic, "rate_hz": rate_hz, "loop": loop,
                  "max_frames": max_frames, "realtime": realtime}
        topic = topic_of(source)
        if topic is not None:  # another driver's live topic, raw or compressed
            if loop or realtime:
                raise parameter_error(self, "loop/realtime", f"{loop}/{realtime}", "a live topic cannot loop or "
                                      "replay in real time")
            try:
                reader = TopicReader(self, topic, frame_id)
            except Exception as error:  # an invalid topic name: rclpy says why
                raise parameter_error(self, "source", source, str(error)) from None
            self._source = FrameSource(reader, rate_hz=rate_hz, realtime=False, loop=False, max_frames=max_frames)
        else:
            try:
                self._source = open_source(source, image_topic=image_topic, frame_id=frame_id, rate_hz=rate_hz,
                                           realtime=realtime, loop=loop, max_frames=max_frames)
            except SourceError as error:
                raise parameter_error(self, error.parameter, values.get(error.parameter), str(error)) from error

        self._stamps = ("capture time" if self._source.live else
                        "recorded stamps" if self._use_recorded else "publish time")
        self._min_subscribers = min_subscribers
        self._publisher = self.create_publisher(Image, output_topic, qos)
        if camera_info_topic:  # passed through unchanged: same header as the driver's frames
            info_topic = f"{output_topic.rsplit('/', 1)[0]}/camera_info" if "/" in output_topic else "camera_info"
            info_publisher = self.create_publisher(CameraInfo, info_topic, qos)
            self.create_subscription(CameraInfo, camera_info_topic, info_publisher.publish, IMAGE_SUB_QOS)
        self._diagnostics = Diagnostics(self)
        self._rate_hz = rate_hz
        self._skipped_reported = 0
        self.create_timer(1.0, self._check_health)
        self._published = 0
        self._last_stamp_ns = 0
        self._publish_times_s = deque(maxlen=20)  # monotonic, for the achieved rate
        self._first_publish_s = None  # monotonic
        self._update_diagnostics(message="running", last_source_stamp_s=0.0)
        self._error: Exception | None = None
        # What ends the node's work once the source has ended: the process (its own), or a callable
        # set by a container that hosts other nodes which must finish first.
        self.on_source_end = lambda: rclpy.try_shutdown(context=self.context)
        # The worker hands the end of the source back to the executor thread through this.
        self._source_done = self.create_guard_condition(self._finish)
        self._worker = threading.Thread(target=self._run, name="camera_source", daemon=True)
        self._worker.start()
        self.get_logger().info(f"publishing {self._source.description} on {self._publisher.topic_name} "
                               f"(rate_hz={rate_hz:g}, realtime={realtime}, loop={loop}, max_frames={max_frames}); "
                               f"header.stamp = {self._stamps}")

    def _achieved_rate_hz(self) -> float:
        times = self._publish_times_s
        return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else 0.0

    def _update_diagnostics(self, message: str | None = None, **values) -> None:
        self._diagnostics.update(message=message, source=self._source.description, stamps=self._stamps,
                                 frames_published=self._published, frames_skipped=self._source.skipped,
                                 rate_hz_achieved=f"{self._achieved_rate_hz():.2f}", **values)

    def _check_health(self) -> None:
        skipped = self._source.skipped
        level, message = camera_status(self._rate_hz if not self._source.live else 0.0, self._achieved_rate_hz(),
                                       self._published, skipped - self._skipped_reported)
        self._skipped_reported = skipped
        self._diagnostics.update(level, message)

    def _wait_for_subscribers(self) -> None:
        if self._min_subscribers == 0:
            return
        self.get_logger().info(f"waiting for {self._min_subscribers} subscriber(s) on {self._publisher.topic_name}")
        while self._publisher.get_subscription_count() < self._min_subscribers:
            if self._stopping.wait(0.05):
                return
        self._stopping.wait(DISCOVERY_SETTLE_S)

    def _publish(self, stamp_s: float, frame_id: str, image_bgr) -> None:
        use_source_stamp = self._source.live or self._use_recorded
        stamp_ns = max(round(stamp_s * 1e9) if use_source_stamp else self.get_clock().now().nanoseconds,
                       self._last_stamp_ns + 1)
        self._last_stamp_ns = stamp_ns
        self._publisher.publish(image_to_msg(image_bgr, stamp_ns * 1e-9, frame_id))
        self._published += 1
        self._publish_times_s.append(time.monotonic())
        self._first_publish_s = self._first_publish_s or self._publish_times_s[-1]
        self._update_diagnostics(last_source_stamp_s=f"{stamp_s:.9f}")

    def _run(self) -> None:
        """Worker thread: read, pace and publish until the source ends or the node stops."""
        try:
            self._wait_for_subscribers()
            for frame in self._source:
                self._publish(*frame)
            if self._stopping.wait(LINGER_S):
                return
        except Exception as error:
            if self._stopping.is_set() or not self.context.ok():  # shutting down under us: not a failure
                return
            self._error = error
        self._source_done.trigger()

    def _finish(self) -> None:
        """Executor thread, once the source has ended: report, then ``on_source_end`` (by default the
        process ends, exit 0), or fail."""
        if self._error is not None:  # the source failed: said on /diagnostics before the node goes
            self._diagnostics.update(ERROR, f"source failed: {bounded(self._error)}")
            self._diagnostics.publish()
            raise self._error
        span_s = self._publish_times_s[-1] - self._first_publish_s if self._published > 1 else 0.0
        rate_hz = (self._published - 1) / span_s if span_s > 0 else 0.0
        self._update_diagnostics(message="source ended")
        self._diagnostics.publish()
        self.get_logger().info(f"source ended: published {self._published} frames in {span_s:.2f} s "
                               f"({rate_hz:.1f} Hz), skipped {self._source.skipped} undecodable, "
                               f"from {self._source.description}")
        self.on_source_end()

    def destroy_node(self) -> None:
        self._stopping.set()
        if self._source is not None:
            self._source.close()
        if self._worker is not None:
            self._worker.join(timeout=5.0)
        super().destroy_node()


def main(args=None) -> None:
    run_node(CameraNode, args)


if __name__ == "__main__":
    main()
