"""Partitioner node: per frame, measures complexity, reads the monitors' state, runs the policy.

Publishes one PartitionDecision per camera frame (same header stamp, so the edge can match them)
and the frame's FrameComplexity. With a fog tier (``fog_profile`` or ``fog_speed_factor``) the
cost model predicts edge -> fog -> cloud, the NetworkState is the edge -> fog link, the fog ->
cloud link is the NetworkState of ``fog_cloud_link`` (a monitor on the fog) or else the nominal
``fog_cloud_*`` parameters, and ``score`` searches (i, j) cuts.
"""
from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path

from rcl_interfaces.msg import SetParametersResult
from rclpy.node import Node
from sensor_msgs.msg import Image

from l2p_msgs.msg import DetectionArray, EdgeLoad, FrameComplexity, NetworkState, PartitionDecision
from l2p_ros.bottleneck_file import BottleneckError
from l2p_ros.codec_spec import CODECS, CodecSpec
from l2p_ros.complexity import ComplexityMeter
from l2p_ros.deployment import Deployment, build_cost_model, with_cloud_share
from l2p_ros.measure.cache import ensure_payload_fit
from l2p_ros.measure.frame_costs import FrameCostsError
from l2p_ros.measure.models import model_id
from l2p_ros.measure.payload_fit import RAW_IMAGE, load_payload_fit
from l2p_ros.measure.profile import ProfileError
from l2p_ros.monitoring.edge_speed import DEFAULT_CALIBRATE_EDGE, EdgeSpeed
from l2p_ros.monitoring.freshness import Freshness
from l2p_ros.monitoring.link_arrivals import DEFAULT_LINK_ARRIVALS, LINK_ARRIVAL_MODES, LinkArrivals, charged_scv
from l2p_ros.monitoring.link_backlog import DEFAULT_LINK_BACKLOG, LINK_BACKLOG_MODES, LinkBacklog
from l2p_ros.monitoring.power import PowerCalibrator
from l2p_ros.monitoring.state import AssumedLinks, monitor_load, system_state
from l2p_ros.monitoring.uplink_rtt import DEFAULT_LINK_BUFFER_MS, DEFAULT_LINK_RTT, LINK_RTT_MODES, UplinkRtt
from l2p_ros.nodes.common import (DETECTIONS_QOS, EXECUTED_ON_EDGE, EXECUTED_ON_EDGE_FALLBACK, FRAME_QOS,
                                  IMAGE_SUB_QOS, STATE_QOS, Diagnostics, LiveParameters, as_declared, bounded,
                                  declare, from_time_msg, parameter_error, positive, run_node, stamp_key)
from l2p_ros.nodes.images import msg_to_image
from l2p_ros.nodes.model_params import declare_model
from l2p_ros.nodes.probe_echo import link_topics
from l2p_ros.policies.cloud_batching import CloudBatching, CloudShare
from l2p_ros.policies.registry import POLICY_NAMES, make_policy
from l2p_ros.policies.types import Partition


