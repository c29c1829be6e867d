"""Edge node: runs the head of the network on the latest frame and sends what crosses the cut.

Latest frame wins: a frame replaced before the worker took it is dropped as ``stale_frame``.
A frame sent to the next tier that gets no detections within ``cloud_timeout_s`` is finished
locally from the image kept for it (invariant 5), and later frames stay local until a retry
(one frame every ``retry_period_s``) is answered. Every frame's detections reach the vehicle from
here on ``l2p/detections``: those it finished, and those the next tier sent it on
``l2p/cloud_detections``. That scheduling lives in the ROS-free
:class:`l2p_ros.edge_scheduler.EdgeScheduler`; this node wires it to topics and runs the frames.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
from sensor_msgs.msg import Image
from std_msgs.msg import Header, UInt32

from l2p_msgs.msg import DetectionArray, FeatureMap, PartitionDecision, PipelineStats
from l2p_ros import codec
from l2p_ros.edge_scheduler import EdgeScheduler, ScheduledFrame
from l2p_ros.nodes.common import (DETECTIONS_QOS, EXECUTED_ON_EDGE, EXECUTED_ON_EDGE_FALLBACK, FRAME_QOS,
                                  IMAGE_SUB_QOS, NEXT_TIER_DETECTIONS_TOPIC, STATE_QOS, Diagnostics, bounded, declare,
                                  from_time_msg, now_s, parameter_error, positive, run_node, stamp_key, to_time_msg)
from l2p_ros.nodes.images import msg_to_image
from l2p_ros.nodes.lifecycle import ManagedNode
from l2p_ros.nodes.conversions import detections_to_msgs, frame_to_msg, publish_stage_stats
from l2p_ros.nodes.model_params import load_detector
from l2p_ros.nodes.outputs import DetectionOutputs
from l2p_ros.stats import DropWatch, StageStats, stage_status


@dataclass
class EdgeFrame:
    """What the scheduler keeps for a frame: its header and image (kept until it is detected), and
    when it reached this node on the system clock: latency is measured from there, so a frame whose
    stamp is old or on another clock (a bag played by ``ros2 bag play``, a driver stamping with its
    own clock, sim time) still gets its true latency."""

    header: Header
    image: np.ndarray
    ingest_s: float


# A frame as the scheduler hands it to the worker, with its matched decision.
Pending = ScheduledFrame[EdgeFrame, PartitionDecision]


class EdgeNode(ManagedNode):
    """A lifecycle node (l2p_ros.nodes.lifecycle): configure loads the model and creates the
    publishers; activate waits (bounded) for the next tier's reader, then takes frames."""

    def __init__(self):
        super().__init__("edge_node")
        self.worker = None
        self.start_if_autostart()

    def configure(self) -> None:
        self.detector = load_detector(self)
        self.default_cut = declare(self, "default_cut", "edge",
                                   "cut used until decisions arrive: a layer index, 'edge' or 'cloud'")
        self.default_codec = declare(self, "default_codec", "fp32", "codec used with default_cut")

        self.decision_wait_s = self.live.declare(
            "decision_wait_s", 0.1, "how long a frame waits for its own partition decision, seconds (live)",
            self._timing("decision_wait_s"), minimum=0.0)
        self.cloud_timeout_s = self.live.declare(
            "cloud_timeout_s", 0.5, "seconds without detections after which a sent frame is finished locally (live)",
            self._timing("cloud_timeout_s"), check=positive)
        self.retry_period_s = self.live.declare(
            "retry_period_s", 2.0, "while the next tier is silent, offload one frame this often, seconds (live)",
            self._timing("retry_period_s"), check=positive)
        self.partitioner_timeout_s = self.live.declare(
            "partitioner_timeout_s", 2.0, "seconds without decisions after which frames stop waiting for them and "
            "run with default_cut (a dead partitioner) (live)", self._timing("partitioner_timeout_s"), check=positive)
        self.image_topic = declare(self, "image_topic", "camera/image_raw", "input sensor_msgs/Image topic")
        self.next_tier_wait_s = declare(self, "next_tier_wait_s", 10.0,
                                        "at start, how long to wait for the next tier to be discovered before "
                                        "taking frames, seconds (frames sent before it would be lost)")
        try:
            self.detector.cut(self.default_cut)
            codec.CodecSpec.parse(self.default_codec)
        except ValueError as error:
            raise parameter_error(self, "default_cut/default_codec", f"{self.default_cut}/{self.default_codec}",
                                  str(error)) from None

        self.stats = StageStats()
        self.drop_watch = DropWatch()
        self._working = False  # the worker is running a frame it took from the scheduler
        self._partitioner_silent = False  # as last logged
        self.feature_pub = self.create_publisher(FeatureMap, "l2p/feature_map", FRAME_QOS)
        self.detections_pub = self.create_publisher(DetectionArray, "l2p/detections", DETECTIONS_QOS)
        self.outputs = DetectionOutputs(self)  # the same detections as vision_msgs and an image overlay
        self.stats_pub = self.create_publisher(PipelineStats, "l2p/edge/stats", STATE_QOS)
        self.queue_pub = self.create_publisher(UInt32, "l2p/edge/queue_length", STATE_QOS)
        self.diagnostics = Diagnostics(self)

    def _timing(self, name: str):
        """A live timing's setter: from the next frame (the scheduler reads them every time)."""
        def apply(value: float) -> None:
            setattr(self, name, value)
            if getattr(self, "scheduler", None) is not None:
                setattr(self.scheduler, name, value)
        return apply

    def activate(self) -> None:
        self.scheduler: EdgeScheduler[EdgeFrame, PartitionDecision] = EdgeScheduler(
            self.decision_wait_s, self.cloud_timeout_s, self.retry_period_s,
            partitioner_timeout_s=self.partitioner_timeout_s)
        # DDS matches endpoints in the background; a FeatureMap published before the next tier's reader
        # is matched is silently lost, so frames are only taken once it is (or the wait is over).
        deadline = time.monotonic() + self.next_tier_wait_s
        while self.feature_pub.get_subscription_count() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        self.create_subscription(Image, self.image_topic, self.on_image, IMAGE_SUB_QOS)
        self.create_subscription(PartitionDecision, "l2p/decision", self.on_decision, FRAME_QOS)
        self.create_subscription(DetectionArray, NEXT_TIER_DETECTIONS_TOPIC, self.on_detections, DETECTIONS_QOS)
        self.create_timer(0.02, self.check_timeouts)
        self.create_timer(1.0, self.publish_stats)
        self.worker = threading.Thread(target=self.work, name="edge_worker", daemon=True)
        self.worker.start()
        self.get_logger().info(f"edge ready: {self.detector.model_id}, default cut {self.default_cut}")

    # -- callbacks (executor thread): store and wake the worker, never compute ----------------
    def on_image(self, msg: Image) -> None:
        ingest_s = now_s()
        self.stats.count_in()
        try:
            image = msg_to_image(msg)
        except ValueError as error:
            self.stats.drop("malformed_image")
            self.get_logger().warning(f"dropped an image: {bounded(error)}", throttle_duration_sec=5.0)
            return
        if self.scheduler.put_frame(stamp_key(msg.header), EdgeFrame(msg.header, image, ingest_s)):
            self.stats.drop("stale_frame")

    def on_decision(self, msg: PartitionDecision) -> None:
        self.scheduler.put_decision(stamp_key(msg.header), msg)

    def on_detections(self, msg: DetectionArray) -> None:
        """The next tier's result for a frame: it is done here, and the vehicle gets it from us, with
        its latency up to now on this clock (the return trip included, no clock shared with the cloud)."""
        ends_frame = self.scheduler.detections_received(stamp_key(msg.header))
        msg.timings.total_ms = (now_s() - from_time_msg(msg.timings.ingested)) * 1e3
        self.detections_pub.publish(msg)
        self.outputs.publish(msg)
        if ends_frame:  # the vehicle's result for this frame (a late second answer is only passed on)
            self.stats.detected(msg.timings.total_ms)

    def check_timeouts(self) -> None:
        if self.scheduler.check_timeouts():
            self.get_logger().warning(f"next tier silent (no answer within cloud_timeout_s {self.cloud_timeout_s:g} s): "
                                      "finishing frames locally, retrying one every retry_period_s")
        silent = self.scheduler.state().partitioner_silent
        if silent != self._partitioner_silent:
            self._partitioner_silent = silent
            if silent:
                self.get_logger().warning(f"partitioner silent for {self.partitioner_timeout_s:g} s: frames run "
                                          f"with default_cut {self.default_cut} until decisions come back")
            else:
                self.get_logger().info("partitioner back: frames follow its decisions again")

    # -- worker thread ----------------------------------------------------------------------------
    def idle(self) -> bool:
        """No frame waiting, being processed or in flight to the next tier (thread-safe)."""
        state = self.scheduler.state()
        return not self._working and state.queue_length == 0 and state.in_flight == 0

    def work(self) -> None:
        while True:
            self._working = False
            pending = self.scheduler.take()  # a timed-out frame first, else the latest frame
            if pending is None:
                return
            self._working = True
            try:
                if pending.timed_out:
                    self.finish_locally(pending, fallback=True)
                else:
                    self.process(pending)
            except Exception as error:  # a frame must never take the worker down
                self.get_logger().error(f"frame failed on the edge path ({bounded(repr(error))}); running it locally")
                try:  # e.g. a decision naming a cut or codec this model cannot use: the frame is not lost
                    self.finish_locally(pending, fallback=False)
                except Exception as local_error:
                    self.stats.drop("edge_error")
                    self.get_logger().error(f"frame failed locally too: {bounded(repr(local_error))}")

    def _cut_and_codec(self, decision: PartitionDecision | None):
        if decision is None:
            return self.detector.cut(self.default_cut), codec.CodecSpec.parse(self.default_codec)
        if len(decision.edge_layers):
            cut = self.detector.runner.graph.dag_cut(int(i) for i in decision.edge_layers)
        else:
            cut = self.detector.cut(decision.cut_after_layer)
        return cut, codec.CodecSpec.parse(decision.codec or self.default_codec)

    def process(self, pending: Pending) -> None:
        cut, spec = self._cut_and_codec(pending.decision)
        edge_only = cut.after_layer == self.detector.num_layers - 1
        # Asked for every frame, edge-only ones included: a due retry is used up either way.
        offload_allowed = self.scheduler.offload_allowed()
        no_next_tier = self.feature_pub.get_subscription_count() == 0
        if edge_only or no_next_tier or not offload_allowed:
            self.finish_locally(pending, fallback=not edge_only)
            return
        header = pending.frame.header
        frame = self.detector.edge(pending.frame.image, cut, spec)
        msg = frame_to_msg(frame, FeatureMap(header=header,
                                             frame_seq=pending.decision.frame_seq if pending.decision else 0))
        msg.run_until_layer = -1
        msg.edge_cut_after_layer = msg.cut_after_layer
        msg.executed_on = "" if cut.is_image_offload else "edge"
        if (pending.decision is not None and cut.after_layer is not None
                and pending.decision.fog_until_layer > cut.after_layer):
            msg.run_until_layer = pending.decision.fog_until_layer
        timings = msg.timings
        timings.captured = header.stamp
        timings.ingested = to_time_msg(pending.frame.ingest_s)
        timings.decision_ms = pending.decision.decision_ms if pending.decision else 0.0
        timings.edge_ms, timings.encode_ms = frame.edge_ms, frame.encode_ms
        timings.edge_sent = to_time_msg(now_s())
        self.scheduler.mark_sent(pending)  # keeps the image, so a silent next tier cannot lose the frame
        try:
            self.feature_pub.publish(msg)
        except Exception as error:  # RELIABLE publish can raise when the queue is saturated
            self.scheduler.send_failed(pending)
            self.get_logger().warning(f"publish failed ({error!r}); finishing locally")
            self.finish_locally(pending, fallback=True)
            return
        self.stats.offloaded(frame.payload_bytes)

    def finish_locally(self, pending: Pending, fallback: bool) -> None:
        header = pending.frame.header
        start = time.perf_counter()
        detections = self.detector.detect(pending.frame.image)
        out = DetectionArray(header=header, model_id=self.detector.model_id,
                             cut_after_layer=self.detector.num_layers - 1, fog_until_layer=-1,
                             codec="none", executed_on=EXECUTED_ON_EDGE_FALLBACK if fallback else EXECUTED_ON_EDGE)
        out.detections = detections_to_msgs(detections)
        out.timings.captured = header.stamp
        out.timings.ingested = to_time_msg(pending.frame.ingest_s)
        out.timings.decision_ms = pending.decision.decision_ms if pending.decision else 0.0
        out.timings.edge_ms = (time.perf_counter() - start) * 1e3
        out.timings.total_ms = (now_s() - pending.frame.ingest_s) * 1e3
        self.detections_pub.publish(out)
        self.outputs.publish(out)
        self.stats.detected(out.timings.total_ms, fallback=fallback)

    def publish_stats(self) -> None:
        counters, drops = publish_stage_stats(self, self.stats, self.stats_pub)
        state = self.scheduler.state()
        # The policies' edge queue: frames a new frame would wait behind because of its own choice.
        # Only timed-out frames are: the slot's frame is superseded by the new one, and the frame in
        # progress delays every choice alike. Counting the slot (before stop 14) made the edge look
        # twice as slow whenever it was busy, and greedy alternated edge and image at 1 Mbit/s.
        self.queue_pub.publish(UInt32(data=state.fallbacks))
        problems = [f"partitioner silent: running default_cut {self.default_cut}"] if state.partitioner_silent else []
        level, message = stage_status(self.drop_watch.since_last(drops), state.next_tier_silent, problems)
        self.diagnostics.update(level, message, in_flight=state.in_flight, **counters)

    def deactivate(self) -> None:
        self.scheduler.shutdown()
        self.worker.join(timeout=5.0)
        self.worker = None

    def release(self) -> None:
        self.detector = None


def main(args=None) -> None:
    run_node(EdgeNode, args)


if __name__ == "__main__":
    main()
