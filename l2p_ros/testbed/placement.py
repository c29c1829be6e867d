"""How a process is started on a testbed tier: inside the tier's network namespace with its own
machine id, in the tier's CPU limit when it has one, with the tier's DDS profile and the testbed's
domain."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from l2p_ros.testbed import cpu_limit
from l2p_ros.testbed.dds_profile import DOMAIN_ID
from l2p_ros.testbed.layout import Layout
from l2p_ros.testbed.network import state_dir
from l2p_ros.testbed.system import ETC_NETNS

# Run inside `unshare --mount` (so the bind mount stays private to the process): join the cgroups
# whose cgroup.procs files are listed, bind the tier's machine id, enter its network namespace, run
# the rest. A shell line, because the PID written to the cgroups must be the one that becomes the
# node (exec keeps it, nsenter too). Not `ip netns exec`: it remounts /sys, which hides
# /sys/fs/cgroup from the process (the load monitor reads its own CPU limit there).
_ENTER_TIER = ('ns=$1; id=$2; n=$3; shift 3; '
               'while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 1; shift; n=$((n - 1)); done; '
               'mount --bind "$id" /etc/machine-id || exit 1; exec nsenter --net="$ns" "$@"')


def enter_tier_command(namespace: str, machine_id: Path, cgroup_procs: list[Path], argv: list[str]) -> list[str]:
    """``argv`` started in network namespace ``namespace``, with ``machine_id`` as /etc/machine-id,
    in the cgroups whose ``cgroup.procs`` files are listed."""
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", _ENTER_TIER, "l2p-tier",
            f"/run/netns/{namespace}", str(machine_id), str(len(cgroup_procs)), *map(str, cgroup_procs), *argv]


@dataclass(frozen=True)
class TierPlacement:
    layout: Layout
    tier: str

    @property
    def namespace(self) -> str:
        return self.layout.namespace(self.tier)

    @property
    def profile(self) -> Path:
        return state_dir(self.layout.prefix) / f"fastdds-{self.tier}.xml"

    def command(self, argv: list[str]) -> list[str]:
        """``argv`` started inside this tier (and its CPU limit, if any)."""
        return enter_tier_command(self.namespace, ETC_NETNS / self.namespace / "machine-id",
                                  cpu_limit.procs_files(self.layout.prefix, self.tier), argv)

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ if base is None else base)
        env["RMW_IMPLEMENTATION"] = "rmw_fastrtps_cpp"
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(self.profile)
        env["ROS_DOMAIN_ID"] = str(DOMAIN_ID)
        for name in ("FASTDDS_BUILTIN_TRANSPORTS", "ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_STATIC_PEERS",
                     "ROS_LOCALHOST_ONLY"):
            env.pop(name, None)  # each would add transports or peers beside the profile's
        return env
