"""Making and removing the testbed's namespaces and links, and reading what is there.

``down`` finds what to remove from the system itself (namespaces named ``<prefix>-<tier>``, their
``/etc/netns`` folders, the cgroup, the state folder), not from a record of ``up``: after a crash it
still removes everything, and it is safe to run twice.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import uuid

from l2p_ros.testbed import cpu_limit, dds_profile
from l2p_ros.testbed.layout import PREFIX, TIERS, Layout, make_layout
from l2p_ros.testbed.system import ETC_NETNS, STATE_DIR, TestbedError, in_namespace, run


def state_dir(prefix: str = PREFIX):
    return STATE_DIR / prefix


def existing_namespaces(prefix: str = PREFIX) -> list[str]:
    """The testbed namespaces of ``prefix`` present now."""
    names = [line.split()[0] for line in run(["ip", "netns", "list"]).stdout.splitlines() if line.strip()]
    ours = {f"{prefix}-{tier}" for tier in TIERS}
    return sorted(name for name in names if name in ours)


def load_layout(prefix: str = PREFIX) -> Layout:
    """The layout of the testbed that is up; TestbedError if there is none."""
    path = state_dir(prefix) / "layout.json"
    present = existing_namespaces(prefix)
    if not path.is_file() or not present:
        raise TestbedError(f"no testbed '{prefix}' is up: run `l2p testbed up` (as root) first")
    layout = Layout.from_dict(json.loads(path.read_text()))
    missing = sorted(set(layout.namespaces) - set(present))
    if missing:
        raise TestbedError(f"testbed '{prefix}' is incomplete ({', '.join(missing)} missing): "
                           "`l2p testbed down`, then up again")
    return layout


def up(fog: bool = False, prefix: str = PREFIX, edge_cpu_quota: float | None = None,
       fog_cpu_quota: float | None = None, log=print) -> Layout:
    """Create the namespaces, links, DDS profiles and (with ``edge_cpu_quota``, ``fog_cpu_quota``)
    the edge's and the fog's CPU limits."""
    if fog_cpu_quota is not None and not fog:
        raise ValueError("fog_cpu_quota needs a fog (fog=True)")
    layout = make_layout(fog, prefix)
    present = existing_namespaces(prefix)
    if present:
        raise TestbedError(f"testbed '{prefix}' is already up ({', '.join(present)}): `l2p testbed down` first")
    try:
        for tier in layout.tiers:
            namespace = layout.namespace(tier)
            run(["ip", "netns", "add", namespace])
            run(["ip", "-n", namespace, "link", "set", "lo", "up"])
            # IPv4 only: no IPv6 link-local chatter (router solicitations) on the testbed's links.
            run(in_namespace(namespace, ["sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1",
                                         "net.ipv6.conf.default.disable_ipv6=1"]))
            # Each tier is its own host: Fast DDS treats participants with the same machine id as
            # local and then never matches them over UDP (measured), so each namespace gets its own
            # (`ip netns exec` binds /etc/netns/<ns>/* over /etc; placement binds it the same way).
            (ETC_NETNS / namespace).mkdir(parents=True, exist_ok=True)
            (ETC_NETNS / namespace / "machine-id").write_text(uuid.uuid4().hex + "\n")
        for link in layout.links:
            a_ns, b_ns = layout.namespace(link.a), layout.namespace(link.b)
            # Both ends are created inside their namespaces: the host never holds either interface.
            run(["ip", "link", "add", link.a_ifname, "netns", a_ns, "type", "veth", "peer", "name", link.b_ifname,
                 "netns", b_ns])
            for namespace, ifname, address in ((a_ns, link.a_ifname, link.a_address),
                                               (b_ns, link.b_ifname, link.b_address)):
                run(["ip", "-n", namespace, "addr", "add", f"{address}/{link.prefix_len}", "dev", ifname])
                run(["ip", "-n", namespace, "link", "set", ifname, "up"])
        if len(layout.links) > 1:
            # Edge <-> cloud through the fog, forwarding there. Whole subnets: a participant on the fog
            # announces both its addresses, and one the sender cannot route to stalls its delivery
            # (measured: a fog reader got nothing while the edge could not reach 10.213.0.5).
            first, second = layout.links
            run(["ip", "-n", layout.namespace("edge"), "route", "add", second.network, "via", first.b_address])
            run(["ip", "-n", layout.namespace("cloud"), "route", "add", first.network, "via", second.a_address])
            run(in_namespace(layout.namespace("fog"), ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]))
        _wait_until_running(layout)
        directory = state_dir(prefix)
        directory.mkdir(parents=True, exist_ok=True)
        for tier in layout.tiers:
            dds_profile.write(layout, tier, directory / f"fastdds-{tier}.xml")
        (directory / "layout.json").write_text(json.dumps(layout.to_dict(), indent=1))
        for tier, cores in (("edge", edge_cpu_quota), ("fog", fog_cpu_quota)):
            if cores is not None:
                cpu_limit.create(prefix, tier, cores)
    except BaseException:
        down(prefix, log=lambda *_: None)
        raise
    log(f"testbed '{prefix}' up: {', '.join(layout.namespaces)}; links "
        + ", ".join(f"{l.name} {l.a_address}<->{l.b_address}" for l in layout.links))
    return layout


def _wait_until_running(layout: Layout, timeout_s: float = 5.0) -> None:
    """Wait until every link end has carrier. Fast DDS started earlier finds its whitelisted address
    on no running interface and opens no UDP socket at all (measured right after `up`)."""
    deadline = time.monotonic() + timeout_s
    for link in layout.links:
        for tier in (link.a, link.b):
            namespace, ifname = layout.namespace(tier), link.end(tier)[0]
            while interface_counters(namespace, ifname)["state"] != "UP":
                if time.monotonic() > deadline:
                    raise TestbedError(f"{ifname} in {namespace} has no carrier after {timeout_s} s")
                time.sleep(0.02)


def _stop_processes(namespace: str) -> int:
    """Stop what still runs in ``namespace`` (left by a crash): SIGTERM, then SIGKILL. Not this process,
    which may have entered the namespace itself (``live_run``)."""
    def pids() -> list[int]:
        # Not the `ip` listing them either: started from inside the namespace, it is in it.
        lister = subprocess.Popen(["ip", "netns", "pids", namespace], stdout=subprocess.PIPE, text=True)
        found = (int(p) for p in lister.communicate()[0].split())
        return [pid for pid in found if pid not in (os.getpid(), lister.pid)]

    found = pids()
    for sig, wait_s in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 1.0)):
        for pid in pids():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait_s
        while pids() and time.monotonic() < deadline:
            time.sleep(0.1)
    return len(found)


def down(prefix: str = PREFIX, log=print) -> list[str]:
    """Remove every part of testbed ``prefix`` that exists; returns what was removed."""
    removed = []
    for namespace in existing_namespaces(prefix):
        stopped = _stop_processes(namespace)
        run(["ip", "netns", "delete", namespace])  # its veth ends go with it, and so their peers
        removed.append(f"namespace {namespace}" + (f" ({stopped} processes stopped)" if stopped else ""))
    for tier in TIERS:
        folder = ETC_NETNS / f"{prefix}-{tier}"
        if folder.exists():
            shutil.rmtree(folder)
            removed.append(str(folder))
    removed += cpu_limit.remove_all(prefix)
    if state_dir(prefix).exists():
        shutil.rmtree(state_dir(prefix))
        removed.append(str(state_dir(prefix)))
    log(f"testbed '{prefix}' down" + (": removed " + ", ".join(removed) if removed else ": nothing was up"))
    return removed


def interface_counters(namespace: str, ifname: str) -> dict:
    """Bytes and packets sent and received on an interface (``ip -s``)."""
    data = json.loads(run(["ip", "-n", namespace, "-s", "-j", "link", "show", ifname]).stdout)[0]
    stats = data["stats64"]
    return {"tx_bytes": stats["tx"]["bytes"], "tx_packets": stats["tx"]["packets"],
            "rx_bytes": stats["rx"]["bytes"], "rx_packets": stats["rx"]["packets"], "state": data.get("operstate")}


def status(prefix: str = PREFIX) -> dict:
    """What is up: namespaces, each link's ends with rate and counters, the edge's and fog's CPU quotas."""
    from l2p_ros.testbed.shaping import current_rate_mbit

    namespaces = existing_namespaces(prefix)
    if not namespaces:
        return {"prefix": prefix, "up": False}
    layout = load_layout(prefix)
    links = {}
    for link in layout.links:
        ends = {}
        for tier, direction in ((link.a, "up"), (link.b, "down")):
            ifname, address = link.end(tier)
            namespace = layout.namespace(tier)
            ends[direction] = {"from": tier, "interface": ifname, "address": address,
                               "rate_mbit": current_rate_mbit(namespace, ifname), **interface_counters(namespace, ifname)}
        links[link.name] = ends
    from l2p_ros.testbed.delay import current_rtt_ms

    return {"prefix": prefix, "up": True, "namespaces": namespaces, "links": links,
            "rtt_ms": {link.name: current_rtt_ms(layout, link.name) for link in layout.links},
            "edge_cpu_quota": cpu_limit.quota(prefix, "edge"),
            "fog_cpu_quota": cpu_limit.quota(prefix, "fog") if "fog" in layout.tiers else None,
            "state_dir": str(state_dir(prefix))}
