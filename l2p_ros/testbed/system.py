"""Running ``ip`` and ``tc``, and whether this machine can hold a testbed at all."""
from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path


class TestbedError(RuntimeError):
    """The testbed cannot be set up, used or removed; the message says what and why."""


def run(argv: list[str], check: bool = True) -> subprocess.CompletedProcess:
    """Run a command; on failure raise TestbedError with the command and its stderr."""
    if shutil.which(argv[0]) is None:
        raise TestbedError(f"'{argv[0]}' not found: the testbed needs iproute2 (ip, tc)")
    result = subprocess.run(argv, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise TestbedError(f"`{' '.join(argv)}` failed ({result.returncode}): {result.stderr.strip()}")
    return result


CLONE_NEWNET = 0x40000000


def set_network_namespace(fd: int, what: str) -> None:
    """Move the calling thread into the network namespace open as ``fd``. ``os.setns`` is Python
    3.12+; libc's is the same call."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        raise TestbedError(f"cannot enter network namespace {what}: {os.strerror(ctypes.get_errno())}")


def in_namespace(namespace: str, argv: list[str]) -> list[str]:
    """``argv`` run inside network namespace ``namespace``."""
    return ["ip", "netns", "exec", namespace, *argv]


def unavailable_reason() -> str | None:
    """Why a testbed cannot be made here (not root, no iproute2, no namespaces, no tbf), or None."""
    if os.geteuid() != 0:
        return "the testbed needs root (network namespaces, tc, cgroups)"
    for tool, package in (("ip", "iproute2"), ("tc", "iproute2"), ("unshare", "util-linux"), ("nsenter", "util-linux")):
        if shutil.which(tool) is None:
            return f"'{tool}' not found ({package})"
    probe = f"l2p-probe-{uuid.uuid4().hex[:6]}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"cannot create a network namespace: {made.stderr.strip()}"
    try:
        qdisc = subprocess.run(in_namespace(probe, ["tc", "qdisc", "add", "dev", "lo", "root", "tbf", "rate", "1mbit",
                                                    "burst", "10kb", "latency", "50ms"]),
                               capture_output=True, text=True)
        if qdisc.returncode != 0:
            return f"tc tbf unavailable: {qdisc.stderr.strip()}"
        from l2p_ros.testbed.placement import enter_tier_command  # here: placement imports this module

        with tempfile.NamedTemporaryFile("w", suffix="-machine-id") as machine_id:
            machine_id.write(uuid.uuid4().hex + "\n")
            machine_id.flush()
            entered = subprocess.run(enter_tier_command(probe, Path(machine_id.name), [], ["true"]),
                                     capture_output=True, text=True)
        if entered.returncode != 0:
            return f"cannot start a process in a namespace as the testbed does: {entered.stderr.strip()}"
    finally:
        subprocess.run(["ip", "netns", "delete", probe], capture_output=True)
    from l2p_ros.testbed import cpu_limit  # here: cpu_limit raises this module's TestbedError

    try:
        cpu_limit.create(probe, "edge", 0.5)
    except TestbedError as error:
        return f"no CPU limit for the edge: {error}"
    finally:
        cpu_limit.remove_all(probe)
    return None


# iproute2 bind-mounts /etc/netns/<namespace>/<file> over /etc/<file> for every `ip netns exec`:
# the documented way to give a namespace its own resolv.conf, used here for machine-id (dds_profile).
ETC_NETNS = Path("/etc/netns")
STATE_DIR = Path("/run/l2p-testbed")
