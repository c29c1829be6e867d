"""``l2p testbed run``: the live pipeline across the testbed while a bandwidth trace plays on the
edge -> cloud link; writes ``results.json`` (summary, per-frame timeline, the trace as applied, link
counters) and the bag of detections, decisions and stats.

The edge-side nodes run in the edge namespace, inside its CPU limit when it has one, and the cloud
node in the cloud namespace; this process (the observer) enters the edge namespace, outside the
limit, since it measures the vehicle rather than being part of its load. The partitioner's edge
profile is measured inside the same limit (never scaled by a factor), its cloud profile on the
unlimited host.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

from l2p_ros.testbed import cpu_limit, network
from l2p_ros.testbed.delay import current_rtt_ms, set_delay
from l2p_ros.testbed.events import Window, testbed_events
from l2p_ros.testbed.layout import PREFIX, Layout
from l2p_ros.testbed.placement import TierPlacement
from l2p_ros.testbed.shaping import TraceReplay, set_rate
from l2p_ros.testbed.system import TestbedError, set_network_namespace

DEFAULT_TAIL_S = 10.0  # how long a trace's last rate is played after its last sample, by default
BACKHAUL = "backhaul"  # the fog -> cloud link's probe_link name
# What the fog sends the cloud: pipeline.yaml's fp32 suits a fog on a LAN, not a shaped backhaul
# (yolov3-tiny's layer-13 map is 692 KB in fp32: 0.55 s at 10 Mbit/s, past the edge's 0.5 s timeout).
FOG_CODEC = "int8-channel+zstd"


@contextlib.contextmanager
def inside_namespace(namespace: str):
    """This thread (and the threads it starts meanwhile: rclpy's) in network namespace
    ``namespace``; back in the one it was in afterwards."""
    previous = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{namespace}", os.O_RDONLY)
    try:
        set_network_namespace(target, namespace)
        yield
    finally:
        os.close(target)
        set_network_namespace(previous, "of this process before")
        os.close(previous)


def limited_profile(layout: Layout, tier: str, model: str, input_size: int, log=print) -> Path:
    """The profile of ``tier`` measured inside its CPU limit (cached per quota and host); without a
    limit, this host's own profile."""
    from l2p_ros.measure.cache import ensure_profile, is_current_profile, profile_path
    from l2p_ros.measure.models import model_id

    quota = cpu_limit.quota(layout.prefix, tier)
    if quota is None:
        return ensure_profile(model, input_size, threads=1, log=log)
    path = profile_path(model_id(model, input_size), "cpu", 1, cpu_quota=quota)
    if is_current_profile(path):
        return path
    log(f"profiling {model} inside the {tier}'s CPU limit ({quota:.2f} of a core) into {path} ...")
    path.parent.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "l2p_ros.cli", "profile", "--model", model, "--size", str(input_size),
            "--threads", "1", "--out", str(path)]
    placement = TierPlacement(layout, tier)
    result = subprocess.run(placement.command(argv), env=placement.env(), capture_output=True, text=True)
    if result.returncode != 0:
        raise TestbedError(f"profiling inside the {tier}'s CPU limit failed: {result.stderr.strip()[-1500:]}")
    return path


def _three_tier_nodes(fog_profile: Path) -> tuple[dict, dict]:
    """(parameters, extra nodes) of a run through a fog: a cloud_node in the fog role between the
    edge and the cloud, answering the edge's probes, and a second network monitor on the fog that
    probes the cloud over the backhaul, which the partitioner decides on (README, three tiers live)."""
    parameters = {("cloud_node", "input_topic"): "l2p/feature_map_cloud", ("cloud_node", "answer_probes"): True,
                  ("cloud_node", "probe_link"): BACKHAUL, ("partitioner_node", "fog_profile"): str(fog_profile),
                  ("partitioner_node", "fog_cloud_link"): BACKHAUL, ("partitioner_node", "fog_codec"): FOG_CODEC}
    extra_nodes = {"fog_node": ("cloud_node", {"role": "fog", "input_topic": "l2p/feature_map",
                                               "output_topic": "l2p/feature_map_cloud", "answer_probes": True,
                                               "probe_link": "", "fog_codec": FOG_CODEC}),
                   "backhaul_monitor": ("network_monitor_node", {"probe_link": BACKHAUL})}
    return parameters, extra_nodes


