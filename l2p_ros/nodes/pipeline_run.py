"""One run of the live pipeline: start the nodes, watch every frame through, stop, summarise."""
from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

from l2p_ros.codec_spec import CodecSpec, bottleneck_source
from l2p_ros.nodes.dds import DDS_MODES, claim_domain_id, dds_description, use_local_dds
from l2p_ros.nodes.fastdds_shm import sweep
from l2p_ros.nodes.launcher import NodeSet, prepared_parameters, work_dir_for
from l2p_ros.stats import latency_per_minute

READY_TIMEOUT_S = 120.0
# A looping run keeps whole frame records this long (seconds of frames); older ones are folded into
# the observer's counters, so a run of hours does not grow. Far above any frame's time in flight.
LOOP_RETAIN_S = 60.0
STATS_PERIOD_S = 1.0  # how often the edge and the cloud publish their counters
LINK_WAIT_S = 15.0  # at most this long for the network monitor's first answered measurement


class _StopRequests:
    """Ctrl-C and `kill` as a request that the run's loop acts on between spins. A KeyboardInterrupt
    raised wherever the signal lands can break out of rclpy's C++ half way (a pybind11 conversion
    error instead of the interrupt was seen once, and the summary was lost) or out of a bag write
    half done. A second signal interrupts at once, for a run that does not stop."""

    def __init__(self):
        self.signum = None

    def __call__(self, signum, frame):
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum

    def check(self) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt


