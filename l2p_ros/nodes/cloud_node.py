"""Cloud (or fog) node: validates and decodes FeatureMaps, runs the rest of the network, publishes.

A malformed FeatureMap is dropped and counted as ``malformed_payload`` (invariant 3); frames that
arrive faster than they are processed wait in a short queue, and the oldest is dropped as
``cloud_backlog`` when it overflows. In the ``fog`` role the node runs the layers up to the
frame's ``run_until_layer`` and forwards the result to the next tier instead; a frame whose
``run_until_layer`` is the last layer is finished on the fog (detections published here, nothing
sent on), and one with nothing to run (-1) is passed through unchanged.
"""
from __future__ import annotations

import queue
import threading
from collections import OrderedDict

from rclpy.node import Node
from sensor_msgs.msg import Image

from l2p_msgs.msg import DetectionArray, FeatureMap, PipelineStats
from l2p_ros import codec
from l2p_ros.nodes.common import (FRAME_QOS, IMAGE_QOS, IMAGE_SUB_QOS, STATE_QOS, Diagnostics, declare,
                                  from_time_msg, now_s, parameter_error, run_node, stamp_key, to_time_msg)
from l2p_ros.nodes.images import image_to_msg, msg_to_image
from l2p_ros.nodes.conversions import detections_to_msgs, frame_to_msg, msg_to_frame, publish_stage_stats
from l2p_ros.nodes.model_params import load_detector
from l2p_ros.nodes.probe_echo import ProbeEcho, declare_probe_link
from l2p_ros.stats import StageStats
from l2p_ros.visualize import draw_detections


