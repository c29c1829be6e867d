"""Cloud (or fog) node: validates and decodes FeatureMaps, runs the rest of the network, and sends
the detections back to the edge (``l2p/cloud_detections``), which publishes them for the vehicle.

A malformed FeatureMap is dropped and counted as ``malformed_payload`` (invariant 3); frames that
arrive faster than they are processed wait in a short queue, and the oldest is dropped as
``cloud_backlog`` when it overflows. In the ``fog`` role the node runs the layers up to the
frame's ``run_until_layer`` and forwards the result to the next tier instead; a frame whose
``run_until_layer`` is the last layer is finished on the fog (detections published here, nothing
sent on), and one with nothing to run (-1) is passed through unchanged.

One cloud can serve a fleet: with ``vehicles`` (namespaces, e.g. ``v0,v1,v2``) it consumes each
vehicle's ``/<vehicle>/<input_topic>`` and answers on that vehicle's topics (detections, stats,
probes), with one queue per vehicle served round robin (``l2p_ros.fleet.CloudBatcher``), and in
the cloud role finishes up to ``max_batch`` frames that share a cut in one batched pass, waiting at
most ``max_wait_ms`` for a batch to fill. Every frame is accounted per vehicle.
"""
from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass

from rclpy.publisher import Publisher
from sensor_msgs.msg import Image

from l2p_msgs.msg import DetectionArray, FeatureMap, PipelineStats
from l2p_ros import codec
from l2p_ros.fleet import CloudBatcher
from l2p_ros.nodes.common import (DETECTIONS_QOS, FRAME_QOS, IMAGE_QOS, IMAGE_SUB_QOS, NEXT_TIER_DETECTIONS_TOPIC,
                                  STATE_QOS, Diagnostics, bounded, declare, from_time_msg, now_s, parameter_error,
                                  run_node, stamp_key, to_time_msg)
from l2p_ros.nodes.conversions import (DEFAULT_MAX_PAYLOAD_BYTES, detections_to_msgs, frame_to_msg, msg_to_frame,
                                      publish_stage_stats)
from l2p_ros.nodes.images import image_to_msg, msg_to_image
from l2p_ros.nodes.lifecycle import ManagedNode
from l2p_ros.nodes.model_params import load_detector
from l2p_ros.nodes.probe_echo import ProbeEcho, declare_probe_link, in_namespace
from l2p_ros.split import CloudResult, EncodedFrame
from l2p_ros.stats import DropWatch, StageStats, backlog_problems, stage_status
from l2p_ros.visualize import draw_detections

SINGLE_VEHICLE = ""  # the vehicle of a node without ``vehicles``: its own (relative) topics


@dataclass
class Vehicle:
    """One served vehicle: its namespace ("" = this node's own), publishers and counters."""

    name: str
    detections_pub: Publisher
    stats_pub: Publisher
    forward_pub: Publisher | None
    probe_echo: ProbeEcho | None
    stats: StageStats


@dataclass
class Received:
    msg: FeatureMap
    received_s: float


def vehicle_names(value: str) -> list[str]:
    """``"v0,v1"`` -> ["v0", "v1"]; "" -> one vehicle on the node's own topics. ValueError otherwise."""
    if not value.strip():
        return [SINGLE_VEHICLE]
    names = [name.strip() for name in value.split(",")]
    for name in names:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name):
            raise ValueError(f"vehicle {name!r}: a namespace of letters, digits and underscores, starting with "
                             "a letter")
    if len(set(names)) != len(names):
        raise ValueError("a vehicle is named twice")
    return names


def _topic(vehicle: str, topic: str) -> str:
    return f"/{vehicle}/{topic.lstrip('/')}" if vehicle else topic


