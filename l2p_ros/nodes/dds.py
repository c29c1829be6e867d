"""The default single-host DDS configuration: shared memory only, nothing leaves the machine."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

# Shipped inside the package so it is found under an editable pip install too, where setup.py
# data_files (the ROS share folder) are not installed.
LOCAL_PROFILE = Path(__file__).with_name("fastdds_local.xml")
# The same for nodes that send small messages only: a participant's memory grows with the transport's
# maxMessageSize (measured: 310 MB PSS with LOCAL_PROFILE, 87 MB with this one).
SMALL_MESSAGE_PROFILE = Path(__file__).with_name("fastdds_local_small.xml")
# The edge container's: images whole up to 4 MB, larger feature maps fragmented (146 MB measured).
EDGE_CONTAINER_PROFILE = Path(__file__).with_name("fastdds_local_edge.xml")


def local_dds_env(base: dict[str, str] | None = None, small_messages: bool = False,
                  profile: Path | None = None) -> dict[str, str]:
    """Environment for a process that must keep DDS on this host (SHM transport only);
    ``small_messages``: the smaller-footprint profile, for a node that sends no large message;
    ``profile``: another of this package's local profiles."""
    env = dict(os.environ if base is None else base)
    env["RMW_IMPLEMENTATION"] = "rmw_fastrtps_cpp"
    env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(profile or (SMALL_MESSAGE_PROFILE if small_messages else LOCAL_PROFILE))
    # Measured: FASTDDS_BUILTIN_TRANSPORTS=SHM overrides the profile's 64 MB segment with the 512 KB
    # default, and BEST_EFFORT images larger than a segment are then lost. The profile alone opens
    # no UDP socket (tested), so the variable must not be set.
    env.pop("FASTDDS_BUILTIN_TRANSPORTS", None)
    # Measured: ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST makes rmw_fastrtps add a UDP transport
    # (ports 7400+ on every interface) next to the profile's, so it must not be set here.
    env.pop("ROS_AUTOMATIC_DISCOVERY_RANGE", None)
    env.pop("ROS_STATIC_PEERS", None)
    return env


# How `l2p run` configures DDS: "local" (the default) forces the SHM-only profile above;
# "environment" leaves the environment's RMW_IMPLEMENTATION and its configuration (a Fast DDS
# profile, ROS_AUTOMATIC_DISCOVERY_RANGE, ROS_STATIC_PEERS, a Zenoh router's config, ...) to every
# node, as `ros2 launch ... single_host_dds:=false` does: the user's graph decides what leaves the host.
DDS_MODES = ("local", "environment")
# What `environment` passes on and reports: the variables that choose an RMW or shape its traffic.
DDS_VARIABLES = ("RMW_IMPLEMENTATION", "FASTDDS_DEFAULT_PROFILES_FILE", "FASTDDS_BUILTIN_TRANSPORTS",
                 "ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_STATIC_PEERS", "CYCLONEDDS_URI", "ZENOH_ROUTER_CONFIG_URI",
                 "ZENOH_SESSION_CONFIG_URI", "ZENOH_CONFIG_OVERRIDE")


def node_dds_env(mode: str, small_messages: bool = False, profile: Path | None = None) -> dict[str, str]:
    """A node process's environment under ``mode`` (one of DDS_MODES)."""
    if mode == "local":
        return local_dds_env(small_messages=small_messages, profile=profile)
    if mode == "environment":
        return dict(os.environ)
    raise ValueError(f"DDS mode {mode!r}: one of {', '.join(DDS_MODES)}")


def dds_description(env: dict[str, str]) -> str:
    """One line naming the RMW and the DDS variables set in ``env`` (for the run's log and summary)."""
    rmw = env.get("RMW_IMPLEMENTATION") or "the install's default RMW"
    settings = [f"{name}={env[name]}" for name in DDS_VARIABLES[1:] if env.get(name)]
    return rmw + (f" ({', '.join(settings)})" if settings else " (no DDS variable set: the RMW's defaults)")


def rmw_load_error(env: dict[str, str], timeout_s: float = 30.0) -> str | None:
    """None when rclpy initialises under ``env``, else the reason, in one line.

    Checked in a child process: rcl ends the whole process (exit 102) when RMW_IMPLEMENTATION names an
    RMW this install was not built with (measured with rmw_zenoh_cpp on the PyPI wheels), and an RMW
    not installed fails to load. ``rclpy.init`` alone creates no DDS participant (that happens with the
    first node), so the check sends nothing."""
    code = "import rclpy; rclpy.init(); rclpy.shutdown()"
    try:
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                              timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return f"rclpy did not initialise within {timeout_s:.0f} s"
    if done.returncode == 0:
        return None
    lines = [line.strip() for line in (done.stderr + done.stdout).splitlines() if line.strip()]
    reason = next((line for line in lines if "RMW" in line or "rmw" in line), lines[-1] if lines else "")
    return f"rclpy could not initialise (exit {done.returncode}): {reason[:300]}"


def use_local_dds() -> None:
    """Apply ``local_dds_env`` to this process; call before ``rclpy.init``."""
    os.environ.update(local_dds_env({}))
    for name in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_STATIC_PEERS", "FASTDDS_BUILTIN_TRANSPORTS"):
        os.environ.pop(name, None)


# DDS domains `l2p run` claims for itself when no ROS_DOMAIN_ID is given: apart from the default 0
# (a user's other ROS 2 graph), the tests' 1..100, the benches' 101..200 and the testbed's 73.
RUN_DOMAIN_IDS = range(201, 233)
_LOCK_DIR = Path(tempfile.gettempdir()) / "l2p_ros-dds-domains"


def claim_domain_id(ids: range = RUN_DOMAIN_IDS):
    """(domain id, lock file): the first id of ``ids`` no other live process of this host holds.

    Two ``l2p run`` beside each other exchanged camera frames and decisions on domain 0 (measured).
    The claim is an exclusive lock on a file per id, released when the process ends however it ends;
    keep the returned file open for the run's lifetime."""
    import fcntl

    _LOCK_DIR.mkdir(parents=True, exist_ok=True)
    for domain_id in ids:
        lock = open(_LOCK_DIR / f"{domain_id}.lock", "w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        return domain_id, lock
    raise RuntimeError(f"every DDS domain id {ids.start}..{ids.stop - 1} is held by another l2p run on this host; "
                       "pass --domain-id")
