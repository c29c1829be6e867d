"""The in-process observer of ``l2p run``: per-frame lines, the summary, optional bag recording.

Every camera frame is accounted for (invariant 4): detected (by the edge, the cloud, or the edge
after a cloud timeout), dropped by the edge with a reason, or still in flight when the run ended.
A later tier's drop is reported too, but the frame it dropped is finished by the edge after its
timeout, so it counts as detected.

A run without end (``l2p run --loop``) must not grow: with ``retain_s`` the observer folds frames
whose stamp is more than that behind the newest into counters, keeping of each only its stamp and
latency (8 bytes; per-minute percentiles come from them); a result that arrives for a folded frame
is a late duplicate. Measured before: 3.3 MB a minute with every record kept.
"""
from __future__ import annotations

import statistics
import threading
from array import array
from collections import Counter
from dataclasses import dataclass, field

from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile
from rclpy.serialization import serialize_message
from sensor_msgs.msg import Image

from l2p_msgs.msg import DetectionArray, EdgeLoad, NetworkState, PartitionDecision, PipelineStats
from l2p_ros.nodes.common import DETECTIONS_QOS, FRAME_QOS, IMAGE_SUB_QOS, STATE_QOS, from_time_msg, stamp_key

RECORDED = (("l2p/detections", DetectionArray, "l2p_msgs/msg/DetectionArray"),
            ("l2p/decision", PartitionDecision, "l2p_msgs/msg/PartitionDecision"),
            ("l2p/pipeline_stats", PipelineStats, "l2p_msgs/msg/PipelineStats"),
            ("l2p/edge/stats", PipelineStats, "l2p_msgs/msg/PipelineStats"),
            # What the partitioner decided on, over time (the edge's load and queue, the link's
            # estimate): recorded only.
            ("l2p/edge_load", EdgeLoad, "l2p_msgs/msg/EdgeLoad"),
            ("l2p/network_state", NetworkState, "l2p_msgs/msg/NetworkState"))
RECORDED_ONLY = (EdgeLoad, NetworkState)
# The run's accounting reads every result and decision, so its readers hold many more than their
# writers keep: a reader's history overflowing while this process is busy (not spinning) loses
# samples without a trace (measured: 200 results published unspun, 32 kept, and rmw's message_lost
# event does not fire for it). 1,000 is half a minute at 30 fps.
ACCOUNTING_DEPTH = 1000


def _deeper(profile: QoSProfile) -> QoSProfile:
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=max(profile.depth, ACCOUNTING_DEPTH),
                      reliability=profile.reliability, durability=profile.durability)


@dataclass
class FrameRecord:
    stamp_s: float
    cut: int = 0
    codec: str = ""
    executed_on: str = ""
    detections: list = field(default_factory=list)
    boxes: list = field(default_factory=list)  # (class_id, label, score, x1, y1, x2, y2) pixels
    timings: dict = field(default_factory=dict)
    decision_cut: int | None = None
    decision_bandwidth_mbps: float | None = None  # the uplink estimate the policy decided on
    decision_rtt_ms: float | None = None
    predicted_total_ms: float | None = None