class CloudNode(ManagedNode):
    """A lifecycle node (l2p_ros.nodes.lifecycle): configure loads the model and creates the
    publishers, activate starts consuming feature maps."""

    def __init__(self):
        super().__init__("cloud_node")
        self.worker = None
        self.batch_sizes: dict[int, int] = {}  # batch size -> batches finished, for diagnostics
        self.role = declare(self, "role", "cloud", "'cloud' (finish the network) or 'fog' (run a middle range)")
        if self.role not in ("cloud", "fog"):
            raise parameter_error(self, "role", self.role, "must be 'cloud' or 'fog'")
        self._input_topic = declare(self, "input_topic", "l2p/feature_map", "FeatureMap topic to consume")
        vehicles = declare(self, "vehicles", "", "fleet: the vehicle namespaces this node serves, comma-separated "
                           "(e.g. v0,v1,v2); '' = one vehicle on this node's own topics")
        try:
            self._names = vehicle_names(vehicles)
        except ValueError as error:
            raise parameter_error(self, "vehicles", vehicles, str(error)) from None
        # Answers the edge's link probes and reports each FeatureMap's arrival (passive bandwidth),
        # from the start and whatever the lifecycle state: the link is measurable while the model
        # loads (answering only once configured, a backhaul read as down for the first seconds).
        # In three tiers only the tier right after the edge should answer: the fog.
        answer_probes = declare(self, "answer_probes", self.role == "fog" or self._input_topic == "l2p/feature_map",
                                "answer network probes and report transfers (the tier right after the edge)")
        probe_topics = declare_probe_link(self)  # a cloud behind a fog answers the fog's monitor on its own link
        self._probe_echos = {name: ProbeEcho(self, in_namespace(probe_topics, name)) if answer_probes else None
                             for name in self._names}
        self.start_if_autostart()

    def configure(self) -> None:
        self.detector = load_detector(self)
        names = self._names
        output_topic = declare(self, "output_topic", "l2p/feature_map_cloud",
                               "fog only: FeatureMap topic for the next tier")
        self.fog_codec = declare(self, "fog_codec", "fp32", "fog only: codec of the forwarded tensors")
        queue_depth = declare(self, "queue_depth", 4, "frames of one vehicle waiting to be processed before its "
                              "oldest is dropped", minimum=1)
        max_batch = declare(self, "max_batch", 1, "cloud role: frames sharing a cut finished in one batched pass, "
                            "at most", minimum=1)
        max_wait_ms = declare(self, "max_wait_ms", 0.0, "how long a batch's first frame waits for more, ms", minimum=0)
        self.decode_workers = declare(self, "decode_workers", 1, "cloud role: threads that validate and decode a "
                                      "batch's frames in parallel (a GPU cloud's host: its spare cores)", minimum=1)
        self.max_payload_bytes = declare(self, "max_payload_bytes", DEFAULT_MAX_PAYLOAD_BYTES,
                                         "a received FeatureMap carrying more tensor or image bytes is dropped "
                                         "unread (malformed_payload)", minimum=1)
        annotate_topic = declare(self, "annotate_image_topic", "",
                                 "camera topic to draw detections on, published on l2p/annotated ('' = off); "
                                 "the cloud only sees images it is sent, so this is for single-host debugging")
        try:
            self.fog_spec = codec.CodecSpec.parse(self.fog_codec)
        except ValueError as error:
            raise parameter_error(self, "fog_codec", self.fog_codec, str(error)) from None
        stats_topic = f"l2p/{self.role}/stats" if self.role == "fog" else "l2p/pipeline_stats"
        self.vehicles: dict[str, Vehicle] = {}
        for name in names:
            self.vehicles[name] = Vehicle(
                name, self.create_publisher(DetectionArray, _topic(name, NEXT_TIER_DETECTIONS_TOPIC), DETECTIONS_QOS),
                self.create_publisher(PipelineStats, _topic(name, stats_topic), STATE_QOS),
                (self.create_publisher(FeatureMap, _topic(name, output_topic), FRAME_QOS) if self.role == "fog"
                 else None),
                self._probe_echos[name], StageStats())
        self._batching = (names, queue_depth, max_batch if self.role == "cloud" else 1, max_wait_ms / 1e3)
        self._annotate_topic = annotate_topic
        self.drop_watch = DropWatch()
        self.annotated_pub = self.create_publisher(Image, "l2p/annotated", IMAGE_QOS) if annotate_topic else None
        self._images: OrderedDict = OrderedDict()  # stamp -> Image, for annotation
        self.diagnostics = Diagnostics(self)

    def activate(self) -> None:
        names, queue_depth, max_batch, max_wait_s = self._batching
        # A fog forwards frame by frame; the cloud batches frames that share a cut.
        self.batcher: CloudBatcher[Received] = CloudBatcher(names, queue_depth, max_batch, max_wait_s)
        if self._annotate_topic:
            self.create_subscription(Image, self._annotate_topic, self.on_image, IMAGE_SUB_QOS)
        for name in names:
            self.create_subscription(FeatureMap, _topic(name, self._input_topic),
                                     lambda msg, vehicle=name: self.on_feature_map(vehicle, msg), FRAME_QOS)
        self.create_timer(1.0, self.publish_stats)
        self.worker = threading.Thread(target=self.work, name=f"{self.role}_worker", daemon=True)
        self.worker.start()
        served = f"vehicles {', '.join(names)}, " if names != [SINGLE_VEHICLE] else ""
        self.get_logger().info(f"{self.role} ready: {self.detector.model_id}, {served}input {self._input_topic}, "
                               f"max_batch {self.batcher.max_batch}, decode_workers {self.decode_workers}")

    def deactivate(self) -> None:
        self.batcher.shutdown()
        self.worker.join(timeout=5.0)
        self.worker = None
        if self.role == "cloud":
            self.get_logger().info(self.batch_report())

    def release(self) -> None:
        self.detector = None

    def on_image(self, msg: Image) -> None:
        self._images[stamp_key(msg.header)] = msg
        while len(self._images) > 16:
            self._images.popitem(last=False)

    def on_feature_map(self, vehicle: str, msg: FeatureMap) -> None:
        received_s = now_s()
        served = self.vehicles[vehicle]
        if served.probe_echo is not None:
            served.probe_echo.report_transfer(msg, received_s)
        served.stats.count_in()
        # Frames that share a batch: same model and cut (their decoded tensors stack), same payload kind.
        key = (msg.model_id, msg.cut_after_layer, tuple(msg.edge_layers), bool(msg.image_data), msg.run_until_layer)
        if self.batcher.put(vehicle, key, Received(msg, received_s)) is not None:
            served.stats.drop("cloud_backlog")  # the vehicle's oldest frame is the least useful one

    def work(self) -> None:
        while True:
            batch = self.batcher.take()
            if batch is None:
                return
            if self.role == "fog":
                for vehicle, received in batch:
                    try:
                        self.forward(vehicle, received)
                    except Exception as error:  # a frame must never take the worker down
                        self._drop(vehicle, error)
            else:
                self.finish(batch)

    def _drop(self, vehicle: str, error: Exception) -> None:
        """Count a frame that failed: malformed (invariant 3) or an error of this tier."""
        if isinstance(error, codec.PayloadError):
            self.vehicles[vehicle].stats.drop("malformed_payload")
            self.get_logger().warning(f"dropped a malformed FeatureMap: {bounded(error)}", throttle_duration_sec=2.0)
        else:
            self.vehicles[vehicle].stats.drop(f"{self.role}_error")
            self.get_logger().error(f"frame failed on the {self.role}: {bounded(repr(error))}")

    def _stamp_arrival(self, received: Received) -> None:
        timings = received.msg.timings
        timings.cloud_received = to_time_msg(received.received_s)
        timings.transfer_ms = (received.received_s - from_time_msg(timings.edge_sent)) * 1e3

    def forward(self, vehicle: str, received: Received) -> None:
        """Fog role: run the frame's middle range and send it on, pass it through, or finish it."""
        msg = received.msg
        frame = msg_to_frame(msg, self.detector.model.input_size, self.max_payload_bytes)
        self._stamp_arrival(received)
        served = self.vehicles[vehicle]
        last_layer = self.detector.num_layers - 1
        if not -1 <= msg.run_until_layer <= last_layer:
            raise codec.PayloadError(f"run_until_layer {msg.run_until_layer} is outside -1..{last_layer}")
        if 0 <= msg.run_until_layer < last_layer:
            out_frame = self.detector.fog(frame, msg.run_until_layer, self.fog_spec)
            out = frame_to_msg(out_frame, FeatureMap(header=msg.header, frame_seq=msg.frame_seq))
            out.run_until_layer = -1
            out.edge_cut_after_layer = msg.edge_cut_after_layer
            out.executed_on = f"{msg.executed_on}+fog" if msg.executed_on else "fog"
            out.timings = msg.timings
            out.timings.edge_ms += out_frame.edge_ms  # fog compute counts as pre-cloud work
            out.timings.encode_ms += out_frame.encode_ms
            out.timings.edge_sent = to_time_msg(now_s())
            served.forward_pub.publish(out)
            served.stats.offloaded(out_frame.payload_bytes)
        elif msg.run_until_layer != last_layer:  # nothing to run: pass through unchanged
            served.forward_pub.publish(msg)
            served.stats.offloaded(msg.payload_bytes)
        else:  # asked to run to the last layer: finish the network here
            self.publish_detections(vehicle, received, frame, self.detector.cloud(frame))

    def finish(self, batch: list[tuple[str, Received]]) -> None:
        """Cloud role: validate every frame of the batch on its own, finish the valid ones together."""
        valid: list[tuple[str, Received, EncodedFrame]] = []
        for vehicle, received in batch:
            self._stamp_arrival(received)
            try:
                valid.append((vehicle, received, msg_to_frame(received.msg, self.detector.model.input_size,
                                                              self.max_payload_bytes)))
            except codec.PayloadError as error:
                self._drop(vehicle, error)
        if not valid:
            return
        self.batch_sizes[len(valid)] = self.batch_sizes.get(len(valid), 0) + 1
        try:
            results = self.detector.cloud_batch([frame for _, _, frame in valid], decode_workers=self.decode_workers)
        except Exception as error:  # the batch failed as a whole: each of its frames is counted
            for vehicle, _, _ in valid:
                self._drop(vehicle, error)
            return
        for (vehicle, received, frame), result in zip(valid, results):
            try:
                if isinstance(result, Exception):
                    raise result
                self.publish_detections(vehicle, received, frame, result)
            except Exception as error:
                self._drop(vehicle, error)

    def publish_detections(self, vehicle: str, received: Received, frame: EncodedFrame, result: CloudResult) -> None:
        msg = received.msg
        last_layer = self.detector.num_layers - 1
        via_fog = "fog" in msg.executed_on
        tier = "fog" if self.role == "fog" else "cloud"
        out = DetectionArray(header=msg.header, frame_seq=msg.frame_seq, model_id=msg.model_id,
                             cut_after_layer=msg.edge_cut_after_layer if via_fog else msg.cut_after_layer,
                             fog_until_layer=(last_layer if self.role == "fog" else
                                              msg.cut_after_layer if via_fog else -1),
                             codec=str(frame.codec),
                             executed_on=f"{msg.executed_on}+{tier}" if msg.executed_on else tier)
        out.detections = detections_to_msgs(result.detections)
        timings = msg.timings
        timings.decode_ms, timings.cloud_ms = result.decode_ms, result.cloud_ms
        timings.total_ms = (now_s() - from_time_msg(timings.ingested)) * 1e3  # the edge's clock: it recomputes
        out.timings = timings
        served = self.vehicles[vehicle]
        served.detections_pub.publish(out)
        served.stats.detected(timings.total_ms, payload_bytes=msg.payload_bytes)
        image = self._images.pop(stamp_key(msg.header), None)
        if self.annotated_pub is not None and image is not None:
            drawn = draw_detections(msg_to_image(image), result.detections)
            self.annotated_pub.publish(image_to_msg(drawn, from_time_msg(msg.header.stamp), msg.header.frame_id))

    def publish_stats(self) -> None:
        queued = self.batcher.queued()
        drops: dict[str, int] = {}  # by "vehicle:reason" (keys are unique per vehicle)
        for name, served in self.vehicles.items():
            counters, own_drops = publish_stage_stats(self, served.stats, served.stats_pub)
            drops.update({f"{name}:{reason}" if name else reason: count for reason, count in own_drops.items()})
            if name == SINGLE_VEHICLE:
                single = counters
        level, message = stage_status(self.drop_watch.since_last(drops),
                                      problems=backlog_problems(queued, self.batcher.queue_depth))
        if SINGLE_VEHICLE in self.vehicles:
            self.diagnostics.update(level, message, queued=queued[SINGLE_VEHICLE], **single)
        else:
            self.diagnostics.update(level, message, vehicles=len(self.vehicles), queued=sum(queued.values()),
                                    batches=sum(self.batch_sizes.values()), batch_sizes=str(self.batch_sizes))

    def batch_report(self) -> str:
        frames = sum(size * count for size, count in self.batch_sizes.items())
        return (f"finished {frames} frames in {sum(self.batch_sizes.values())} batches "
                f"(batch size: count {dict(sorted(self.batch_sizes.items()))})")



def main(args=None) -> None:
    run_node(CloudNode, args)


if __name__ == "__main__":
    main()
