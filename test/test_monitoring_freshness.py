"""Monitor inputs go stale when their monitor stops publishing."""
import pytest

from l2p_ros.monitoring.freshness import Freshness
from test.blocking_helpers import FakeClock


def test_inputs_are_stale_until_they_arrive_and_again_once_too_old():
    clock = FakeClock()
    freshness = Freshness(("network", "load"), max_age_s=3.0, clock=clock)
    assert freshness.stale() == ["load", "network"]
    freshness.arrived("network")
    freshness.arrived("load")
    clock.advance(3.0)
    assert freshness.stale() == []  # exactly max_age_s old is still fresh
    freshness.arrived("load")
    clock.advance(0.5)
    assert freshness.stale() == ["network"] and freshness.age_s("network") == pytest.approx(3.5)
    with pytest.raises(KeyError, match="unknown input 'backhaul'"):
        freshness.arrived("backhaul")
    with pytest.raises(ValueError, match="max_age_s must be > 0"):
        Freshness(("network",), max_age_s=0.0)


def test_changes_report_each_transition_once():
    freshness = Freshness(("network", "load"), max_age_s=1.0, clock=FakeClock())
    assert freshness.changes(["network"]) == (["network"], [])
    assert freshness.changes(["network"]) == ([], [])
    assert freshness.changes(["load"]) == (["load"], ["network"])
    assert freshness.changes([]) == ([], ["load"])
