"""The delay line's queue and the routes it asks for (l2p_ros.testbed.delay); the delay measured on
real links is in test_testbed (root)."""
import pytest

from l2p_ros.testbed.delay import DelayLine, _delay_routes, route_commands, table_of, tun_name
from l2p_ros.testbed.layout import IFNAME_MAX, make_layout


def test_delay_line_releases_each_packet_after_the_delay_in_order():
    line = DelayLine(0.020)
    line.put(b"a", 1.000)
    line.put(b"b", 1.005)
    assert line.due(1.019) == [] and line.wait_s(1.010) == pytest.approx(0.010)
    assert line.due(1.020) == [b"a"] and line.wait_s(1.021) == pytest.approx(0.004)
    assert line.due(2.0) == [b"b"] and line.wait_s(2.0) is None and len(line) == 0
    assert DelayLine(0.0).wait_s(0.0) is None
    with pytest.raises(ValueError, match=">= 0"):
        DelayLine(-0.001)


def test_end_tiers_delay_everything_through_their_link_and_a_fog_what_it_sends_or_forwards_to_each_side():
    layout = make_layout(fog=True, prefix="l2pxyz")
    assert all(len(tun_name("l2pxyz", link.name, tier)) <= IFNAME_MAX for link in layout.links for tier in (link.a, link.b))
    assert table_of(layout, "edge-fog") != table_of(layout, "fog-cloud")
    assert _delay_routes(layout, "edge-fog", "edge") == (["10.213.0.0/16"], [])
    assert _delay_routes(layout, "edge-fog", "fog") == (["10.213.0.0/30"], [layout.link("fog-cloud").a_ifname])
    assert _delay_routes(layout, "fog-cloud", "fog") == (["10.213.0.4/30"], [layout.link("edge-fog").b_ifname])
    commands = route_commands("l2p-def-f", "200", "10.213.0.2", ["10.213.0.0/30"], ["l2p-fc-f"])
    rules = [c for c in commands if c[:3] == ["ip", "rule", "add"]]
    assert [(r[r.index("iif") + 1], r[r.index("to") + 1]) for r in rules] == [
        ("lo", "10.213.0.0/30"), ("l2p-fc-f", "10.213.0.0/30")]
    assert ["ip", "route", "replace", "default", "dev", "l2p-def-f", "src", "10.213.0.2", "table", "200"] in commands
