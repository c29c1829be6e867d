"""The edge's CPU load against its own CPU limit (l2p_ros.monitoring.cgroup_cpu): found from
/proc/<pid>/cgroup in v1 (cpu and cpuacct apart) and v2 layouts, and, as root in the testbed's
edge, a busy process reads its quota full while the host-wide figure reads a fraction."""
import subprocess
import sys
import time

import pytest

from l2p_ros.monitoring.cgroup_cpu import CgroupCpuLoad, find_limit
from l2p_ros.testbed import network
from l2p_ros.testbed.placement import TierPlacement
from l2p_ros.testbed.system import unavailable_reason

V1 = "4:memory:/x\n2:cpuacct:/l2p-edge\n1:cpu:/l2p-edge\n0::/\n"


def fake_v1(root, quota_us, usage_ns):
    (root / "cpu" / "l2p-edge").mkdir(parents=True)
    (root / "cpuacct" / "l2p-edge").mkdir(parents=True)
    (root / "cpu" / "l2p-edge" / "cpu.cfs_quota_us").write_text(f"{quota_us}\n")
    (root / "cpu" / "l2p-edge" / "cpu.cfs_period_us").write_text("3334\n")
    (root / "cpuacct" / "l2p-edge" / "cpuacct.usage").write_text(f"{usage_ns}\n")


def test_v1_limit_and_usage_share(tmp_path):
    fake_v1(tmp_path, 1000, 5_000_000_000)
    files = find_limit(V1, tmp_path)
    assert files.quota_cores == pytest.approx(0.3, abs=1e-3)
    load = CgroupCpuLoad(files)
    assert load.percent(10.0) != load.percent(10.0)  # NaN on the first read (and on no time passed)
    (tmp_path / "cpuacct" / "l2p-edge" / "cpuacct.usage").write_text(str(5_000_000_000 + 150_000_000))
    assert load.percent(11.0) == pytest.approx(0.15 / 0.3 * 100, rel=1e-3)  # 0.15 s of 0.3 core-seconds


def test_no_quota_or_no_cgroup_is_unavailable(tmp_path):
    fake_v1(tmp_path, -1, 0)
    assert find_limit(V1, tmp_path) is None
    assert find_limit("1:cpu:/missing\n", tmp_path) is None


def test_v2_limit_and_usage(tmp_path):
    group = tmp_path / "l2p-edge"
    group.mkdir()
    (group / "cpu.max").write_text("50000 100000\n")
    (group / "cpu.stat").write_text("usage_usec 1000000\nuser_usec 900000\n")
    files = find_limit("0::/l2p-edge\n", tmp_path)
    assert files.quota_cores == 0.5
    load = CgroupCpuLoad(files)
    load.percent(0.0)
    (group / "cpu.stat").write_text("usage_usec 1250000\nuser_usec 1100000\n")
    assert load.percent(1.0) == pytest.approx(50.0)
    (group / "cpu.max").write_text("max 100000\n")
    assert find_limit("0::/l2p-edge\n", tmp_path) is None


REASON = unavailable_reason()


@pytest.mark.skipif(REASON is not None, reason=f"testbed unavailable here: {REASON}")
def test_a_busy_edge_reads_its_quota_full():
    network.down("l2pc", log=lambda *_: None)
    layout = network.up(prefix="l2pc", edge_cpu_quota=0.3, log=lambda *_: None)
    try:
        code = ("import time, psutil\nfrom l2p_ros.monitoring.cgroup_cpu import CgroupCpuLoad\n"
                "load = CgroupCpuLoad.of_this_process(); load.percent(time.monotonic()); psutil.cpu_percent()\n"
                "t0 = time.monotonic()\nwhile time.monotonic() - t0 < 2.0: pass\n"
                "print(load.percent(time.monotonic()), psutil.cpu_percent())")
        out = subprocess.run(TierPlacement(layout, "edge").command([sys.executable, "-c", code]),
                             capture_output=True, text=True, check=True).stdout.split()
        quota_percent, host_percent = float(out[0]), float(out[1])
        assert quota_percent == pytest.approx(100.0, abs=15.0)
        assert host_percent < 60.0  # 0.3 of a core on a machine of two or more
        free = subprocess.run(TierPlacement(layout, "cloud").command(
            [sys.executable, "-c", "from l2p_ros.monitoring.cgroup_cpu import CgroupCpuLoad; "
             "print(CgroupCpuLoad.of_this_process())"]), capture_output=True, text=True, check=True).stdout
        assert free.strip() == "None"  # the cloud has no limit: callers use the host-wide figure
    finally:
        network.down("l2pc", log=lambda *_: None)
        time.sleep(0.1)


@pytest.mark.skipif(REASON is not None, reason=f"testbed unavailable here: {REASON}")
def test_the_network_process_own_time_is_not_load():
    """Two busy processes share the edge's 0.3 of a core; the one named like the edge node is left
    out, so the other work reads about half the quota instead of all of it."""
    network.down("l2pc", log=lambda *_: None)
    layout = network.up(prefix="l2pc", edge_cpu_quota=0.3, log=lambda *_: None)
    busy = "import time\nt0 = time.monotonic()\nwhile time.monotonic() - t0 < 4.0: pass\n"
    try:
        edge = TierPlacement(layout, "edge")
        hog = subprocess.Popen(edge.command([sys.executable, "-c", busy, "l2p_ros.nodes.edge_node"]))
        code = ("import time\nfrom l2p_ros.monitoring.cgroup_cpu import CgroupCpuLoad\n"
                "both = CgroupCpuLoad.of_this_process()\n"
                "others = CgroupCpuLoad.of_this_process(('l2p_ros.nodes.' + 'edge_node',))  # not in this command line\n"
                "time.sleep(0.5); both.percent(time.monotonic()); others.percent(time.monotonic())\n"
                "t0 = time.monotonic()\nwhile time.monotonic() - t0 < 2.0: pass\n"
                "print(both.percent(time.monotonic()), others.percent(time.monotonic()))")
        out = subprocess.run(edge.command([sys.executable, "-c", code]), capture_output=True, text=True,
                             check=True).stdout.split()
        hog.wait(timeout=30)
        both, others = float(out[0]), float(out[1])
        assert both == pytest.approx(100.0, abs=15.0)
        assert others == pytest.approx(50.0, abs=15.0)
    finally:
        network.down("l2pc", log=lambda *_: None)
