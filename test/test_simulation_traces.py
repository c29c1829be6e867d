"""Bandwidth traces: CSV round trip, clear errors, bounded seeded generators, transfer integration."""
import math

import numpy as np
import pytest

from l2p_ros.simulation import traces
from l2p_ros.simulation.traces import Trace, TraceError, load_trace


def generated(seed: int) -> Trace:
    rng = np.random.default_rng(seed)
    t = traces.time_grid(120.0, 1.0)
    return Trace(t, traces.fluctuating_mbps(t, rng), traces.jittered_rtt_ms(t, rng), traces.load_bursts(t, rng),
                 note="simulated: test\nsecond line")


def test_round_trip_is_exact(tmp_path):
    trace = generated(3)
    trace.save(tmp_path / "trace.csv")
    loaded = load_trace(tmp_path / "trace.csv")
    for name in ("time_s", "bandwidth_mbps", "rtt_ms", "edge_load"):
        assert np.array_equal(getattr(loaded, name), getattr(trace, name)), name
    assert loaded.note == trace.note


def test_optional_columns_take_defaults(tmp_path):
    path = tmp_path / "bw.csv"
    path.write_text("time_s,bandwidth_mbps\n0,10\n1.5,2.5\n")
    trace = load_trace(path, default_rtt_ms=30.0)
    assert trace.bandwidth_mbps.tolist() == [10.0, 2.5]
    assert trace.rtt_ms.tolist() == [30.0, 30.0] and trace.edge_load.tolist() == [0.0, 0.0]
    assert trace.at(1.0) == (10.0, 30.0, 0.0) and trace.at(99.0)[0] == 2.5  # sample and hold


@pytest.mark.parametrize("text, expected", [
    ("", "no samples"),
    ("time_s,rtt_ms\n0,1\n", "lacks column(s) bandwidth_mbps"),
    ("time_s,bandwidth_mbps,speed\n0,1,2\n", "column 3 'speed' is unknown"),
    ("time_s,bandwidth_mbps\n0,1\n1,fast\n", ":3: column 'bandwidth_mbps': 'fast' is not a number"),
    ("time_s,bandwidth_mbps\n0,1\n1,2,3\n", ":3: 3 fields, the header has 2"),
    ("time_s,bandwidth_mbps\n0,1\n0,2\n", ":3: column 'time_s'"),
    ("time_s,bandwidth_mbps\n0,-1\n", ":2: column 'bandwidth_mbps': -1.0 must be >= 0"),
    ("time_s,bandwidth_mbps,edge_load\n0,1,1.5\n", ":2: column 'edge_load': 1.5 must be in 0..1"),
    ("time_s,bandwidth_mbps,rtt_ms\n# comment\n0,1,nan\n", ":3: column 'rtt_ms': 'nan' is not finite"),
])
def test_errors_name_file_line_and_column(tmp_path, text, expected):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(TraceError) as error:
        load_trace(path)
    assert str(path) in str(error.value) and expected in str(error.value)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(TraceError, match="trace not found: .*nope.csv"):
        load_trace(tmp_path / "nope.csv")


GENERATORS = {
    "fluctuating": lambda t, rng: traces.fluctuating_mbps(t, rng, 5.0, 50.0),
    "steps": lambda t, rng: traces.step_changes_mbps(t, rng, 5.0, 50.0, mean_hold_s=20.0),
    "markov": lambda t, rng: traces.markov_on_off_mbps(t, rng, 20.0, 0.0, mean_on_s=30.0, mean_off_s=5.0),
    "rtt": lambda t, rng: traces.jittered_rtt_ms(t, rng, 20.0, 3.0, min_ms=1.0),
    "load": lambda t, rng: traces.load_bursts(t, rng),
}
BOUNDS = {"fluctuating": (5.0, 50.0), "steps": (5.0, 50.0), "markov": (0.0, 20.0), "rtt": (1.0, math.inf),
          "load": (0.0, 1.0)}


@pytest.mark.parametrize("name", GENERATORS)
def test_generators_are_bounded_and_seeded(name):
    t = traces.time_grid(1800.0, 1.0)
    make = GENERATORS[name]
    first, again, other = (make(t, np.random.default_rng(seed)) for seed in (7, 7, 8))
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)
    low, high = BOUNDS[name]
    assert first.min() >= low and first.max() <= high
    assert len(np.unique(first)) > 1  # it does change over half an hour


def test_generators_reach_their_range():
    t = traces.time_grid(1800.0, 1.0)
    bandwidth = traces.fluctuating_mbps(t, np.random.default_rng(1), 5.0, 50.0)
    assert bandwidth.min() < 8 and bandwidth.max() > 30
    markov = traces.markov_on_off_mbps(t, np.random.default_rng(1), 20.0, 0.0, 60.0, 5.0)
    assert set(np.unique(markov)) == {0.0, 20.0} and markov[0] == 20.0
    load = traces.load_bursts(t, np.random.default_rng(1))
    assert (load > 0.5).mean() > 0.05 and np.median(load) < 0.2  # bursts, mostly light
    throttled = traces.throttled_mbps(t, 40.0, 5.0, 600.0, 1200.0)
    assert throttled[599] == 40.0 and throttled[600] == 5.0 and throttled[1200] == 40.0


def test_time_to_complete_integrates_the_held_rate():
    trace = Trace(np.array([0.0, 1.0, 2.0, 3.0]), np.ones(4), np.zeros(4), np.zeros(4))
    rates = np.array([10.0, 0.0, 5.0, 0.0])
    assert trace.time_to_complete(rates, 0.5, 2.0) == pytest.approx(0.7)
    assert trace.time_to_complete(rates, 0.5, 10.0) == pytest.approx(2.0 + 5.0 / 5.0)  # stalled 1..2 s
    assert trace.time_to_complete(rates, 0.0, 0.0) == 0.0
    assert trace.time_to_complete(rates, 2.5, 100.0) == math.inf  # the rate stays 0 after 3 s
    assert trace.time_to_complete(np.array([1.0, 1.0, 1.0, 2.0]), 10.0, 4.0) == pytest.approx(12.0)
