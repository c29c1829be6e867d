"""A fleet on one cloud, live: three vehicles (each its own edge set in its own namespace, real node
processes, shared-memory DDS only) send every frame to one cloud node that batches them and
decodes a batch's frames on two threads; every frame of every vehicle is accounted for, per
vehicle. On 2 cores, 16 processes can make an edge miss a frame (a counted ``stale_frame``); that
is accounting, not loss."""
import re
from pathlib import Path

import pytest

from l2p_ros.assets import SAMPLE_VIDEO, asset_path
from l2p_ros.nodes.pipeline_run import run_pipeline

VEHICLES, FRAMES = 3, 4


def test_three_vehicles_share_one_batching_cloud_and_every_frame_is_accounted(tmp_path):
    logs = tmp_path / "logs"  # reused: a previous run's vehicle parameters there must not be taken
    logs.mkdir()
    (logs / "params-v0.yaml").write_text("/v0/edge_node: {ros__parameters: {default_cut: not-a-cut}}\n")
    summary = run_pipeline(source=asset_path(SAMPLE_VIDEO), frames=FRAMES, rate_hz=1.0, policy="fixed:7",
                           vehicles=VEHICLES, max_batch=VEHICLES, max_wait_ms=50.0, print_frames=False,
                           summary_json=tmp_path / "fleet.json", log_dir=logs, log=lambda *_: None,
                           extra={("edge_node", "decision_wait_s"): 5.0, ("edge_node", "cloud_timeout_s"): 10.0,
                                  ("cloud_node", "decode_workers"): 2})
    assert set(summary["vehicles"]) == {"v0", "v1", "v2"}
    for vehicle, own in summary["vehicles"].items():
        assert own["frames_in_edge"] == FRAMES, (vehicle, own)
        assert own["unaccounted"] == 0, (vehicle, own)
        assert own["frames_detected"] + own["frames_dropped"] == FRAMES, (vehicle, own)
        assert own["frames_detected"] >= FRAMES - 1, (vehicle, own)
        detected = own["frames_detected"]
        assert own["executed_on"] == {"edge+cloud": detected}, (vehicle, own)  # finished by the shared cloud
        assert own["cuts"] == {"7": detected}
    assert summary["unaccounted"] == 0
    assert (tmp_path / "fleet.json").is_file()
    # The cloud reports its batches at exit: they hold every frame, none larger than max_batch.
    report = re.search(r"finished (\d+) frames in (\d+) batches \(batch size: count (\{.*\})\)",
                       (Path(summary["logs"]) / "cloud_node.log").read_text())
    assert report, "no batch report in the cloud's log"
    sizes = {int(k): int(v) for k, v in re.findall(r"(\d+): (\d+)", report.group(3))}
    assert int(report.group(1)) == sum(k * v for k, v in sizes.items()) == summary["frames_detected"]
    assert max(sizes) <= VEHICLES


def test_clouds_take_the_fleets_vehicles_in_turn():
    from l2p_ros.nodes.pipeline_run import cloud_assignment, vehicle_namespaces

    assert cloud_assignment(vehicle_namespaces(4), 2) == {"cloud_node": ["v0", "v2"], "cloud_node_1": ["v1", "v3"]}
    assert cloud_assignment(vehicle_namespaces(3), 1) == {"cloud_node": ["v0", "v1", "v2"]}
    assert cloud_assignment(vehicle_namespaces(1), 1) == {"cloud_node": [""]}
    for vehicles, clouds in ((2, 3), (1, 2), (3, 0)):
        with pytest.raises(ValueError):
            cloud_assignment(vehicle_namespaces(vehicles), clouds)


def test_the_environments_dds_configuration_reaches_every_node_and_only_with_dds_environment(monkeypatch, tmp_path):
    from l2p_ros.nodes.dds import LOCAL_PROFILE, node_dds_env

    users = tmp_path / "users_profile.xml"
    monkeypatch.setenv("RMW_IMPLEMENTATION", "rmw_zenoh_cpp")
    monkeypatch.setenv("FASTDDS_DEFAULT_PROFILES_FILE", str(users))
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "SUBNET")
    environment = node_dds_env("environment")
    assert (environment["RMW_IMPLEMENTATION"], environment["FASTDDS_DEFAULT_PROFILES_FILE"],
            environment["ROS_AUTOMATIC_DISCOVERY_RANGE"]) == ("rmw_zenoh_cpp", str(users), "SUBNET")
    local = node_dds_env("local")
    assert (local["RMW_IMPLEMENTATION"], local["FASTDDS_DEFAULT_PROFILES_FILE"]) == ("rmw_fastrtps_cpp", str(LOCAL_PROFILE))
    assert "ROS_AUTOMATIC_DISCOVERY_RANGE" not in local
    with pytest.raises(ValueError, match="one of local, environment"):
        node_dds_env("zenoh")


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def test_two_clouds_share_a_fleet_by_namespace_on_the_environments_dds_configuration(monkeypatch, tmp_path):
    """Several servers, one fleet: each cloud node serves its own vehicles (by namespace) and finishes
    every frame of theirs and none of the others'. The run uses ``dds="environment"``: every node
    gets the environment's RMW and DDS profile as they are, here a user's copy of the SHM-only profile
    (so nothing leaves this host), seen in each node process's own environment."""
    from l2p_ros.nodes.dds import LOCAL_PROFILE

    users = tmp_path / "users_profile.xml"
    users.write_text(LOCAL_PROFILE.read_text())
    monkeypatch.setenv("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    monkeypatch.setenv("FASTDDS_DEFAULT_PROFILES_FILE", str(users))
    for name in ("FASTDDS_BUILTIN_TRANSPORTS", "ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_STATIC_PEERS"):
        monkeypatch.delenv(name, raising=False)
    profiles: dict[str, str] = {}

    def read_profiles(nodes) -> None:
        for key, running in nodes.running.items():
            if running.process.poll() is None and key not in profiles:
                profiles[key] = _environ(running.process.pid).get("FASTDDS_DEFAULT_PROFILES_FILE", "")

    summary = run_pipeline(source=asset_path(SAMPLE_VIDEO), frames=FRAMES, rate_hz=1.0, policy="fixed:7",
                           vehicles=2, clouds=2, dds="environment", print_frames=False, log=lambda *_: None,
                           during=read_profiles,
                           extra={("edge_node", "decision_wait_s"): 5.0, ("edge_node", "cloud_timeout_s"): 10.0})
    assert summary["clouds"] == {"cloud_node": ["v0"], "cloud_node_1": ["v1"]}
    assert summary["dds"] == {"mode": "environment", "rmw": "rmw_fastrtps_cpp"}
    assert {"cloud_node", "cloud_node_1", "v0/edge_node", "v1/edge_node", "v0/camera_node"} <= set(profiles)
    assert set(profiles.values()) == {str(users)}, profiles
    for vehicle, own in summary["vehicles"].items():
        assert own["unaccounted"] == 0 and own["frames_in_edge"] == FRAMES, (vehicle, own)
        assert own["frames_detected"] >= FRAMES - 1 and own["executed_on"] == {"edge+cloud": own["frames_detected"]}
    logs = Path(summary["logs"])
    for cloud, vehicle in (("cloud_node", "v0"), ("cloud_node_1", "v1")):
        log = (logs / f"{cloud}.log").read_text()
        assert f"vehicles {vehicle}," in log, log[-2000:]
        report = re.search(r"finished (\d+) frames in", log)
        assert report and int(report.group(1)) == summary["vehicles"][vehicle]["frames_detected"], log[-2000:]