class PartitionerNode(Node):
    def __init__(self):
        super().__init__("partitioner_node")
        model, input_size = declare_model(self)
        self.model_id = model_id(model, input_size)
        policy_name = declare(self, "policy", "greedy", ", ".join(POLICY_NAMES) + " (live)", live=True)
        edge_profile = declare(self, "edge_profile", "", "edge profile YAML ('' = measure or reuse this host's)")
        cloud_profile = declare(self, "cloud_profile", "",
                                "cloud profile YAML ('' = the edge profile sped up by cloud_speed_factor, labelled derived)")
        cloud_speed_factor = declare(self, "cloud_speed_factor", 1.0, "cloud speed relative to the edge profile")
        payload_fit = declare(self, "payload_fit", "",
                              "payload bytes by frame complexity: a fit YAML, 'auto' (measure on real frames "
                              "once and cache) or '' (the profile's single-frame sizes)")
        codec = declare(self, "codec", "fp32", "codec for tensor cuts (live)", live=True)
        bottlenecks = declare(self, "bottlenecks", "", "learned bottlenecks the policies may choose, each at its "
                              "own cut: comma-separated names (models/bottleneck/) or paths (NAME+ctx: its codes "
                              "range-coded); give the edge and cloud nodes the same")
        image_codec = declare(self, "image_codec", "jpeg-q75", "codec for image offload (live)", live=True)
        frame_interval_ms = declare(self, "frame_interval_ms", 100.0, "camera period, for throughput-aware policies",
                                    minimum=0)
        default_bandwidth_mbps = declare(self, "default_bandwidth_mbps", 20.0,
                                         "uplink assumed until a NetworkState arrives (live)", live=True, minimum=0)
        default_rtt_ms = declare(self, "default_rtt_ms", 20.0, "RTT assumed until a NetworkState arrives (live)",
                                 live=True, minimum=0)
        fog_profile = declare(self, "fog_profile", "", "three tiers: the fog's profile YAML ('' = fog_speed_factor)")
        fog_speed_factor = declare(self, "fog_speed_factor", 0.0, "three tiers: a fog this many times the edge "
                                   "profile's speed, labelled derived; 0 and no fog_profile = two tiers", minimum=0)
        fog_codec = declare(self, "fog_codec", "fp32", "three tiers: the codec the fog forwards tensors with "
                            "(the fog node's fog_codec)")
        fog_cloud_bandwidth_mbps = declare(self, "fog_cloud_bandwidth_mbps", 1000.0,
                                           "three tiers: the fog -> cloud link's bandwidth (nominal)")
        fog_cloud_rtt_ms = declare(self, "fog_cloud_rtt_ms", 5.0, "three tiers: the fog -> cloud RTT (nominal)",
                                   minimum=0)
        fog_cloud_link = declare(self, "fog_cloud_link", "", "three tiers: the probe_link a monitor on the fog "
                                 "measures the fog -> cloud link on (e.g. backhaul); '' = the nominal values")
        self.live = LiveParameters(self)
        state_max_age_s = self.live.declare(
            "state_max_age_s", 3.0, "a NetworkState or EdgeLoad older than this is stale (its monitor died): "
            "decide on the assumed defaults instead, and say so, seconds (live)",
            apply=lambda value: setattr(self.freshness, "max_age_s", value),
            check=positive)
        threads = declare(self, "profile_threads", 2, "torch threads when this node measures the edge profile")
        fleet_vehicles = declare(self, "fleet_vehicles", 1, "vehicles (this one included) sharing the cloud, which "
                                 "batches their frames: the cost model then predicts the shared cloud's time "
                                 "(1 = the cloud is this vehicle's alone)", minimum=1)
        cloud_max_batch = declare(self, "cloud_max_batch", 1, "with fleet_vehicles > 1: the cloud's max_batch", minimum=1)
        cloud_batching = declare(self, "cloud_batching", "", "with fleet_vehicles > 1: the cloud's measured batch "
                                 "curves (models/profiles/cloud-batching-*.yaml, bench/cloud_batching.py)")
        frame_costs = declare(self, "frame_costs", "committed", "measured complexity, decision, encoding and "
                              "decoding times the policies charge: a frame-costs YAML, 'committed' (the "
                              "repository's for the model, none where it has none) or 'none'")
        image_topic = declare(self, "image_topic", "camera/image_raw", "input sensor_msgs/Image topic")
        link_rtt = declare(self, "link_rtt", DEFAULT_LINK_RTT, "the uplink RTT the policies charge: 'own-queue' (the "
                           "lowest of the last 10 s, and each option the queue its own frames would leave on the "
                           "link once chosen), 'floor' (that lowest RTT alone) or 'smoothed' (the network "
                           "monitor's, with the queue the current choice built)", choices=LINK_RTT_MODES)
        link_buffer_ms = declare(self, "link_buffer_ms", DEFAULT_LINK_BUFFER_MS, "with link_rtt own-queue: how long a full uplink "
                                 "queue holds a frame until the monitor's RTT has shown a deeper one, ms")
        if not (math.isfinite(link_buffer_ms) and link_buffer_ms > 0):
            raise parameter_error(self, "link_buffer_ms", link_buffer_ms, "must be > 0")
        link_arrivals = declare(self, "link_arrivals", DEFAULT_LINK_ARRIVALS, "with link_rtt own-queue: how "
                                "irregularly frames reach the uplink, for the wait its queue charges: 'poisson' "
                                "(as if at random: M/D/1's wait) or 'measured' (the recent offloaded frames' "
                                "send stamps in l2p/detections: Kingman's G/D/1 wait)", choices=LINK_ARRIVAL_MODES)
        link_backlog = declare(self, "link_backlog", DEFAULT_LINK_BACKLOG, "with link_rtt own-queue: 'decided' "
                               "caps each option's own queue at the backlog this node's decisions leave on the link "
                               "now (their predicted edge and sending times), so the image is cheap while the link "
                               "is empty and dear while it is full; 'off' no cap", choices=LINK_BACKLOG_MODES)
        calibrate_edge = declare(self, "calibrate_edge", DEFAULT_CALIBRATE_EDGE, "scale the predicted edge times by how much longer "
                                 "the edge's layers and encoding took on the recent frames (l2p/detections) than "
                                 "predicted (measured and published either way: edge_time_factor); false: the "
                                 "profile and the load monitor alone")
        if cloud_speed_factor <= 0:
            raise parameter_error(self, "cloud_speed_factor", cloud_speed_factor, "must be > 0")
        if not fog_cloud_bandwidth_mbps > 0:
            raise parameter_error(self, "fog_cloud_bandwidth_mbps", fog_cloud_bandwidth_mbps, "must be > 0")
        self.assumed_links = AssumedLinks(default_bandwidth_mbps, default_rtt_ms, fog_cloud_bandwidth_mbps,
                                          fog_cloud_rtt_ms)

        deployment = Deployment(model, input_size, edge_profile=Path(edge_profile) if edge_profile else None,
                                cloud_profile=Path(cloud_profile) if cloud_profile else None,
                                cloud_speed_factor=cloud_speed_factor,
                                fog_profile=Path(fog_profile) if fog_profile else None,
                                fog_speed_factor=fog_speed_factor, fog_codec=fog_codec, profile_threads=threads,
                                bottlenecks=tuple(filter(None, (b.strip() for b in bottlenecks.split(",")))),
                                frame_costs=frame_costs)
        try:
            fit = None
            if payload_fit:
                # The configured image codec measured too (jpeg-dnn-qN, other qualities): on first use
                # the cached fit is measured again with it.
                codecs = tuple(dict.fromkeys((*CODECS, RAW_IMAGE, image_codec)))
                fit = load_payload_fit(ensure_payload_fit(model, input_size, codecs=codecs, log=self.get_logger().info)
                                       if payload_fit == "auto" else payload_fit)
            self.cost_model, sources = build_cost_model(deployment, fit, log=self.get_logger().info)
        except BottleneckError as error:
            raise parameter_error(self, "bottlenecks", bottlenecks, str(error)) from None
        except FrameCostsError as error:  # before ProfileError, which it is
            raise parameter_error(self, "frame_costs", frame_costs, str(error)) from None
        except ProfileError as error:
            raise parameter_error(self, "edge_profile/cloud_profile/fog_profile/payload_fit",
                                  f"{edge_profile}/{cloud_profile}/{fog_profile}/{payload_fit}", str(error)) from None
        if self.cost_model.has_fog:  # the fog's codec must have payload sizes: fail now, not on a frame
            try:
                self.cost_model.payload_bytes(self.cost_model.chain_cut(0), fog_codec, 0.5)
            except ProfileError as error:
                raise parameter_error(self, "fog_codec", fog_codec, str(error)) from None
        if fleet_vehicles > 1:  # the policies predict a cloud shared by a batching fleet
            if not cloud_batching:
                raise parameter_error(self, "cloud_batching", "", "fleet_vehicles > 1 needs the cloud's batch curves")
            try:
                share = CloudShare(fleet_vehicles, 1e3 / frame_interval_ms, cloud_max_batch,
                                   CloudBatching.load(cloud_batching))
            except (ValueError, FileNotFoundError) as error:
                raise parameter_error(self, "cloud_batching", cloud_batching, str(error)) from None
            self.cost_model = with_cloud_share(self.cost_model, share)
            self.get_logger().info(f"the cloud is shared by {fleet_vehicles} vehicles, batches up to {cloud_max_batch} "
                                   f"(curves measured on {share.batching.machine})")
        self.frame_interval_ms = frame_interval_ms
        self.choice = {"policy": policy_name, "codec": codec, "image_codec": image_codec}
        try:
            self.policy = self.make_policy(**self.choice)
        except ValueError as error:
            raise parameter_error(self, "policy/codec/image_codec", f"{policy_name}/{codec}/{image_codec}",
                                  str(error)) from None
        self._accepted = (self.choice, self.assumed_links, self.policy)
        self.add_on_set_parameters_callback(self.on_set_parameters)
        self.add_post_set_parameters_callback(self.after_set_parameters)

        self.meter = ComplexityMeter()
        self.power_calibrator = PowerCalibrator()
        self.network: NetworkState | None = None
        self.load: EdgeLoad | None = None
        self.freshness = Freshness(("network", "load") + (("backhaul",) if fog_cloud_link else ()), state_max_age_s)
        self.decisions = 0
        self.decision_pub = self.create_publisher(PartitionDecision, "l2p/decision", FRAME_QOS)
        self.complexity_pub = self.create_publisher(FrameComplexity, "l2p/frame_complexity", STATE_QOS)
        self.create_subscription(Image, image_topic, self.on_image, IMAGE_SUB_QOS)
        self.create_subscription(NetworkState, "l2p/network_state", self.on_network, STATE_QOS)
        self.backhaul: NetworkState | None = None
        if fog_cloud_link:
            if not self.cost_model.has_fog:
                raise parameter_error(self, "fog_cloud_link", fog_cloud_link,
                                      "a backhaul needs a fog tier: set fog_profile or fog_speed_factor")
            try:
                backhaul_topic = link_topics(fog_cloud_link).state
            except ValueError as error:
                raise parameter_error(self, "fog_cloud_link", fog_cloud_link, str(error)) from None
            self.create_subscription(NetworkState, backhaul_topic, self.on_backhaul, STATE_QOS)
        self.create_subscription(EdgeLoad, "l2p/edge_load", self.on_load, STATE_QOS)
        # The edge's measured times against what was predicted for them (monitoring/edge_speed.py):
        # per decided frame, the edge-node time predicted at the monitor's load, for its partition
        # and for edge only (a frame the edge finishes itself after a timeout). Applied with the
        # link's RTT as it is (smoothed), the accurate edge made choices worse where the queue the
        # current choice built was charged to every option (docs/testbed.md, experiment 8); with
        # each option's own queue (own-queue, the default) it did not (experiment 9).
        self.calibrate_edge = calibrate_edge
        self.uplink_rtt = UplinkRtt(link_rtt, link_buffer_ms)
        self.edge_speed = EdgeSpeed()
        self.link_arrivals_mode = link_arrivals
        self.link_arrivals = LinkArrivals()  # measured whatever the mode (monitoring/link_arrivals.py)
        if link_backlog == "decided" and not frame_interval_ms > 0:
            raise parameter_error(self, "link_backlog", link_backlog, "needs frame_interval_ms > 0 (the camera's "
                                  "period spaces the frames it models)")
        # Kept only where it caps something: it models the edge as the latest-frame slot it is.
        self.link_backlog = LinkBacklog(frame_interval_ms / 1e3) \
            if link_backlog == "decided" and self.uplink_rtt.buffer_ms > 0 else None
        self._predicted_edge_ms: OrderedDict = OrderedDict()
        self.create_subscription(DetectionArray, "l2p/detections", self.on_detections, DETECTIONS_QOS)
        self.diagnostics = Diagnostics(self)
        self.get_logger().info(f"partitioner ready: policy {self.policy.name}, profile {sources['edge_profile']['file']}")

    def make_policy(self, policy: str, codec: str, image_codec: str):
        return make_policy(policy, self.cost_model, codec=codec, image_codec=image_codec,
                           frame_interval_ms=self.frame_interval_ms)

    def on_set_parameters(self, parameters) -> SetParametersResult:
        """``ros2 param set`` of a live parameter: applied from the next frame on, or refused with the
        reason, keeping the old value (the change is all or nothing)."""
        choice, assumed = dict(self.choice), self.assumed_links
        where = ""
        try:
            for parameter in parameters:
                where = f"{parameter.name}={bounded(parameter.value)!r}"
                if parameter.name in choice:
                    choice[parameter.name] = as_declared("", parameter.value)
                elif parameter.name in ("default_bandwidth_mbps", "default_rtt_ms"):
                    value = as_declared(0.0, parameter.value)
                    if not value >= 0:
                        raise ValueError("must be >= 0")
                    field = "bandwidth_mbps" if parameter.name == "default_bandwidth_mbps" else "rtt_ms"
                    assumed = replace(assumed, **{field: value})
            where = ", ".join(f"{key}={value!r}" for key, value in choice.items())
            CodecSpec.parse(choice["codec"]), CodecSpec.parse(choice["image_codec"])  # names, before any frame
            policy = self.make_policy(**choice) if choice != self.choice else self.policy
        except ValueError as error:
            return SetParametersResult(successful=False, reason=f"{where}: {error}")
        self._accepted = (choice, assumed, policy)  # applied once every callback accepted the request
        return SetParametersResult(successful=True)

    def after_set_parameters(self, parameters) -> None:
        choice, assumed, policy = self._accepted
        if (choice, assumed) == (self.choice, self.assumed_links):
            return  # the request set none of this callback's parameters
        self.choice, self.assumed_links, self.policy = choice, assumed, policy
        self.get_logger().info(f"parameters set live: policy {policy.name}, codec {choice['codec']}, "
                               f"image codec {choice['image_codec']}, assumed link {assumed.bandwidth_mbps:g} Mbit/s "
                               f"{assumed.rtt_ms:g} ms")

    def on_network(self, msg: NetworkState) -> None:
        self.network = msg
        self.freshness.arrived("network")
        if msg.link_up:
            self.uplink_rtt.add(msg.rtt_ms)

    def on_backhaul(self, msg: NetworkState) -> None:
        self.backhaul = msg
        self.freshness.arrived("backhaul")

    def on_load(self, msg: EdgeLoad) -> None:
        self.load = msg
        self.freshness.arrived("load")
        # Measured edge power when the load monitor can read it: a Jetson's board power against the
        # busier of CPU and GPU, else NVML on a GPU edge, else RAPL.
        busy = [v for v in (msg.cpu_percent, msg.gpu_percent) if math.isfinite(v)]
        if msg.board_power_w > 0 and math.isfinite(msg.board_power_w) and busy:  # 0: a sender that never set it
            self.power_calibrator.sensor = "INA3221 (jetson-stats)"
            self.power_calibrator.add(max(busy) / 100.0, msg.board_power_w)
        elif math.isfinite(msg.gpu_power_w) and math.isfinite(msg.gpu_percent):
            self.power_calibrator.sensor = "NVML"
            self.power_calibrator.add(msg.gpu_percent / 100.0, msg.gpu_power_w)
        elif math.isfinite(msg.cpu_package_power_w):
            self.power_calibrator.add(msg.cpu_percent / 100.0, msg.cpu_package_power_w)
        if len(self.power_calibrator) and len(self.power_calibrator) % 10 == 0:
            measured = self.power_calibrator.model(self.cost_model.power)
            if measured is not None:
                if not self.cost_model.power.source.startswith("measured"):
                    self.get_logger().info(f"edge power model now {measured.source}: idle "
                                           f"{measured.idle_w:.1f} W, active {measured.active_w:.1f} W")
                self.cost_model.power = measured

    def on_detections(self, msg: DetectionArray) -> None:
        """A frame's result from the edge: what its layers and encoding took there, for EdgeSpeed."""
        predicted = self._predicted_edge_ms.pop(stamp_key(msg.header), None)
        if predicted is None:  # a frame decided before this node started, or a late second answer
            return
        partition_ms, edge_only_ms = predicted
        ran_all = msg.executed_on in (EXECUTED_ON_EDGE, EXECUTED_ON_EDGE_FALLBACK)
        sent = msg.timings.edge_sent
        if not ran_all and (sent.sec or sent.nanosec):  # it crossed the uplink, stamped (in three tiers
            self.link_arrivals.add(from_time_msg(sent))  # the fog restamps what it forwards)
        measured_ms = msg.timings.edge_ms + (0.0 if ran_all else msg.timings.encode_ms)
        self.edge_speed.add(measured_ms, edge_only_ms if ran_all else partition_ms)

    def _remember_prediction(self, msg: Image, partition: Partition, monitor_slowdown: float) -> None:
        model = self.cost_model
        self._predicted_edge_ms[stamp_key(msg.header)] = (
            model.edge_node_ms(partition) * monitor_slowdown,
            model.edge_node_ms(Partition.edge_only(model.num_layers)) * monitor_slowdown)
        while len(self._predicted_edge_ms) > 256:  # frames the edge dropped as stale never answer
            self._predicted_edge_ms.popitem(last=False)

    def fresh_inputs(self, stale: list[str]) -> dict:
        """The monitors' latest states by input name, a stale one as missing (the assumed link, no load)."""
        inputs = {"network": self.network, "load": self.load, "backhaul": self.backhaul}
        return {name: None if name in stale else value for name, value in inputs.items()}

    def _say_staleness(self, stale: list[str]) -> None:
        became, recovered = self.freshness.changes(stale)
        for name in became:
            age_s = self.freshness.age_s(name)
            self.get_logger().warning(
                f"{name} state stale ({'never received' if age_s is None else f'{age_s:.1f} s old'}): "
                f"deciding on the assumed {'edge load 0' if name == 'load' else 'link'} until it comes back")
        for name in recovered:
            self.get_logger().info(f"{name} state fresh again")

    def on_image(self, msg: Image) -> None:
        start = time.perf_counter()
        try:
            image = msg_to_image(msg)
        except ValueError as error:
            self.get_logger().warning(f"cannot decide for a malformed image: {bounded(error)}", throttle_duration_sec=5.0)
            return  # the edge drops and counts the same frame
        metrics = self.meter.measure(image)
        stale = self.freshness.stale()
        self._say_staleness(stale)
        inputs = self.fresh_inputs(stale)
        edge_factor = self.edge_speed.factor
        arrival_scv = self.link_arrivals.scv
        queue_now_ms = self.link_backlog.queue_ms if self.link_backlog is not None else None
        state = system_state(metrics.complexity, inputs["network"], inputs["load"], self.assumed_links,
                             inputs["backhaul"], edge_time_factor=edge_factor if self.calibrate_edge else 1.0,
                             rtt_floor_ms=self.uplink_rtt.floor_ms, link_buffer_ms=self.uplink_rtt.buffer_ms,
                             frame_interval_ms=self.frame_interval_ms,
                             link_arrival_scv=charged_scv(arrival_scv, self.link_arrivals_mode),
                             link_queue_now_ms=queue_now_ms)
        partition = self.policy.decide(state)
        try:
            self._remember_prediction(msg, partition, self.cost_model.edge_slowdown(monitor_load(inputs["load"])))
        except ValueError:  # a partition the cost model cannot predict (said below)
            pass
        try:
            prediction = self.cost_model.predict(partition, state)
        except ValueError as error:  # e.g. a fixed three-tier split without a fog profile to predict it
            prediction = None
            self.get_logger().warning(f"no prediction for {partition}: {error}", throttle_duration_sec=30.0)
        if self.link_backlog is not None and prediction is not None:
            self.link_backlog.decided(float(prediction.edge_ms), float(prediction.send_ms), self.uplink_rtt.buffer_ms)
        decision_ms = (time.perf_counter() - start) * 1e3

        out = PartitionDecision(header=msg.header, frame_seq=self.decisions, policy=self.policy.name,
                                cut_after_layer=partition.cut_after_layer if partition.cut_after_layer is not None else -1,
                                fog_until_layer=partition.fog_until_layer if partition.fog_until_layer is not None else -1,
                                codec=partition.codec)
        if partition.edge_layers is not None:
            out.edge_layers = sorted(partition.edge_layers)
        # float()/int() everywhere: a wrong Python type aborts the process in rosidl's C conversion.
        nan = float("nan")
        out.predicted_edge_ms = float(prediction.edge_ms) if prediction else nan
        out.predicted_transfer_ms = float(prediction.transfer_ms) if prediction else nan
        out.predicted_cloud_ms = float(prediction.cloud_ms) if prediction else nan
        out.predicted_total_ms = float(prediction.total_ms) if prediction else nan
        out.predicted_edge_energy_j = float(prediction.edge_energy_j) if prediction else nan
        out.predicted_payload_bytes = int(min(prediction.payload_bytes, 2**32 - 1)) if prediction else 0
        out.bandwidth_mbps, out.rtt_ms = float(state.bandwidth_mbps), float(state.rtt_ms)
        three_tier = self.cost_model.has_fog
        out.fog_cloud_bandwidth_mbps = float(state.fog_cloud_bandwidth_mbps) if three_tier else nan
        out.fog_cloud_rtt_ms = float(state.fog_cloud_rtt_ms) if three_tier else nan
        out.frame_complexity = float(metrics.complexity)
        load = inputs["load"]
        out.edge_cpu_percent = float(load.cpu_percent) if load else nan
        out.edge_gpu_percent = float(load.gpu_percent) if load else nan
        out.edge_time_factor = float(edge_factor)
        out.link_arrival_scv = float(arrival_scv) if arrival_scv is not None else nan
        out.link_queue_now_ms = float(queue_now_ms) if queue_now_ms is not None else nan
        out.decision_ms = float(decision_ms)
        out.stale_inputs = stale
        self.decision_pub.publish(out)
        self.complexity_pub.publish(FrameComplexity(
            header=msg.header, frame_seq=self.decisions, entropy_bits=metrics.entropy_bits,
            jpeg_bytes=float(metrics.jpeg_bytes), spatial_information=metrics.spatial_information,
            temporal_information=metrics.temporal_information, complexity=metrics.complexity))
        self.decisions += 1
        self.diagnostics.update(1 if stale else 0,
                                f"deciding on assumed defaults, stale: {', '.join(stale)}" if stale else "running",
                                decisions=self.decisions, last_cut=out.cut_after_layer,
                                last_decision_ms=round(decision_ms, 3), policy=self.policy.name,
                                edge_time_factor=round(edge_factor, 3),
                                link_arrival_scv=round(arrival_scv, 3) if arrival_scv is not None else "not measured",
                                link_queue_now_ms=round(queue_now_ms, 1) if queue_now_ms is not None else "off")


def main(args=None) -> None:
    run_node(PartitionerNode, args)


if __name__ == "__main__":
    main()