def _finite_or_none(value: float) -> float | None:
    """JSON has no NaN: a quantity the edge could not read is null."""
    return value if math.isfinite(value) else None


def _timeline(rows: list[dict], trace, start_wall_s: float) -> list[dict]:
    """The observer's per-frame rows with seconds since the trace started and the shaped rate then."""
    out = []
    for row in rows:
        t = row["stamp_s"] - start_wall_s
        shaped = float(trace.bandwidth_mbps[trace.index_at(t)]) if t >= 0 else None
        out.append({"trace_time_s": round(t, 4), "cut": row["cut"], "executed_on": row["executed_on"],
                    "total_ms": row["total_ms"], "edge_ms": row["edge_ms"], "encode_ms": row["encode_ms"],
                    "transfer_ms": row["transfer_ms"], "decode_ms": row["decode_ms"], "cloud_ms": row["cloud_ms"],
                    "decision_ms": row["decision_ms"], "shaped_mbps": shaped, "decided_cut": row.get("decision_cut"),
                    "estimated_mbps": row.get("decision_bandwidth_mbps"), "estimated_rtt_ms": row.get("decision_rtt_ms"),
                    "predicted_total_ms": row.get("predicted_total_ms"), "detections": row["detections"]})
    return out


def run_on_trace(trace_path: Path, policy: str, out_dir: Path, *, source: str | None = None,
                 edge_cpu_quota: float | None = None, rate_hz: float = 10.0, duration_s: float | None = None,
                 model: str = "yolov3-tiny", input_size: int = 416, config: Path | None = None,
                 prefix: str = PREFIX, print_frames: bool = False, predict: bool = True,
                 overrides: dict | None = None, edge_hog: Window | None = None, cloud_outage: Window | None = None,
                 fog: bool = False, fog_cpu_quota: float | None = None, backhaul_trace: Path | None = None,
                 rtt_ms: float | None = None, bottlenecks: Sequence[str] = (), log=print) -> dict:
    """Run the pipeline across testbed ``prefix`` (made now, and removed after, if it is not up) while
    ``trace_path`` plays on the edge's uplink; ``duration_s`` defaults to the trace's last sample
    plus ``DEFAULT_TAIL_S``; ``overrides``: more node parameters, {(node, name): value};
    ``edge_hog``: a busy process inside the edge's limit during that window; ``cloud_outage``: the
    cloud node killed at the window's start and started again at its end. ``fog``: three tiers (the
    uplink is then edge -> fog; a fog node and a backhaul monitor run on the fog, inside
    ``fog_cpu_quota`` when given; ``backhaul_trace`` plays on the fog -> cloud link, unshaped
    without one). ``rtt_ms``: round-trip delay added on the uplink for the run (delay lines).
    ``bottlenecks``: learned bottlenecks (models/bottleneck/ names or paths) the policy may choose
    beside its cuts, as the partitioner's ``bottlenecks`` parameter; the prediction offers them too.
    Returns the results written to ``out_dir/results.json`` (with the simulator's prediction under
    ``simulated`` when ``predict``, in two tiers), plotted in ``out_dir/run.png``."""
    from l2p_ros.measure.cache import ensure_profile
    from l2p_ros.nodes.launch_support import CLOUD_NODES, EDGE_NODES
    from l2p_ros.nodes.launcher import prepared_parameters
    from l2p_ros.nodes.pipeline_run import run_pipeline
    from l2p_ros.simulation.traces import load_trace
    from l2p_ros.testbed.prediction import partitioner_view

    if (fog_cpu_quota is not None or backhaul_trace is not None) and not fog:
        raise ValueError("fog_cpu_quota and backhaul_trace need a fog (fog=True)")
    trace = load_trace(trace_path)
    backhaul = load_trace(backhaul_trace) if backhaul_trace is not None else None
    duration_s = float(duration_s if duration_s is not None else trace.duration_s + DEFAULT_TAIL_S)
    if not duration_s > 0 or not rate_hz > 0:
        raise ValueError(f"duration_s ({duration_s}) and rate_hz ({rate_hz}) must be > 0")
    for name, window in (("edge_hog", edge_hog), ("cloud_outage", cloud_outage)):
        if window is not None and window.stop_s > duration_s:
            raise ValueError(f"{name} {window.start_s:g}:{window.stop_s:g} ends after the run ({duration_s:g} s)")
    out_dir = Path(out_dir)
    if (out_dir / "bag").exists():
        raise FileExistsError(f"{out_dir / 'bag'} already exists: choose a new --out folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    made_here = not network.existing_namespaces(prefix)
    layout = (network.up(fog=fog, prefix=prefix, edge_cpu_quota=edge_cpu_quota, fog_cpu_quota=fog_cpu_quota, log=log)
              if made_here else network.load_layout(prefix))
    try:
        if ("fog" in layout.tiers) != fog:
            raise TestbedError(f"testbed '{prefix}' is up with tiers {', '.join(layout.tiers)}: "
                               f"{'a fog was' if fog else 'no fog was'} asked for (`l2p testbed down` first)")
        for tier, cores in (("edge", edge_cpu_quota), ("fog", fog_cpu_quota)):
            if cores is not None and not made_here:
                cpu_limit.create(prefix, tier, cores)
        edge_profile = limited_profile(layout, "edge", model, input_size, log)
        fog_profile = limited_profile(layout, "fog", model, input_size, log) if fog else None
        cloud_profile = ensure_profile(model, input_size, threads=1, log=log)
        uplink, backhaul_link = layout.uplink, (layout.links[1] if fog else None)
        if rtt_ms is not None:
            set_delay(layout, uplink.name, rtt_ms)
        added_rtt_ms = current_rtt_ms(layout, uplink.name)
        replays = [(uplink, trace)] + ([(backhaul_link, backhaul)] if backhaul is not None else [])
        for link, link_trace in replays:
            set_rate(layout, link.name, float(link_trace.bandwidth_mbps[0]), ("up",))
        players = [TraceReplay(layout, link.name, link_trace.time_s, link_trace.bandwidth_mbps, ("up",),
                               until_s=duration_s) for link, link_trace in replays]
        started = {}

        def start_trace() -> None:
            started["wall_s"] = time.time()
            for player in players:
                player.start()

        edge = TierPlacement(layout, "edge")
        schedule, hog = testbed_events(edge, edge_hog=edge_hog, cloud_outage=cloud_outage)

        def during(nodes) -> None:
            if "wall_s" in started:
                schedule.tick(time.time() - started["wall_s"], nodes)

        placements = {**{name: edge for name in EDGE_NODES},
                      **{name: TierPlacement(layout, "cloud") for name in CLOUD_NODES}}
        extra = {("camera_node", "loop"): True,
                 ("partitioner_node", "edge_profile"): str(edge_profile),
                 ("partitioner_node", "cloud_profile"): str(cloud_profile),
                 ("partitioner_node", "model"): model, ("edge_node", "model"): model, ("cloud_node", "model"): model}
        extra_nodes = None
        if fog:
            fog_parameters, extra_nodes = _three_tier_nodes(fog_profile)
            extra.update(fog_parameters)
            placements.update({name: TierPlacement(layout, "fog") for name in extra_nodes})
        if bottlenecks:
            extra[("partitioner_node", "bottlenecks")] = ",".join(bottlenecks)
        extra.update(overrides or {})
        view = partitioner_view(prepared_parameters(config, extra)["partitioner_node"]["ros__parameters"])
        links = [(uplink, "uplink_bytes")] + ([(backhaul_link, "backhaul_bytes")] if fog else [])
        before = {key: network.interface_counters(layout.namespace(link.a), link.a_ifname) for link, key in links}
        saved_env = dict(os.environ)
        os.environ.update(edge.env())
        try:  # the observer is on the vehicle, outside its CPU limit
            with inside_namespace(edge.namespace):
                summary = run_pipeline(config=config, source=source, frames=int(round(duration_s * rate_hz)),
                                       policy=policy, rate_hz=rate_hz, record=out_dir / "bag",
                                       log_dir=out_dir / "logs", print_frames=print_frames,
                                       extra=extra, placements=placements, on_first_frame=start_trace,
                                       during=during, extra_nodes=extra_nodes, log=log)
        finally:
            for player in players:
                player.stop()
            if hog is not None:
                hog.stop()
            os.environ.clear()
            os.environ.update(saved_env)
        for player in players:
            if player.error is not None:
                raise TestbedError(f"replaying a trace on {player.link_name} failed: {player.error}")
        link_bytes = {}
        for link, key in links:
            after = network.interface_counters(layout.namespace(link.a), link.a_ifname)
            link_bytes[key] = {"tx": after["tx_bytes"] - before[key]["tx_bytes"],
                               "rx": after["rx_bytes"] - before[key]["rx_bytes"]}
        for link, _ in replays:
            set_rate(layout, link.name, None, ("up",))
        if rtt_ms is not None:
            set_delay(layout, uplink.name, None)
        quotas = {f"{tier}_cpu_quota": cpu_limit.quota(prefix, tier) for tier in ("edge", "fog") if tier in layout.tiers}
    finally:
        if made_here:
            network.down(prefix, log=log)
    rows = summary.pop("timeline")
    start_wall_s = started.get("wall_s", float("nan"))
    decisions = [{"trace_time_s": round(row["stamp_s"] - start_wall_s, 4), "cut": row["cut"],
                  "fog_until_layer": row["fog_until_layer"], "estimated_mbps": row["bandwidth_mbps"],
                  "fog_cloud_estimated_mbps": _finite_or_none(row["fog_cloud_bandwidth_mbps"]),
                  "edge_cpu_percent": _finite_or_none(row["edge_cpu_percent"]),
                  "predicted_total_ms": row["predicted_total_ms"],
                  "predicted_edge_ms": _finite_or_none(row["predicted_edge_ms"]),
                  "edge_time_factor": row["edge_time_factor"],
                  "link_arrival_scv": _finite_or_none(row["link_arrival_scv"]),
                  "link_queue_now_ms": _finite_or_none(row["link_queue_now_ms"])}
                 for row in summary.pop("decisions", [])]
    summary.pop("frame_stamps", None)
    results = {
        "summary": summary,
        "timeline": _timeline(rows, trace, start_wall_s),
        "decisions": decisions,
        "events": schedule.fired,
        "trace": {"path": str(trace_path), "duration_s": duration_s, "link": uplink.name, "direction": "up",
                  "applied": [{"trace_time_s": t, "bandwidth_mbps": rate} for t, rate in players[0].applied]},
        "backhaul": None if backhaul is None else {
            "path": str(backhaul_trace), "link": backhaul_link.name, "direction": "up",
            "applied": [{"trace_time_s": t, "bandwidth_mbps": rate} for t, rate in players[1].applied]},
        "testbed": {"layout": layout.to_dict(), **quotas, "edge_profile": str(edge_profile),
                    "fog_profile": None if fog_profile is None else str(fog_profile),
                    "cloud_profile": str(cloud_profile), "rate_hz": rate_hz, "uplink_rtt_ms_added": added_rtt_ms,
                    "bottlenecks": list(bottlenecks), "partitioner_view": view},
        **link_bytes,
    }
    if predict and fog:
        results["simulated"] = None
        results["simulated_skipped"] = ("the simulator's fog is derived from the edge profile behind a constant "
                                        "backhaul; it cannot yet be told this run's measured fog and backhaul trace")
    elif predict:
        from l2p_ros.testbed.prediction import simulate_live_run

        results["simulated"] = simulate_live_run(results, policy, model, log=log)
    (out_dir / "results.json").write_text(json.dumps(results, indent=1))
    from l2p_ros.testbed.plots import plot_run

    plot_run(results, out_dir / "run.png")
    return results