def shell_exit_code(returncode: int) -> int:
    """A process's exit status as a shell reports it: death by signal N is 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


def _is_edge(key: str) -> bool:
    """The node that finishes frames for a vehicle: without it nothing more can be accounted."""
    return key.rsplit("/", 1)[-1] in ("edge_node", "edge_container")


def _overrides(source, image_topic, frames, policy, rate_hz, device=None, precision=None, codec=None) -> dict:
    overrides = {}
    if codec:
        bottleneck, coder = bottleneck_source(codec) if codec.startswith("bn:") else ("", "none")
        if "/" in bottleneck or bottleneck.endswith(".safetensors"):  # a file: both tiers load it by path
            overrides[("edge_node", "bottlenecks")] = overrides[("cloud_node", "bottlenecks")] = bottleneck
            codec = str(CodecSpec("bn", coder, bottleneck=Path(bottleneck).stem))
        overrides[("partitioner_node", "codec")] = codec
    if source:
        overrides[("camera_node", "source")] = str(source)
    if image_topic:
        overrides[("camera_node", "image_topic")] = image_topic
    if frames:
        overrides[("camera_node", "max_frames")] = int(frames)
    if rate_hz is not None:
        overrides[("camera_node", "rate_hz")] = float(rate_hz)
        if rate_hz > 0:
            overrides[("partitioner_node", "frame_interval_ms")] = 1000.0 / rate_hz
    if policy:
        overrides[("partitioner_node", "policy")] = policy
    for name, value in (("device", device), ("precision", precision)):
        if value:  # both nodes that run the network: on one host they share the machine
            overrides[("edge_node", name)] = overrides[("cloud_node", name)] = value
    return overrides


def run_parameters(config: Path | None, overrides: dict, log=print) -> dict:
    """The node parameters of a run, with this host's profile measured before the nodes start.

    The camera waits for the edge, the partitioner and the observer: no frame lost to discovery.
    """
    from l2p_ros.measure.cache import ensure_profile

    params = prepared_parameters(config, {("camera_node", "min_subscribers"): 3, **overrides})
    partitioner = params["partitioner_node"]["ros__parameters"]
    if not partitioner.get("edge_profile"):
        ensure_profile(partitioner.get("model", "yolov3-tiny"), int(partitioner.get("input_size", 416)),
                       threads=int(partitioner.get("profile_threads", 1)), log=log)
    return params


def wait_ready(observer, nodes: NodeSet, started: float, timeout_s: float = READY_TIMEOUT_S, spin=None,
               next_tiers: int = 1) -> None:
    """Spin until the edge, partitioner, monitors and cloud of ``observer``'s vehicle are subscribed and
    publishing (``next_tiers``: the tiers that send the edge detections: the cloud, and a fog where
    there is one). The monitors too: frames must not be decided before the link and the load are
    known, and a run records what its decisions were made on (a testbed run whose observer had not
    yet discovered them recorded neither)."""
    import rclpy

    from l2p_ros.nodes.common import NEXT_TIER_DETECTIONS_TOPIC

    spin = spin or (lambda: rclpy.spin_once(observer, timeout_sec=0.1))

    def ready() -> bool:
        spin()
        return (observer.count_subscribers("camera/image_raw") >= 3  # edge, partitioner, observer
                and observer.count_publishers("l2p/detections") >= 1  # the edge
                and observer.count_publishers(NEXT_TIER_DETECTIONS_TOPIC) >= next_tiers
                and observer.count_subscribers("l2p/feature_map") >= 1
                and observer.count_publishers("l2p/network_state") >= 1
                and observer.count_publishers("l2p/edge_load") >= 1)

    while not ready():
        failures = nodes.failed()
        if failures:
            raise RuntimeError("a node failed to start:\n" + "\n".join(failures))
        if time.monotonic() - started > timeout_s:
            raise RuntimeError(f"nodes not ready after {timeout_s:.0f} s; logs in {nodes.work_dir}")
    # And every link measured once (answered, a rate estimated), so the first frames are not decided
    # on a link read as 0 Mbit/s because nothing had been measured yet (seen once the models loaded in
    # parallel: 5 s of such decisions across the testbed's namespaces). A link that stays down is the
    # run's to show.
    link_deadline = time.monotonic() + LINK_WAIT_S
    while (not observer.links_measured.issuperset(observer.link_state_topics)
           and time.monotonic() < link_deadline):
        spin()


def vehicle_namespaces(vehicles: int) -> list[str]:
    """One vehicle runs in the root namespace (as a single-vehicle launch does); a fleet in v0, v1, ..."""
    if vehicles < 1:
        raise ValueError(f"vehicles must be >= 1, got {vehicles}")
    return [""] if vehicles == 1 else [f"v{i}" for i in range(vehicles)]


def cloud_assignment(namespaces: list[str], clouds: int) -> dict[str, list[str]]:
    """Cloud node name -> the vehicles it serves: ``cloud_node``, ``cloud_node_1``, ... taking vehicles
    in turn (v0 -> the first, v1 -> the second, ...), so each serves a fixed part of the fleet and a
    vehicle's frames always meet the same cloud (its batches, its queue, its accounting)."""
    if not 1 <= clouds <= len(namespaces):
        raise ValueError(f"clouds must be between 1 and the number of vehicles ({len(namespaces)}), got {clouds}")
    return {("cloud_node" if i == 0 else f"cloud_node_{i}"): namespaces[i::clouds] for i in range(clouds)}


def tell_fleet(partitioner: dict, vehicles: int, max_batch: int, log=print) -> None:
    """A fleet run's partitioners predict the shared cloud: ``vehicles`` on it (the most any of the
    run's clouds serves), its ``max_batch``, and this CPU's measured batch curves, where the source
    checkout has them (an install without models/profiles/ leaves the cloud unshared, and says so)."""
    from l2p_ros.policies.cloud_batching import CPU_CURVES

    if not CPU_CURVES.is_file():
        log(f"the partitioners predict the cloud as unshared: no batch curves at {CPU_CURVES}")
        return
    partitioner.update(fleet_vehicles=vehicles, cloud_max_batch=max_batch, cloud_batching=str(CPU_CURVES))


