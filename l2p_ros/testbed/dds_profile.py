"""The Fast DDS profile of a testbed namespace: UDP on that namespace's one DDS address only
(``Layout.dds_address``: a fog has two addresses, its participants use the edge-facing one).

- No shared memory: ``/dev/shm`` is the same in every namespace, so SHM would carry edge-to-cloud
  traffic around the shaped link. Inside a namespace UDP goes over its loopback.
- No multicast: discovery is unicast to the metatraffic locators of every tier's DDS address
  (``initialPeersList``), so no announcement is sent anywhere but to the testbed's own addresses.
- Each namespace has its own machine id (``network.up``): with one id for all, Fast DDS takes the
  others for local participants and never matches them over UDP (measured with Fast DDS 3.2).
Measured alternatives that fail: SHM and UDP together with unicast-only discovery (participants in
one namespace no longer match), one shared machine id (nothing crosses namespaces).
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from l2p_ros.testbed.layout import Layout

NS = "http://www.eprosima.com"
SOCKET_BUFFER_BYTES = 4 * 1024 * 1024  # this kernel's net.core.[rw]mem_max: a 1.2 MB image in flight twice
# Participants per namespace the unicast discovery reaches: the edge holds seven (camera, two
# monitors, partitioner, edge, observer, a bench's helper), fog and cloud one or two. Each initial
# peer is one (address, port) to announce to every ANNOUNCEMENT_S: measured, a port range of 12 on
# every address cost a 2 Mbit/s link 2% per participant; listing the ports each tier can use costs
# a third of that.
PARTICIPANTS = {"edge": 10, "fog": 4, "cloud": 4}
DOMAIN_ID = 73  # ROS_DOMAIN_ID of testbed runs: apart from any single-host run of the same machine
ANNOUNCEMENT_S = 10  # Fast DDS's default is 3 s
LEASE_S = 40
# A new participant announces itself this many times, this often: for 5 s, so that participants
# starting up to seconds later in another namespace (rclpy's import alone takes 1-2 s) hear it
# before the next periodic announcement (measured: with Fast DDS's 5 x 0.1 s, two of six test runs
# never matched across namespaces within 9 s).
INITIAL_ANNOUNCEMENTS = 10
INITIAL_ANNOUNCEMENT_PERIOD_NS = 500_000_000


def metatraffic_port(participant_id: int, domain_id: int = DOMAIN_ID) -> int:
    """RTPS well-known metatraffic unicast port: PB + DG * domain + d1 + PG * participant id."""
    return 7400 + 250 * domain_id + 10 + 2 * participant_id


def _sub(parent, tag: str, text: str | None = None, **attributes):
    element = ET.SubElement(parent, tag, attributes)
    if text is not None:
        element.text = text
    return element


def _udp_locator(parent, address: str, port: int | None = None) -> None:
    udp = _sub(_sub(parent, "locator"), "udpv4")
    if port is not None:
        _sub(udp, "port", str(port))
    _sub(udp, "address", address)


def profile_xml(layout: Layout, tier: str) -> str:
    own = [layout.dds_address(tier)]
    root = ET.Element("dds", xmlns=NS)
    profiles = _sub(root, "profiles")
    transport = _sub(_sub(profiles, "transport_descriptors"), "transport_descriptor")
    _sub(transport, "transport_id", "l2p_testbed_udp")
    _sub(transport, "type", "UDPv4")
    _sub(transport, "sendBufferSize", str(SOCKET_BUFFER_BYTES))
    _sub(transport, "receiveBufferSize", str(SOCKET_BUFFER_BYTES))
    allowed = _sub(transport, "interfaceWhiteList")
    for address in own:
        _sub(allowed, "address", address)
    participant = _sub(profiles, "participant", profile_name=f"l2p_testbed_{tier}", is_default_profile="true")
    rtps = _sub(participant, "rtps")
    _sub(_sub(rtps, "userTransports"), "transport_id", "l2p_testbed_udp")
    _sub(rtps, "useBuiltinTransports", "false")
    builtin = _sub(rtps, "builtin")
    metatraffic = _sub(builtin, "metatrafficUnicastLocatorList")  # given: no default multicast locator
    for address in own:
        _udp_locator(metatraffic, address)
    discovery = _sub(builtin, "discovery_config")
    _sub(_sub(discovery, "leaseDuration"), "sec", str(LEASE_S))
    _sub(_sub(discovery, "leaseAnnouncement"), "sec", str(ANNOUNCEMENT_S))
    initial = _sub(discovery, "initialAnnouncements")
    _sub(initial, "count", str(INITIAL_ANNOUNCEMENTS))
    _sub(_sub(initial, "period"), "nanosec", str(INITIAL_ANNOUNCEMENT_PERIOD_NS))
    peers = _sub(builtin, "initialPeersList")
    for peer_tier in layout.tiers:
        for participant_id in range(PARTICIPANTS[peer_tier]):
            _udp_locator(peers, layout.dds_address(peer_tier), metatraffic_port(participant_id))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write(layout: Layout, tier: str, path: Path) -> Path:
    path.write_text(profile_xml(layout, tier))
    return path
