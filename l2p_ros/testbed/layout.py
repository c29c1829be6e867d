"""The testbed's namespaces, links and addresses: pure data, no system calls.

Every link is a /30 in 10.213.0.0/16, assigned inside the namespaces only: the host's own namespace
never holds a testbed address or interface, so nothing routed there can reach them and nothing in
them has a route out (no default route, no link to the host).
"""
from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass

PREFIX = "l2p"
SUBNET = ipaddress.ip_network("10.213.0.0/16")
TIERS = ("edge", "fog", "cloud")
IFNAME_MAX = 15  # the kernel's IFNAMSIZ - 1


@dataclass(frozen=True)
class Link:
    """A veth pair from tier ``a`` (towards the cloud: ``a`` is nearer the vehicle) to tier ``b``."""

    name: str  # e.g. "edge-cloud"
    a: str
    b: str
    a_ifname: str
    b_ifname: str
    a_address: str  # without the prefix length
    b_address: str
    prefix_len: int = 30

    @property
    def network(self) -> str:
        """The link's subnet, e.g. 10.213.0.0/30."""
        return str(ipaddress.ip_interface(f"{self.a_address}/{self.prefix_len}").network)

    def end(self, tier: str) -> tuple[str, str]:
        """(ifname, address) of this link's end in ``tier``."""
        if tier == self.a:
            return self.a_ifname, self.a_address
        if tier == self.b:
            return self.b_ifname, self.b_address
        raise ValueError(f"tier {tier!r} is not on link {self.name}")


@dataclass(frozen=True)
class Layout:
    prefix: str
    tiers: tuple[str, ...]
    links: tuple[Link, ...]

    def namespace(self, tier: str) -> str:
        if tier not in self.tiers:
            raise ValueError(f"no tier {tier!r} in this testbed (tiers: {', '.join(self.tiers)})")
        return f"{self.prefix}-{tier}"

    @property
    def namespaces(self) -> tuple[str, ...]:
        return tuple(self.namespace(tier) for tier in self.tiers)

    def link(self, name: str) -> Link:
        for link in self.links:
            if link.name == name:
                return link
        raise ValueError(f"no link {name!r} in this testbed (links: {', '.join(l.name for l in self.links)})")

    @property
    def uplink(self) -> Link:
        """The edge's link towards the next tier."""
        return self.links[0]

    def addresses(self, tier: str) -> list[str]:
        """Every address ``tier`` holds."""
        return [link.end(tier)[1] for link in self.links if tier in (link.a, link.b)]

    def all_addresses(self) -> list[str]:
        return [address for tier in self.tiers for address in self.addresses(tier)]

    def dds_address(self, tier: str) -> str:
        """The one address ``tier``'s DDS participants use: its end of its first link (a fog's
        edge-facing address; the cloud reaches it through its route to that link). With both of a
        fog's addresses announced, every writer sent each sample to both, and both copies crossed
        the edge -> fog link (measured: twice the frames' bytes on it)."""
        return next(link.end(tier)[1] for link in self.links if tier in (link.a, link.b))

    def to_dict(self) -> dict:
        return {"prefix": self.prefix, "tiers": list(self.tiers), "links": [asdict(link) for link in self.links]}

    @classmethod
    def from_dict(cls, data: dict) -> "Layout":
        return cls(data["prefix"], tuple(data["tiers"]), tuple(Link(**link) for link in data["links"]))


def make_layout(fog: bool = False, prefix: str = PREFIX) -> Layout:
    """Edge and cloud, or edge, fog and cloud in a chain (edge-fog and fog-cloud links)."""
    if not prefix or not prefix.replace("-", "").isalnum() or len(prefix) > 6:
        raise ValueError(f"prefix {prefix!r}: 1-6 letters, digits or dashes (interface names hold 15 characters)")
    tiers = ("edge", "fog", "cloud") if fog else ("edge", "cloud")
    links = []
    for index, (a, b) in enumerate(zip(tiers, tiers[1:])):
        network = list(SUBNET.subnets(new_prefix=30))[index]
        first, second = list(network.hosts())
        a_if, b_if = f"{prefix}-{a[0]}{b[0]}-{a[0]}", f"{prefix}-{a[0]}{b[0]}-{b[0]}"  # l2p-ec-e, l2p-ec-c
        assert len(a_if) <= IFNAME_MAX and len(b_if) <= IFNAME_MAX
        links.append(Link(f"{a}-{b}", a, b, a_if, b_if, str(first), str(second), network.prefixlen))
    return Layout(prefix, tiers, tuple(links))
