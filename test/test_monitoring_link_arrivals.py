"""How regularly frames enter the uplink (LinkArrivals), which the own queue's Kingman wait charges."""
import numpy as np
import pytest

from l2p_ros.monitoring.link_arrivals import LinkArrivals, charged_scv


class Clock:
    def __init__(self):
        self.now_s = 0.0

    def __call__(self):
        return self.now_s


def test_a_cameras_regular_frames_measure_no_variation_and_random_ones_about_one():
    regular = LinkArrivals()
    for k in range(30):
        assert regular.add(100.0 + 0.1 * k)
    assert regular.scv == pytest.approx(0.0, abs=1e-9)
    rng = np.random.default_rng(3)
    poisson = LinkArrivals(window=2001, clock=Clock())
    for sent_s in np.cumsum(rng.exponential(0.1, 2000)):
        poisson.add(float(sent_s))
    assert poisson.scv == pytest.approx(1.0, abs=0.1)


def test_intervals_alternating_half_and_one_and_a_half_periods_give_a_quarter():
    """Intervals of 50 and 150 ms: mean 100 ms, standard deviation 50 ms, scv 0.25. Stamps that
    come back out of order are sorted; one that comes back twice counts once."""
    arrivals = LinkArrivals()
    stamps = np.cumsum([0.0] + [0.05, 0.15] * 6)
    for stamp in reversed(stamps):
        arrivals.add(float(stamp))
    assert not arrivals.add(float(stamps[3])) and not arrivals.add(float("nan"))
    assert arrivals.scv == pytest.approx(0.25)


def test_too_few_or_old_frames_measure_nothing_and_are_charged_as_if_at_random():
    clock = Clock()
    arrivals = LinkArrivals(min_intervals=10, max_age_s=10.0, clock=clock)
    for k in range(10):
        arrivals.add(0.1 * k)
    assert arrivals.scv is None  # nine intervals
    arrivals.add(1.0)
    assert arrivals.scv == pytest.approx(0.0, abs=1e-9)
    clock.now_s = 10.5  # the frames were received at 0 s: the edge has sent nothing since
    assert arrivals.scv is None
    assert charged_scv(arrivals.scv, "measured") == 1.0
    assert charged_scv(0.2, "measured") == 0.2 and charged_scv(0.2, "poisson") == 1.0


def test_a_wrong_mode_or_window_is_refused_with_what_is_wrong():
    with pytest.raises(ValueError, match="link_arrivals must be one of poisson, measured, got 'regular'"):
        charged_scv(0.2, "regular")
    with pytest.raises(ValueError, match="min_intervals < window"):
        LinkArrivals(window=10, min_intervals=10)