def run_pipeline(*, config: Path | None = None, source=None, image_topic=None, frames: int = 0,
                 policy: str | None = None, rate_hz: float | None = None, record: Path | None = None,
                 summary_json: Path | None = None, log_dir: Path | None = None, print_frames: bool = True,
                 drain_timeout_s: float = 60.0, device: str | None = None, precision: str | None = None,
                 vehicles: int = 1, max_batch: int | None = None, max_wait_ms: float | None = None,
                 single_edge_process: bool = False, codec: str | None = None, loop: bool = False,
                 domain_id: int | None = None, clouds: int = 1, dds: str = "local", extra: dict | None = None,
                 placements: dict | None = None, on_first_frame=None, during=None, extra_nodes: dict | None = None,
                 log=print) -> dict:
    """Run the pipeline until the camera's source ends (or Ctrl-C); returns the summary.

    ``domain_id``: the run's DDS domain (ROS_DOMAIN_ID of every node and the observer). Default: the
    environment's ROS_DOMAIN_ID where set, else one of ``dds.RUN_DOMAIN_IDS`` no other run of this
    host holds, so two runs side by side never exchange frames; printed either way.

    ``log_dir``: the nodes' logs and parameter files (default: a new folder under the system's
    temporary directory); the summary's ``logs`` names it.

    ``loop``: the camera starts its source over at the end (until ``frames`` or Ctrl-C), and the
    observer keeps whole records of the last LOOP_RETAIN_S seconds only (the timeline holds those).

    ``vehicles`` > 1: that many edge sets (camera, monitors, partitioner, edge), each in its own
    namespace ``v0``, ``v1``, ... and playing the same source, and one cloud node serving them all
    (``max_batch``, ``max_wait_ms``); the summary then holds every vehicle's own accounting under
    ``vehicles`` and the fleet's totals. ``clouds`` > 1: that many cloud nodes share the fleet, each
    serving its vehicles by namespace (:func:`cloud_assignment`); several servers, one fleet.

    ``dds``: "local" (SHM only, nothing leaves this host) or "environment" (the environment's
    RMW_IMPLEMENTATION and DDS configuration, for a graph across hosts; see ``dds.DDS_MODES``).

    ``placements``: where each node runs (see :class:`NodeSet`); the caller has then put this process
    where the observer belongs (the testbed's edge) instead of on the single-host DDS profile.
    ``on_first_frame``: called once, when the observer sees the first camera frame (the testbed starts
    its trace there: a camera takes seconds to start). ``extra_nodes``: {name: (executable, {parameter:
    value})}, more nodes started before the edge (e.g. a fog instance of cloud_node), their parameters
    a copy of the executable's section with these changed. ``during``: called with the :class:`NodeSet` on
    every turn of the loop while frames flow and while they drain (the testbed's scheduled events:
    a node killed and restarted mid-run; nodes stopped through it are not failures).
    """
    if extra_nodes and (single_edge_process or vehicles > 1):
        raise ValueError("extra_nodes (a fog) run with one vehicle and separate node processes only")
    if dds not in DDS_MODES:
        raise ValueError(f"dds {dds!r}: one of {', '.join(DDS_MODES)}")
    namespaces = vehicle_namespaces(vehicles)
    served_by = cloud_assignment(namespaces, clouds)
    domain_lock = None
    if placements is None:  # (a testbed run's placements set its own domain)
        if dds == "local":
            use_local_dds()
        log(f"DDS: {dds_description(dict(os.environ))}"
            + (" (shared memory only: nothing leaves this host)" if dds == "local" else ", from the environment"))
        if domain_id is not None:
            why = "--domain-id"
        elif os.environ.get("ROS_DOMAIN_ID", "").strip():
            domain_id, why = int(os.environ["ROS_DOMAIN_ID"]), "ROS_DOMAIN_ID of the environment"
        else:
            (domain_id, domain_lock), why = claim_domain_id(), "free on this host"
        os.environ["ROS_DOMAIN_ID"] = str(domain_id)  # this process (the observer) and every node
        log(f"DDS domain {domain_id} ({why}): other ROS 2 tools see this run with ROS_DOMAIN_ID={domain_id}")
        if dds == "local":
            # A claimed domain is this run's alone; in a given one, spare ports another process may be
            # creating this instant.
            swept = sweep(domain_id, min_age_s=0.0 if domain_lock else 5.0)
            if swept.ports or swept.segments:
                log(f"removed {swept}: left by dead processes, they would keep this run's nodes from "
                    "discovering each other (ports) or hold memory (segments)")
    import rclpy
    import rclpy.signals
    from rclpy.executors import SingleThreadedExecutor

    from l2p_ros.nodes.launch_support import CLOUD_NODES, NODES
    from l2p_ros.nodes.observer import PipelineObserver
    from l2p_ros.nodes.probe_echo import link_topics

    overrides = _overrides(source, image_topic, frames, policy, rate_hz, device, precision, codec)
    if vehicles > 1:
        overrides[("cloud_node", "vehicles")] = ",".join(served_by["cloud_node"])
    if loop:
        overrides[("camera_node", "loop")] = True
    if not single_edge_process:  # this run drives the lifecycle nodes' transitions (lifecycle.drive)
        overrides[("edge_node", "autostart")] = overrides[("cloud_node", "autostart")] = False
    if max_batch is not None:
        overrides[("cloud_node", "max_batch")] = int(max_batch)
    if max_wait_ms is not None:
        overrides[("cloud_node", "max_wait_ms")] = float(max_wait_ms)
    params = run_parameters(config, {**overrides, **(extra or {})}, log)
    # The other clouds: the first's parameters, their own vehicles.
    more_clouds = {name: ("cloud_node", {"vehicles": ",".join(own)}) for name, own in served_by.items()
                   if name != "cloud_node"}
    for name, (executable, node_overrides) in {**(extra_nodes or {}), **more_clouds}.items():
        params[name] = {"ros__parameters": {**params[executable]["ros__parameters"], **node_overrides}}
    partitioner = params["partitioner_node"]["ros__parameters"]
    if vehicles > 1 and partitioner.get("fleet_vehicles", 1) == 1:
        tell_fleet(partitioner, max(len(own) for own in served_by.values()),
                   int(params["cloud_node"]["ros__parameters"].get("max_batch", 1)), log)
    work_dir = work_dir_for(log_dir)
    recorder = None
    if record:
        from l2p_ros.bag import BagRecorder

        recorder = BagRecorder(record)
    # Ctrl-C must reach this loop as KeyboardInterrupt (to stop the nodes and print the summary),
    # not shut the rclpy context down under it, which is what rclpy's own SIGINT handler does.
    rclpy.init(signal_handler_options=rclpy.signals.SignalHandlerOptions.NO)
    stop_requests = _StopRequests()
    camera_topic = params["camera_node"]["ros__parameters"].get("output_topic", "camera/image_raw")
    backhaul = partitioner.get("fog_cloud_link", "")
    observers = {ns: PipelineObserver(camera_topic, recorder, print_frames, namespace=ns,
                                      retain_s=LOOP_RETAIN_S if loop else None,
                                      backhaul_state_topic=link_topics(backhaul).state if backhaul else "")
                 for ns in namespaces}
    executor = SingleThreadedExecutor()
    for observer in observers.values():
        executor.add_node(observer)

    def spin() -> None:
        executor.spin_once(timeout_sec=0.1)
        stop_requests.check()

    def unaccounted() -> int:
        return sum(observer.summary()["unaccounted"] for observer in observers.values())

    nodes = NodeSet(params, work_dir, placements=placements, dds_mode=dds)
    started = time.monotonic()
    interrupted = False
    died: dict[str, int] = {}  # node key -> exit code, in the order they died

    def last_line(key: str) -> str:
        """A node's last log line: a node that fails says why there (a parameter error, a traceback's end)."""
        lines = nodes.running[key].log_path.read_text().strip().splitlines()
        return lines[-1][-300:] if lines else ""

    def note_deaths() -> None:
        """A node that dies mid-run is reported once; the run goes on with the others (a dead cloud:
        the edge finishes frames itself; a dead partitioner: the edge's default cut; a dead monitor:
        the partitioner's assumed state) and its summary is still written."""
        for key, code in nodes.exited_with_error().items():
            if key not in died:
                died[key] = code
                if starting:
                    continue  # reported once, as the start-up's failure
                log(f"{key} died (exit code {shell_exit_code(code)}); the run goes on without it. "
                    f"Its last log line: {last_line(key)}")

    starting = True  # until the cameras run: a failure then ends the run, with its reason in one line
    start_error = None

    # Even if started with SIGINT ignored (&); `kill` stops the nodes too, not only Ctrl-C. Set here,
    # where the `finally` below gives the caller's handlers back however the run ends.
    handlers_before = {signum: signal.signal(signum, stop_requests) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        for name in more_clouds:
            nodes.start(name, "cloud_node")
        if single_edge_process:  # the cloud, then one container per vehicle (its camera waits for readers)
            nodes.start("cloud_node")
            cameras = [nodes.start("edge_container", namespace=ns).process for ns in namespaces]
        else:
            for name, (executable, _) in (extra_nodes or {}).items():
                nodes.start(name, executable)
            for name in NODES:  # the cloud once, every other node but the camera once per vehicle
                if name != "camera_node":
                    for ns in ([""] if name in CLOUD_NODES else namespaces):
                        nodes.start(name, namespace=ns)
        log(f"starting nodes (logs in {work_dir}) ...")
        if not single_edge_process:  # every model loads at once; the cloud is active before any edge
            from l2p_ros.nodes.lifecycle import LIFECYCLE_EXECUTABLES, drive

            lifecycle = ([f"/{name}" for name in served_by]
                         + [f"/{name}" for name, (executable, _) in (extra_nodes or {}).items()
                            if executable in LIFECYCLE_EXECUTABLES]
                         + [f"/{ns}/edge_node" if ns else "/edge_node" for ns in namespaces])
            drive(next(iter(observers.values())), lifecycle, spin, nodes.failed,
                  timeout_s=READY_TIMEOUT_S - (time.monotonic() - started))
        # The cloud and every extra cloud_node (a fog) send the edge detections.
        next_tiers = 1 + sum(executable == "cloud_node" for executable, _ in (extra_nodes or {}).values())
        for observer in observers.values():
            wait_ready(observer, nodes, started, spin=spin, next_tiers=next_tiers)
        if not single_edge_process:
            log(f"nodes ready after {time.monotonic() - started:.1f} s; starting the camera"
                + (f"s of {len(namespaces)} vehicles" if vehicles > 1 else ""))
            cameras = [nodes.start("camera_node", namespace=ns).process for ns in namespaces]
        starting = False
        while any(camera.poll() is None for camera in cameras):
            spin()
            if on_first_frame is not None and any(observer.frames_seen for observer in observers.values()):
                on_first_frame()
                on_first_frame = None
            if during is not None:
                during(nodes)
            note_deaths()
        # Drain: frames still in the edge or the cloud finish (or time out and finish locally). On a
        # loaded machine a frame can take seconds, so wait until every frame is accounted for, with
        # the stats of a period after the last result, up to drain_timeout_s.
        deadline = time.monotonic() + drain_timeout_s
        settled_at = None
        while time.monotonic() < deadline:
            spin()
            if during is not None:
                during(nodes)
            note_deaths()
            if any(_is_edge(key) for key in died):
                break  # frames its edge held are lost with it: nothing more will be accounted
            if unaccounted() > 0:
                settled_at = None
            elif settled_at is None:
                settled_at = time.monotonic()
            elif time.monotonic() - settled_at > STATS_PERIOD_S * 1.5:
                break
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: stopping the nodes")
    except RuntimeError as error:
        if not starting:
            raise
        note_deaths()
        key = next(iter(died), None)
        if key:
            start_error = f"{key} exited with code {shell_exit_code(died[key])} during start-up: {last_line(key)}"
        else:  # alive but refused (a lifecycle transition that failed) or too slow: the node it names says why
            start_error = str(error).splitlines()[0]
            named = [key for key in nodes.running if f"/{key} " in f"{start_error} ".replace(",", " ")]
            start_error += "".join(f"; {key}: {last_line(key)}" for key in named)
        log(f"start-up failed: {start_error}")
    finally:
        wall_s = round(time.monotonic() - started, 2)
        per_vehicle = {ns: observer.summary() for ns, observer in observers.items()}
        timelines = {ns: observer.timeline() for ns, observer in observers.items()}
        stamps = {ns: observer.frame_stamps() for ns, observer in observers.items()}
        decisions = {ns: observer.decision_timeline() for ns, observer in observers.items()}
        latencies = sorted(pair for observer in observers.values() for pair in observer.latencies())
        # Our participant goes first, then the nodes: Fast DDS 3.2 can deadlock a process that
        # destroys a writer while it handles remote participants leaving (eProsima/Fast-DDS#6502;
        # seen hanging a test at teardown).
        executor.shutdown()
        for observer in observers.values():
            observer.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
        nodes.stop_all()
        if recorder is not None:
            recorder.close()
            if start_error is not None and recorder.messages_written == 0:  # nothing ran: leave nothing
                shutil.rmtree(record, ignore_errors=True)
        for signum, handler in handlers_before.items():  # a caller's own handlers (a test process's) again
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
    if vehicles == 1:
        summary, timeline = per_vehicle[""], timelines[""]
        summary["frame_stamps"] = stamps[""]
        summary["decisions"] = decisions[""]
    else:
        summary, timeline = fleet_summary(per_vehicle), {ns: rows for ns, rows in timelines.items()}
    summary["latency_per_minute"] = latency_per_minute(latencies)  # every vehicle's frames
    summary["interrupted"] = interrupted
    summary["failed_nodes"] = {key: shell_exit_code(code) for key, code in died.items()}
    # The run's own status: that of the first node that died, else 1 for a start-up that failed, else 0.
    summary["exit_code"] = shell_exit_code(next(iter(died.values()))) if died else int(start_error is not None)
    summary["start_error"] = start_error
    summary["wall_s"] = wall_s
    summary["ros_domain_id"] = os.environ.get("ROS_DOMAIN_ID")
    summary["dds"] = {"mode": dds if placements is None else "testbed", "rmw": os.environ.get("RMW_IMPLEMENTATION")}
    if clouds > 1:
        summary["clouds"] = served_by
    if domain_lock is not None:
        domain_lock.close()
    summary["policy"] = partitioner.get("policy")
    summary["logs"] = str(work_dir)
    if summary_json:
        Path(summary_json).parent.mkdir(parents=True, exist_ok=True)
        Path(summary_json).write_text(json.dumps({"summary": summary, "timeline": timeline}, indent=1))
    summary["timeline"] = timeline
    return summary


def fleet_summary(per_vehicle: dict[str, dict]) -> dict:
    """The fleet's totals (counts added, latency over every vehicle's frames) and each vehicle's own."""
    counted = ("frames_captured_seen", "frames_in_edge", "frames_detected", "frames_dropped", "unaccounted",
               "edge_frames_published", "late_duplicate_results")
    summary = {key: sum(v[key] for v in per_vehicle.values()) for key in counted}
    for key in ("drops", "executed_on", "cuts"):
        merged: dict = {}
        for v in per_vehicle.values():
            for name, count in v[key].items():
                merged[name] = merged.get(name, 0) + count
        summary[key] = merged
    means = [(v["latency_mean_ms"], v["frames_detected"]) for v in per_vehicle.values() if v["latency_mean_ms"]]
    summary["latency_mean_ms"] = (sum(m * n for m, n in means) / sum(n for _, n in means)) if means else None
    summary["latency_p95_ms"] = max((v["latency_p95_ms"] for v in per_vehicle.values() if v["latency_p95_ms"]),
                                    default=None)  # the worst vehicle's p95
    summary["vehicles"] = per_vehicle
    return summary


def print_summary(summary: dict, log=print) -> None:
    log("\nsummary")
    for key in ("policy", "frames_captured_seen", "frames_in_edge", "frames_detected", "frames_dropped", "drops",
                "unaccounted", "edge_frames_published", "late_duplicate_results", "executed_on", "cuts",
                "latency_mean_ms", "latency_p95_ms", "cloud_payload_bytes_mean", "failed_nodes", "wall_s"):
        value = summary.get(key)
        if isinstance(value, float):
            value = round(value, 2)
        log(f"  {key:<26} {value}")
    for vehicle, own in summary.get("vehicles", {}).items():
        latency = own["latency_mean_ms"]
        log(f"  {vehicle:<6} in {own['frames_in_edge']:>4}  detected {own['frames_detected']:>4}  "
            f"dropped {own['frames_dropped']:>3} {own['drops'] or ''}  unaccounted {own['unaccounted']}  "
            f"latency mean {latency if latency is None else round(latency, 1)} ms")