class PipelineObserver(Node):
    def __init__(self, image_topic: str = "camera/image_raw", recorder=None, print_frames: bool = True,
                 namespace: str = "", retain_s: float | None = None, backhaul_state_topic: str = ""):
        """``namespace``: a fleet vehicle's (its topics are ``/<namespace>/...``); "" = the root.
        ``retain_s``: keep whole records of the last this many seconds of frames only (None: all).
        ``backhaul_state_topic``: a second link's NetworkState (a fog's backhaul), watched so a run can
        wait for it to be measured too."""
        super().__init__("l2p_observer", namespace=f"/{namespace}" if namespace else None)
        self.vehicle = namespace
        self.recorder = recorder
        self.print_frames = print_frames
        self.lock = threading.Lock()
        self.frames_seen: set[tuple[int, int]] = set()
        self.results: dict[tuple[int, int], FrameRecord] = {}
        self.duplicates = 0
        self.decisions: dict[tuple[int, int], PartitionDecision] = {}
        self.stats: dict[str, PipelineStats] = {}
        self.links_measured: set[str] = set()  # NetworkState topics whose monitor has an estimate
        self.retain_s = retain_s
        self.folded_until: tuple[int, int] = (-1, 0)  # every frame stamped at or before this is folded
        self.folded_seen = 0
        self.folded_detected = 0
        self.folded_executed_on: Counter = Counter()
        self.folded_cuts: Counter = Counter()
        self.folded_stamps_s = array("d")
        self.folded_totals_ms = array("f")
        self.create_subscription(Image, image_topic, self.on_image, IMAGE_SUB_QOS)
        self.link_state_topics = ["l2p/network_state"] + ([backhaul_state_topic] if backhaul_state_topic else [])
        if backhaul_state_topic:
            self.create_subscription(NetworkState, backhaul_state_topic,
                                     lambda m: self.on_message(backhaul_state_topic, "l2p_msgs/msg/NetworkState", m),
                                     STATE_QOS)
        for topic, msg_type, type_name in RECORDED:
            qos = {PipelineStats: STATE_QOS, DetectionArray: _deeper(DETECTIONS_QOS), EdgeLoad: STATE_QOS,
                   NetworkState: STATE_QOS}.get(msg_type, _deeper(FRAME_QOS))
            self.create_subscription(msg_type, topic, lambda m, t=topic, n=type_name: self.on_message(t, n, m), qos)

    def on_image(self, msg: Image) -> None:
        key = stamp_key(msg.header)
        with self.lock:
            self.frames_seen.add(key)
            if self.retain_s is not None:
                self._fold_before(key[0] + key[1] * 1e-9 - self.retain_s)

    def _fold_before(self, horizon_s: float) -> None:
        """Fold every frame stamped before ``horizon_s`` into the counters (lock held)."""
        old = sorted(key for key in self.frames_seen if key[0] + key[1] * 1e-9 < horizon_s)
        if not old:
            return
        for key in old:
            self.frames_seen.discard(key)
            self.decisions.pop(key, None)
            record = self.results.pop(key, None)
            self.folded_seen += 1
            if record is not None:
                self.folded_detected += 1
                self.folded_executed_on[record.executed_on] += 1
                self.folded_cuts[str(record.cut)] += 1
                self.folded_stamps_s.append(record.stamp_s)
                self.folded_totals_ms.append(record.timings["total_ms"])
        self.folded_until = max(self.folded_until, old[-1])
        # Results and decisions of frames this observer never saw (its image lost on the way) go too.
        for table in (self.results, self.decisions):
            for key in [key for key in table if key <= self.folded_until]:
                del table[key]

    def on_message(self, topic: str, type_name: str, msg) -> None:
        if self.recorder is not None:
            stamp_ns = self.get_clock().now().nanoseconds
            with self.lock:
                # Recorded under the fully qualified name, as `ros2 bag record` would.
                name = f"/{self.vehicle}/{topic.lstrip('/')}" if self.vehicle else "/" + topic.lstrip("/")
                self.recorder.write(name, type_name, serialize_message(msg), stamp_ns)
        if isinstance(msg, NetworkState) and msg.link_up and msg.bandwidth_mbps > 0:
            self.links_measured.add(topic)  # answered, and a rate estimated
        if isinstance(msg, RECORDED_ONLY):
            return
        if isinstance(msg, PipelineStats):
            self.stats[topic] = msg
        elif isinstance(msg, PartitionDecision):
            self.decisions[stamp_key(msg.header)] = msg
        else:
            self.on_detections(msg)

    def on_detections(self, msg: DetectionArray) -> None:
        key = stamp_key(msg.header)
        t = msg.timings
        record = FrameRecord(from_time_msg(msg.header.stamp), msg.cut_after_layer, msg.codec, msg.executed_on,
                             [(d.label, round(d.score, 2)) for d in msg.detections],
                             [(d.class_id, d.label, d.score, d.center_x - d.size_x / 2, d.center_y - d.size_y / 2,
                               d.center_x + d.size_x / 2, d.center_y + d.size_y / 2) for d in msg.detections],
                             {"edge_ms": t.edge_ms, "encode_ms": t.encode_ms, "transfer_ms": t.transfer_ms,
                              "decode_ms": t.decode_ms, "cloud_ms": t.cloud_ms, "total_ms": t.total_ms,
                              "decision_ms": t.decision_ms})
        decision = self.decisions.get(key)
        if decision is not None:
            record.decision_cut = decision.cut_after_layer
            record.decision_bandwidth_mbps = decision.bandwidth_mbps
            record.decision_rtt_ms = decision.rtt_ms
            record.predicted_total_ms = decision.predicted_total_ms
        with self.lock:
            if key in self.results or key <= self.folded_until:
                self.duplicates += 1  # a late cloud answer for a frame the edge already finished
                return
            self.results[key] = record
            index = len(self.results) + self.folded_detected
        if self.print_frames:
            labels = Counter(label for label, _ in record.detections)
            print(f"{self.vehicle + ' ' if self.vehicle else ''}{index:>5} cut {record.cut:>4} {record.executed_on:<16} {record.codec:<18} "
                  f"edge {t.edge_ms:6.1f} enc {t.encode_ms:5.2f} xfer {t.transfer_ms:6.1f} "
                  f"cloud {t.cloud_ms:6.1f} total {t.total_ms:7.1f} ms  "
                  + ", ".join(f"{n} {label}" for label, n in sorted(labels.items())), flush=True)

    def summary(self) -> dict:
        with self.lock:
            records = list(self.results.values())
            seen = len(self.frames_seen) + self.folded_seen
            detected = len(self.results) + self.folded_detected
            totals = list(self.folded_totals_ms) + [r.timings["total_ms"] for r in records]
            executed_on = self.folded_executed_on + Counter(r.executed_on for r in records)
            cuts = self.folded_cuts + Counter(str(r.cut) for r in records)
        drops: Counter = Counter()
        for topic, stats in self.stats.items():
            for drop in stats.drops:
                drops[f"{topic.split('/')[1] if topic != 'l2p/pipeline_stats' else 'cloud'}:{drop.reason}"] += drop.count
        edge_stats = self.stats.get("l2p/edge/stats")
        # The edge's counters arrive once a second; the frames this observer saw are never older.
        frames_in = max(edge_stats.frames_in if edge_stats else 0, seen)
        # Only the edge's drops end a frame. One a later tier drops (cloud_backlog, ...) is not lost:
        # the edge keeps every frame it sent until detections come, and finishes it itself after
        # cloud_timeout_s, so it is counted once, as detected (it was counted twice, measured: -1
        # unaccounted). The later tiers' drops are still reported in ``drops``, with messages that
        # were no camera frame (a malformed FeatureMap from elsewhere).
        dropped = sum(count for stage_reason, count in drops.items() if stage_reason.startswith("edge:"))
        return {
            "frames_captured_seen": seen,
            "frames_in_edge": int(frames_in),
            "frames_detected": detected,
            "frames_dropped": int(dropped),
            "drops": dict(drops),
            "unaccounted": int(frames_in) - detected - int(dropped),
            # The edge's own count of the frames it published a result for: above frames_detected, the gap
            # is in delivery to this reader, not in the pipeline.
            "edge_frames_published": int(edge_stats.frames_detected) if edge_stats else 0,
            "late_duplicate_results": self.duplicates,
            "executed_on": dict(executed_on),
            "cuts": dict(cuts),
            "latency_mean_ms": statistics.mean(totals) if totals else None,
            "latency_p95_ms": sorted(totals)[int(0.95 * (len(totals) - 1))] if totals else None,
            "cloud_payload_bytes_mean": self.stats["l2p/pipeline_stats"].payload_bytes_mean
            if "l2p/pipeline_stats" in self.stats else None,
        }

    def timeline(self) -> list[dict]:
        with self.lock:
            return [{"stamp_s": r.stamp_s, "cut": r.cut, "executed_on": r.executed_on, **r.timings,
                     "detections": len(r.detections), "boxes": r.boxes,
                     "decision_cut": r.decision_cut, "decision_bandwidth_mbps": r.decision_bandwidth_mbps,
                     "decision_rtt_ms": r.decision_rtt_ms, "predicted_total_ms": r.predicted_total_ms}
                    for r in sorted(self.results.values(), key=lambda r: r.stamp_s)]

    def decision_timeline(self) -> list[dict]:
        """Every decision seen, by the capture stamp of its frame: also those of frames dropped later."""
        with self.lock:
            decisions = list(self.decisions.values())
        return sorted(({"stamp_s": from_time_msg(d.header.stamp), "cut": d.cut_after_layer,
                        "fog_until_layer": d.fog_until_layer, "bandwidth_mbps": d.bandwidth_mbps,
                        "fog_cloud_bandwidth_mbps": d.fog_cloud_bandwidth_mbps,
                        "edge_cpu_percent": d.edge_cpu_percent, "predicted_total_ms": d.predicted_total_ms,
                        "predicted_edge_ms": d.predicted_edge_ms, "edge_time_factor": d.edge_time_factor,
                        "link_arrival_scv": d.link_arrival_scv, "link_queue_now_ms": d.link_queue_now_ms,
                        "stale_inputs": list(d.stale_inputs)}
                       for d in decisions), key=lambda row: row["stamp_s"])

    def latencies(self) -> list[tuple[float, float]]:
        """(source stamp s, total_ms) of every detected frame, folded ones included, by stamp."""
        with self.lock:
            pairs = list(zip(self.folded_stamps_s, self.folded_totals_ms))
            pairs += [(r.stamp_s, r.timings["total_ms"]) for r in self.results.values()]
        return sorted(pairs)

    def frame_stamps(self) -> list[float]:
        """Capture stamps of every camera frame seen, in seconds."""
        with self.lock:
            return sorted(sec + nsec * 1e-9 for sec, nsec in self.frames_seen)
