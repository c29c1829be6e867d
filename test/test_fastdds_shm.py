"""Fast DDS shared-memory files no process uses: a real orphaned discovery port wedges a domain
until the sweep removes it, and is kept while a live process maps it; live ports and segments are
never touched; a killed process's ports are found in its own domain only, and its data segment
(tens of MB of RAM) is reclaimed."""
import gzip
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest

from l2p_ros.nodes.dds import local_dds_env
from l2p_ros.nodes.fastdds_shm import (SEGMENT_MIN_AGE_S, SHM_DIR, domain_ports, port_files, segment_files, sweep,
                                      unused_ports, unused_segments)

# The discovery port of a real wedged domain, copied from this host's /dev/shm: its segment stayed
# after its lock file went (a node of a test run died mid-shutdown); no later participant of that
# domain discovered another until it was removed.
ORPHANED_DISCOVERY_PORT = Path(__file__).parent / "fixtures" / "fastdds_orphaned_discovery_port.gz"

TALKER = """
import rclpy
from std_msgs.msg import String
rclpy.init()
node = rclpy.create_node("shm_talker")
publisher = node.create_publisher(String, "fastdds_shm_chatter", 10)
node.create_timer(0.05, lambda: publisher.publish(String(data="hello")))
rclpy.spin(node)
"""
LISTENER = """
import sys, time
import rclpy
from std_msgs.msg import String
rclpy.init()
node = rclpy.create_node("shm_listener")
heard = []
node.create_subscription(String, "fastdds_shm_chatter", heard.append, 10)
deadline = time.monotonic() + float(sys.argv[1])
while not heard and time.monotonic() < deadline:
    rclpy.spin_once(node, timeout_sec=0.1)
print("heard" if heard else "nothing", flush=True)
"""


def unused_domain(*taken: int) -> int:
    """A domain of the benches' range with no Fast DDS port file on this host and none in ``taken``."""
    present = {entry.name for entry in os.scandir(SHM_DIR)}
    for domain_id in range(110, 200):
        if domain_id not in taken and not any(f"fastdds_port{port}" in present for port in domain_ports(domain_id)):
            return domain_id
    pytest.skip("every domain 110..199 has Fast DDS port files on this host")


def start(code: str, domain_id: int, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args],
                            env={**local_dds_env(), "ROS_DOMAIN_ID": str(domain_id)},
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def heard(domain_id: int, listen_s: float) -> bool:
    """Whether a listener started now in ``domain_id`` hears a talker there within ``listen_s``."""
    listener = start(LISTENER, domain_id, str(listen_s))
    out, _ = listener.communicate(timeout=listen_s + 60)
    return out.strip() == "heard"


def files_of(domain_id: int) -> set[str]:
    ports = {f"fastdds_port{port}" for port in domain_ports(domain_id)}
    return {entry.name for entry in os.scandir(SHM_DIR)
            if entry.name.removeprefix("sem.").removesuffix("_mutex").removesuffix("_el").removesuffix("_sl") in ports}


def test_an_orphaned_discovery_port_wedges_its_domain_until_the_sweep_removes_it():
    domain_id = unused_domain()
    discovery_port = domain_ports(domain_id)[0]
    (SHM_DIR / f"fastdds_port{discovery_port}").write_bytes(gzip.decompress(ORPHANED_DISCOVERY_PORT.read_bytes()))
    talker = start(TALKER, domain_id)
    try:
        if heard(domain_id, listen_s=8.0):
            try:
                fastdds = version("ros-fastdds")
            except PackageNotFoundError:
                fastdds = "of this install"
            pytest.skip(f"Fast DDS {fastdds} recovers an orphaned discovery port by itself (3.2.3 did not)")
        # The wedged talker maps the port (without a lock): in use, so kept while it lives.
        assert discovery_port not in unused_ports(domain_id)
    finally:
        stop(talker)
    assert discovery_port in unused_ports(domain_id)
    swept = sweep(domain_id)
    assert discovery_port in swept.ports and discovery_port in swept.orphaned_ports  # no lock file
    talker = start(TALKER, domain_id)
    try:
        assert heard(domain_id, listen_s=20.0), "still wedged after the sweep"
    finally:
        stop(talker)
        sweep(domain_id)


def segments_mapped_by(pid: int) -> set[str]:
    with open(f"/proc/{pid}/maps") as maps:
        return {Path(line.split()[-1]).name for line in maps if re.search(r"/fastdds_[0-9a-f]{16}$", line.strip())}


def test_live_files_are_kept_and_a_killed_processes_are_removed_its_ports_in_its_own_domain_only():
    first = unused_domain()
    second = unused_domain(first)
    talkers = {domain_id: start(TALKER, domain_id) for domain_id in (first, second)}
    try:
        deadline = time.monotonic() + 60
        while not all(any(name.endswith(("_el", "_sl")) for name in files_of(domain_id)) for domain_id in talkers):
            assert time.monotonic() < deadline, {domain_id: sorted(files_of(domain_id)) for domain_id in talkers}
            time.sleep(0.2)
        time.sleep(1.0)  # every port of theirs opened
        segments = set().union(*(segments_mapped_by(talker.pid) for talker in talkers.values()))
        assert segments and all(path.exists() for name in segments for path in segment_files(name))
        # Alive: everything they opened is mapped and locked, so nothing is unused whatever its age.
        assert unused_ports(first) == [] and unused_ports(second) == []
        assert not segments & set(unused_segments())
        assert sweep(first).ports == []
    finally:
        for talker in talkers.values():
            talker.send_signal(signal.SIGKILL)  # a crash: nothing of theirs is cleaned up
            talker.wait()
    left_by_first, left_by_second = files_of(first), files_of(second)
    assert any(name.startswith("fastdds_port") for name in left_by_first), left_by_first
    unused = unused_ports(first)
    assert unused and {f"fastdds_port{port}" for port in unused} == {
        name for name in left_by_first if name.startswith("fastdds_port") and not name.endswith(("_el", "_sl"))}
    assert segments <= set(unused_segments())  # their data segments outlived them
    assert unused_ports(first, min_age_s=3600.0) == [] and not segments & set(unused_segments(min_age_s=3600.0))
    # Data segments belong to every domain: the sweep spares those of the last few seconds.
    youngest_s = max((SHM_DIR / name).stat().st_mtime for name in segments)
    time.sleep(max(0.0, youngest_s + SEGMENT_MIN_AGE_S + 0.1 - time.time()))
    swept = sweep(first)
    assert swept.ports == unused and segments <= set(swept.segments)
    assert swept.freed_bytes >= sum(64 << 20 for _ in segments)  # the profile's 64 MB segment each
    assert files_of(first) == set()
    assert not any(path.exists() for port in unused for path in port_files(port))
    assert not any(path.exists() for name in segments for path in segment_files(name))
    assert files_of(second) == left_by_second  # another domain's ports are not this domain's business
    sweep(second)
    assert files_of(second) == set()


@pytest.mark.parametrize("domain_id", [-1, 233])
def test_a_domain_outside_the_port_range_is_refused(domain_id):
    with pytest.raises(ValueError, match=f"domain_id={domain_id} must be 0..232"):
        domain_ports(domain_id)
