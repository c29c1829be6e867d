"""Test-session setup shared by every test module."""
import os
import tempfile
import warnings

import pytest

from l2p_ros.nodes.dds import use_local_dds
from l2p_ros.nodes.fastdds_shm import sweep

# Keep DDS on this machine for every rclpy process the tests start (they inherit this environment),
# and give this test session its own DDS domain so concurrent runs on one host never see each
# other's topics.
use_local_dds()
os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 100))


@pytest.fixture(autouse=True)
def no_unused_shared_memory_files():
    """Each test starts in a domain without shared-memory ports that no process uses: a node killed
    by an earlier test (on purpose, or by the SIGKILL that ends a slow shutdown) can leave a
    discovery port that keeps every later process of the domain from discovering another (one CI run
    lost 32 tests after 49% to it); and the killed nodes' data segments are reclaimed. Ports touched
    in the last second are spared: a module fixture's nodes may be creating theirs."""
    domain_id = int(os.environ["ROS_DOMAIN_ID"])
    swept = sweep(domain_id, min_age_s=1.0)
    # Ports without a lock file (the wedging kind, where it is the domain's first port, discovery)
    # are named in the run's warnings summary under the test that found them.
    if swept.orphaned_ports:
        warnings.warn(f"removed orphaned shared-memory ports {swept.orphaned_ports} of domain {domain_id}")


@pytest.fixture(autouse=True, scope="session")
def session_temporary_directory(tmp_path_factory):
    """What the code under test puts in the system's temporary directory (a run's node logs, a
    bench's scratch), here and in the processes it starts, goes under this session's pytest folder,
    which pytest prunes (it keeps the last three sessions'), instead of piling up in /tmp."""
    folder = str(tmp_path_factory.mktemp("system-tmp"))
    saved = os.environ.get("TMPDIR"), tempfile.tempdir
    os.environ["TMPDIR"], tempfile.tempdir = folder, folder
    yield folder
    if saved[0] is None:
        os.environ.pop("TMPDIR", None)
    else:
        os.environ["TMPDIR"] = saved[0]
    tempfile.tempdir = saved[1]
