"""RttFloor: the lowest RTT of the last window, what a choice that keeps up with the frames pays."""
import math

import pytest

from l2p_ros.monitoring.rtt_floor import RttFloor


def test_the_floor_is_the_lowest_rtt_of_the_window_and_forgets_older_ones():
    now = [0.0]
    floor = RttFloor(window_s=10.0, clock=lambda: now[0])
    assert floor.floor_ms is None
    for at_s, rtt_ms in ((0.0, 30.0), (1.0, 250.0), (2.0, 380.0), (9.0, 300.0)):
        now[0] = at_s
        floor.add(rtt_ms)
    assert floor.floor_ms == 30.0  # the image's queue built on a link whose own RTT is 30 ms
    now[0] = 10.5
    assert floor.floor_ms == 250.0  # 30 ms is older than 10 s: the queue has stood that long
    now[0] = 11.5
    assert floor.floor_ms == 300.0
    floor.add(40.0)  # the queue drained
    assert floor.floor_ms == 40.0
    now[0] = 30.0
    assert floor.floor_ms is None


def test_unusable_rtts_are_ignored_and_a_bad_window_is_refused():
    floor = RttFloor()
    for rtt_ms in (math.nan, math.inf, -1.0):
        floor.add(rtt_ms)
    assert floor.floor_ms is None
    with pytest.raises(ValueError, match="window_s"):
        RttFloor(window_s=0.0)