class CloudNode(Node):
    def __init__(self):
        super().__init__("cloud_node")
        self.detector = load_detector(self)
        self.role = declare(self, "role", "cloud", "'cloud' (finish the network) or 'fog' (run a middle range)")
        if self.role not in ("cloud", "fog"):
            raise parameter_error(self, "role", self.role, "must be 'cloud' or 'fog'")
        input_topic = declare(self, "input_topic", "l2p/feature_map", "FeatureMap topic to consume")
        output_topic = declare(self, "output_topic", "l2p/feature_map_cloud",
                               "fog only: FeatureMap topic for the next tier")
        self.fog_codec = declare(self, "fog_codec", "fp32", "fog only: codec of the forwarded tensors")
        queue_depth = declare(self, "queue_depth", 4, "frames waiting to be processed before the oldest is dropped")
        annotate_topic = declare(self, "annotate_image_topic", "",
                                 "camera topic to draw detections on, published on l2p/annotated ('' = off); "
                                 "the cloud only sees images it is sent, so this is for single-host debugging")
        if queue_depth < 1:
            raise parameter_error(self, "queue_depth", queue_depth, "must be >= 1")
        try:
            self.fog_spec = codec.CodecSpec.parse(self.fog_codec)
        except ValueError as error:
            raise parameter_error(self, "fog_codec", self.fog_codec, str(error)) from None

        self.stats = StageStats()
        self._queue: queue.Queue = queue.Queue(maxsize=queue_depth)
        self._running = True
        self.detections_pub = self.create_publisher(DetectionArray, "l2p/detections", FRAME_QOS)
        self.forward_pub = self.create_publisher(FeatureMap, output_topic, FRAME_QOS) if self.role == "fog" else None
        self.stats_pub = self.create_publisher(PipelineStats, f"l2p/{self.role}/stats" if self.role == "fog"
                                               else "l2p/pipeline_stats", STATE_QOS)
        self.annotated_pub = None
        self._images: OrderedDict = OrderedDict()  # stamp -> Image, for annotation
        if annotate_topic:
            self.annotated_pub = self.create_publisher(Image, "l2p/annotated", IMAGE_QOS)
            self.create_subscription(Image, annotate_topic, self.on_image, IMAGE_SUB_QOS)
        self.create_subscription(FeatureMap, input_topic, self.on_feature_map, FRAME_QOS)
        # Answers the edge's link probes and reports each FeatureMap's arrival (passive bandwidth).
        # In three tiers only the tier right after the edge should answer: the fog.
        answer_probes = declare(self, "answer_probes", self.role == "fog" or input_topic == "l2p/feature_map",
                                "answer network probes and report transfers (the tier right after the edge)")
        probe_topics = declare_probe_link(self)  # a cloud behind a fog answers the fog's monitor on its own link
        self.probe_echo = ProbeEcho(self, probe_topics) if answer_probes else None
        self.diagnostics = Diagnostics(self)
        self.create_timer(1.0, self.publish_stats)
        self.worker = threading.Thread(target=self.work, name=f"{self.role}_worker", daemon=True)
        self.worker.start()
        self.get_logger().info(f"{self.role} ready: {self.detector.model_id}, input {input_topic}")

    def on_image(self, msg: Image) -> None:
        self._images[stamp_key(msg.header)] = msg
        while len(self._images) > 16:
            self._images.popitem(last=False)

    def on_feature_map(self, msg: FeatureMap) -> None:
        received_s = now_s()
        if self.probe_echo is not None:
            self.probe_echo.report_transfer(msg, received_s)
        self.stats.count_in()
        while True:
            try:
                self._queue.put_nowait((msg, received_s))
                return
            except queue.Full:
                try:
                    self._queue.get_nowait()  # the oldest frame is the least useful one
                    self.stats.drop("cloud_backlog")
                except queue.Empty:  # the worker took it meanwhile
                    pass

    def work(self) -> None:
        while self._running:
            try:
                msg, received_s = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            try:
                self.process(msg, received_s)
            except codec.PayloadError as error:
                self.stats.drop("malformed_payload")
                self.get_logger().warning(f"dropped a malformed FeatureMap: {error}", throttle_duration_sec=2.0)
            except Exception as error:  # a frame must never take the worker down
                self.stats.drop(f"{self.role}_error")
                self.get_logger().error(f"frame failed on the {self.role}: {error!r}")

    def process(self, msg: FeatureMap, received_s: float) -> None:
        frame = msg_to_frame(msg, self.detector.model.input_size)
        timings = msg.timings
        timings.cloud_received = to_time_msg(received_s)
        timings.transfer_ms = (received_s - from_time_msg(timings.edge_sent)) * 1e3
        last_layer = self.detector.num_layers - 1
        if self.role == "fog" and not -1 <= msg.run_until_layer <= last_layer:
            raise codec.PayloadError(f"run_until_layer {msg.run_until_layer} is outside -1..{last_layer}")
        if self.role == "fog" and 0 <= msg.run_until_layer < last_layer:
            out_frame = self.detector.fog(frame, msg.run_until_layer, self.fog_spec)
            out = frame_to_msg(out_frame, FeatureMap(header=msg.header, frame_seq=msg.frame_seq))
            out.run_until_layer = -1
            out.edge_cut_after_layer = msg.edge_cut_after_layer
            out.executed_on = f"{msg.executed_on}+fog" if msg.executed_on else "fog"
            out.timings = timings
            out.timings.edge_ms += out_frame.edge_ms  # fog compute counts as pre-cloud work
            out.timings.encode_ms += out_frame.encode_ms
            out.timings.edge_sent = to_time_msg(now_s())
            self.forward_pub.publish(out)
            self.stats.offloaded(out_frame.payload_bytes)
            return
        if self.role == "fog" and msg.run_until_layer != last_layer:  # nothing to run: pass through unchanged
            self.forward_pub.publish(msg)
            self.stats.offloaded(msg.payload_bytes)
            return
        # The cloud, or a fog asked to run to the last layer: finish the network here.
        result = self.detector.cloud(frame)
        via_fog = "fog" in msg.executed_on
        tier = "fog" if self.role == "fog" else "cloud"
        out = DetectionArray(header=msg.header, frame_seq=msg.frame_seq, model_id=msg.model_id,
                             cut_after_layer=msg.edge_cut_after_layer if via_fog else msg.cut_after_layer,
                             fog_until_layer=(last_layer if self.role == "fog" else
                                              msg.cut_after_layer if via_fog else -1),
                             codec=str(frame.codec),
                             executed_on=f"{msg.executed_on}+{tier}" if msg.executed_on else tier)
        out.detections = detections_to_msgs(result.detections)
        timings.decode_ms, timings.cloud_ms = result.decode_ms, result.cloud_ms
        timings.total_ms = (now_s() - from_time_msg(timings.captured)) * 1e3
        out.timings = timings
        self.detections_pub.publish(out)
        self.stats.detected(timings.total_ms, payload_bytes=msg.payload_bytes)
        image = self._images.pop(stamp_key(msg.header), None)
        if self.annotated_pub is not None and image is not None:
            drawn = draw_detections(msg_to_image(image), result.detections)
            self.annotated_pub.publish(image_to_msg(drawn, from_time_msg(msg.header.stamp), msg.header.frame_id))

    def publish_stats(self) -> None:
        counters = publish_stage_stats(self, self.stats, self.stats_pub)
        self.diagnostics.update(0, "running", queued=self._queue.qsize(), **counters)

    def destroy_node(self):
        self._running = False
        self.worker.join(timeout=5.0)
        return super().destroy_node()


def main(args=None) -> None:
    run_node(CloudNode, args)


if __name__ == "__main__":
    main()
