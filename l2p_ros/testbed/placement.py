"""How a process is started on a testbed tier: inside the tier's network namespace (with its own
machine id, bind-mounted by ``ip netns exec``), in the tier's CPU limit when it has one, with the
tier's DDS profile and the testbed's domain."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from l2p_ros.testbed import cpu_limit
from l2p_ros.testbed.dds_profile import DOMAIN_ID
from l2p_ros.testbed.layout import Layout
from l2p_ros.testbed.network import state_dir

# Joins the cgroup given as $1, then runs the rest: a shell line, because the PID written must be
# the one that then becomes the node (exec keeps it), and children inherit the group.
_JOIN_CGROUP = 'echo $$ > "$1" && shift && exec "$@"'


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
        wrapped = ["ip", "netns", "exec", self.namespace, *argv]
        procs = cpu_limit.procs_file(self.layout.prefix, self.tier)
        return ["sh", "-c", _JOIN_CGROUP, "l2p-cgroup", str(procs), *wrapped] if procs else wrapped

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        env = dict(os.environ if base is None else base)
        env["RMW_IMPLEMENTATION"] = "rmw_fastrtps_cpp"
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(self.profile)
        env["ROS_DOMAIN_ID"] = str(DOMAIN_ID)
        for name in ("FASTDDS_BUILTIN_TRANSPORTS", "ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_STATIC_PEERS",
                     "ROS_LOCALHOST_ONLY"):
            env.pop(name, None)  # each would add transports or peers beside the profile's
        return env
