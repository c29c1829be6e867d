"""The ROS-free monitoring core: estimators, the probe protocol, load and power sampling."""
import math
import random
import subprocess
import sys
import time
import types

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from l2p_ros.monitoring.estimators import LinkEstimator, RobustEwma
from l2p_ros.monitoring.load import LoadSampler, NvmlReader, RaplReader
from l2p_ros.monitoring.probe import ProbeTracker, sized_payload_bytes

PAYLOAD_BYTES = 65536


def noisy(rng, mean, relative_std, n):
    return [rng.gauss(mean, relative_std * mean) for _ in range(n)]


# --- RobustEwma -------------------------------------------------------------------------------

def test_converges_and_uncertainty_shrinks_with_samples():
    rng = random.Random(1)
    estimate = RobustEwma(alpha=0.1)
    assert math.isnan(estimate.value) and math.isnan(estimate.std)
    stds = {}
    for n, x in enumerate(noisy(rng, 50.0, 0.05, 300), start=1):
        estimate.add(x)
        stds[n] = estimate.std
    assert estimate.value == pytest.approx(50.0, rel=0.03)
    assert stds[3] > stds[10] > stds[30]
    # Steady state: an EWMA of weight a has the spread of an average of (2 - a) / a samples.
    assert estimate.std == pytest.approx(2.5 * math.sqrt(0.1 / 1.9), rel=0.4)


def test_isolated_outliers_barely_move_the_estimate():
    rng = random.Random(2)
    estimate = RobustEwma()
    for i, x in enumerate(noisy(rng, 20.0, 0.03, 200)):
        estimate.add(x * 10 if i % 10 == 5 else x)  # a 10x spike every tenth sample
    assert estimate.value == pytest.approx(20.0, rel=0.05)
    assert estimate.outliers >= 19 and estimate.level_changes == 0


def test_follows_a_step_change_within_a_few_samples():
    rng = random.Random(3)
    estimate = RobustEwma(step_samples=3)
    for x in noisy(rng, 50.0, 0.03, 100):
        estimate.add(x)
    after = noisy(rng, 10.0, 0.03, 20)
    for x in after[:3]:
        estimate.add(x)
    assert estimate.value == pytest.approx(10.0, rel=0.05)
    assert estimate.level_changes == 1 and estimate.samples == 3  # restarted from the three new samples
    for x in after[3:]:
        estimate.add(x)
    assert estimate.value == pytest.approx(10.0, rel=0.05)


def test_small_drift_is_tracked_without_calling_it_a_step():
    estimate = RobustEwma(alpha=0.2)
    for x in [50.0, 51.0, 49.0] * 10 + [46.0, 45.0, 44.0] * 10:
        estimate.add(x)
    assert estimate.value == pytest.approx(45.0, abs=1.0) and estimate.level_changes == 0


def test_refuses_non_finite_samples():
    with pytest.raises(ValueError):
        RobustEwma().add(math.inf)
    with pytest.raises(ValueError):
        RobustEwma(alpha=0.0)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=-1e6, max_value=1e6), min_size=1, max_size=60))
def test_estimate_stays_within_the_samples_seen(samples):
    estimate = RobustEwma()
    for x in samples:
        estimate.add(x)
    span = max(samples) - min(samples)
    assert min(samples) - 1e-9 * span - 1e-9 <= estimate.value <= max(samples) + 1e-9 * span + 1e-9
    assert math.isnan(estimate.std) or estimate.std >= 0


# --- LinkEstimator ----------------------------------------------------------------------------

def probe_stream(link, rng, *, rtt_ms, bandwidth_mbps, clock_offset_ms, n, start_s=0.0):
    """Feed ``n`` empty and payload probes of a synthetic link: jittered RTT, payload time = bits /
    bandwidth, no dispersion known (timed by RTT over the base)."""
    for i in range(n):
        now_s = start_s + i * 0.5
        jitter_ms = rng.gauss(0.0, 0.5)
        link.add_probe(0, rtt_ms + jitter_ms, rtt_ms / 2 + clock_offset_ms + jitter_ms / 2, now_s)
        transfer_ms = PAYLOAD_BYTES * 8 / (bandwidth_mbps * 1e3)
        link.add_probe(PAYLOAD_BYTES, rtt_ms + transfer_ms + rng.gauss(0.0, 0.5), math.nan, now_s + 0.25)


def test_link_estimator_from_active_probes():
    link = LinkEstimator(timeout_s=2.0)
    probe_stream(link, random.Random(4), rtt_ms=20.0, bandwidth_mbps=10.0, clock_offset_ms=0.0, n=40)
    state = link.state(20.0)
    assert state.rtt_ms == pytest.approx(20.0, abs=0.5)
    assert state.bandwidth_mbps == pytest.approx(10.0, rel=0.05)
    assert 0 < state.bandwidth_std_mbps < 0.5 and 0 < state.rtt_std_ms < 0.5
    assert state.samples == 80 and state.link_up


def test_passive_transfers_cancel_the_clock_offset_between_hosts():
    link = LinkEstimator()
    # The next tier's clock runs 3.7 s ahead: the probes' apparent one-way delay carries the offset.
    probe_stream(link, random.Random(5), rtt_ms=30.0, bandwidth_mbps=8.0, clock_offset_ms=3700.0, n=5)
    link.log_bandwidth = RobustEwma()  # only the passive samples below
    rng = random.Random(6)
    for _ in range(30):
        payload_bytes = rng.choice([300_000, 1_000_000, 2_770_000])
        observed_ms = 15.0 + 3700.0 + payload_bytes * 8 / 50e3 + rng.gauss(0, 1)  # 50 Mbit/s
        assert link.add_transfer(payload_bytes, observed_ms, 3.0)
    assert link.bandwidth_mbps == pytest.approx(50.0, rel=0.05)


def test_transfer_times_are_measured_from_the_base_delay_not_the_mean():
    """Empty probes that waited in the link's queue (behind frames) must not shorten transfers."""
    link = LinkEstimator()
    for i, queued_ms in enumerate([0.0, 40.0, 0.0, 35.0, 50.0]):
        link.add_probe(0, 20.0 + queued_ms, 10.0 + queued_ms, now_s=i * 0.5)
    assert link.rtt_ms.value > 25.0  # the RTT reported includes the queueing...
    transfer_ms = PAYLOAD_BYTES * 8 / 20e3  # 20 Mbit/s
    assert link.add_probe(PAYLOAD_BYTES, 20.0 + transfer_ms, math.nan, now_s=3.0)
    assert link.bandwidth_mbps == pytest.approx(20.0)  # ... the transfer time does not
    assert link.add_transfer(PAYLOAD_BYTES, 10.0 + transfer_ms, now_s=3.1)
    assert link.bandwidth_mbps == pytest.approx(20.0)


def test_an_unanswered_payload_bounds_the_estimate_at_once():
    link = LinkEstimator()
    probe_stream(link, random.Random(7), rtt_ms=2.0, bandwidth_mbps=40.0, clock_offset_ms=0.0, n=10)
    assert link.state(5.0).bandwidth_mbps == pytest.approx(40.0, rel=0.1)
    # The link dropped to 1 Mbit/s: a 150 KB probe is still unanswered after 102 ms...
    assert link.add_unanswered(150_000, elapsed_ms=102.0)
    assert link.bandwidth_mbps == pytest.approx(150_000 * 8 / 100e3, rel=0.05)  # ~12 Mbit/s at most
    assert link.add_unanswered(150_000, elapsed_ms=602.0)  # ... and after 602 ms
    assert link.bandwidth_mbps == pytest.approx(2.0, rel=0.05)
    assert not link.add_unanswered(150_000, elapsed_ms=302.0)  # a looser bound changes nothing
    assert link.bounded == 2
    empty = LinkEstimator()
    assert not empty.add_unanswered(150_000, 500.0)  # no estimate to bound yet


def test_a_payload_probe_is_timed_by_its_dispersion_when_known_not_by_a_late_echo():
    link = LinkEstimator()
    for i in range(5):
        link.add_probe(0, 2.0, 1.0, now_s=i * 0.5)
    transfer_ms = PAYLOAD_BYTES * 8 / (8.0 * 1e3)  # 8 Mbit/s
    # The echo reached a CPU-starved prober 80 ms late: by RTT the link would read far slower.
    assert link.add_probe(PAYLOAD_BYTES, 2.0 + transfer_ms + 80.0, math.nan, 3.0, dispersion_ms=transfer_ms)
    assert link.bandwidth_mbps == pytest.approx(8.0)


def _frames_through_a_fifo_link(link, send_times_s, payload_bytes, rate_mbps, one_way_s, with_arrivals=True):
    """Send frames at ``send_times_s`` through a FIFO link of ``rate_mbps``; the next tier's receipts
    as the estimator gets them (same clock on both hosts, answered at once)."""
    link_free_s = 0.0
    for sent_s in send_times_s:
        start_s = max(sent_s + one_way_s, link_free_s)  # a frame waits for the ones ahead of it
        link_free_s = received_s = start_s + payload_bytes * 8 / (rate_mbps * 1e6)
        link.add_transfer(payload_bytes, (received_s - sent_s) * 1e3, received_s,
                          received_s if with_arrivals else None)


def test_frames_queued_behind_each_other_are_timed_by_all_that_arrived_meanwhile():
    """Frames sent faster than the link carries them queue up: timed from their send stamps they
    read the link slower and slower; timed from the arrival of the frame ahead, at its rate."""
    link = LinkEstimator()
    for i in range(5):
        link.add_probe(0, 2.0, 1.0, now_s=9.0 + i * 0.2, received_s=9.0 + i * 0.2 + 0.001)
    # 23 KB every 100 ms (1.84 Mbit/s) into a 1 Mbit/s link: each waits longer than the last.
    _frames_through_a_fifo_link(link, [10.0 + 0.1 * i for i in range(10)], 23_000, 1.0, 0.001)
    assert link.bandwidth_mbps == pytest.approx(1.0, rel=0.02)

    from_send_stamps = LinkEstimator()  # the same receipts without their arrivals: the old reading
    for i in range(5):
        from_send_stamps.add_probe(0, 2.0, 1.0, now_s=9.0 + i * 0.2)
    _frames_through_a_fifo_link(from_send_stamps, [10.0 + 0.1 * i for i in range(10)], 23_000, 1.0, 0.001,
                                with_arrivals=False)
    assert from_send_stamps.bandwidth_mbps < 0.7


def test_a_drop_in_bandwidth_shows_from_the_second_frame_sent_after_it():
    link = LinkEstimator()
    for i in range(5):
        link.add_probe(0, 2.0, 1.0, now_s=2.0 + i * 0.2, received_s=2.0 + i * 0.2 + 0.001)
    _frames_through_a_fifo_link(link, [3.0 + 0.1 * i for i in range(20)], 23_000, 40.0, 0.001)
    assert link.bandwidth_mbps == pytest.approx(40.0, rel=0.05)
    _frames_through_a_fifo_link(link, [6.0, 6.1], 23_000, 1.0, 0.001)  # 1 Mbit/s from 6.0 s
    assert link.bandwidth_mbps == pytest.approx(1.0, rel=0.05) and link.log_bandwidth.level_changes == 1


def test_a_drop_shows_at_once_although_the_fast_link_read_noisily():
    """As on the testbed: a 40 Mbit/s link sampled between 16 and 115 Mbit/s, then 0.25 Mbit/s.
    The drop is two orders of magnitude, far outside the noise in ratio; smoothed linearly it was
    under three spreads of the noise and the estimate fell by a fifth per sample (here: 45 -> 36
    -> 29 Mbit/s)."""
    link = LinkEstimator()
    rng = random.Random(3)
    for i in range(30):
        sample_mbps = rng.lognormvariate(math.log(40.0), 0.6)
        link.add_probe(25_000, 2.0, 1.0, now_s=i * 0.3, dispersion_ms=25_000 * 8 / (sample_mbps * 1e3))
    assert link.bandwidth_mbps == pytest.approx(40.0, rel=0.25)
    for i in range(2):
        link.add_probe(25_000, 2.0, 1.0, now_s=10.0 + i, dispersion_ms=25_000 * 8 / (0.25 * 1e3))
    assert link.bandwidth_mbps == pytest.approx(0.25, rel=0.05)


def test_a_frame_completed_by_a_resent_fragment_right_behind_another_is_not_read_fast():
    """1 Mbit/s: frame A's last fragment was lost in the queue and resent, so frame B (sent 100 ms
    after A) arrived first and A's resent fragment 2 ms behind B. Timed from the arrival before
    it, A would read 90 Mbit/s; counted over the time both were in flight, about the link's rate."""
    link = LinkEstimator()
    for i in range(5):
        link.add_probe(0, 2.0, 1.0, now_s=9.0 + i * 0.2, received_s=9.0 + i * 0.2 + 0.001)
    assert link.add_transfer(23_000, (10.370 - 10.1) * 1e3, 10.37, received_s=10.370)  # B
    assert link.add_transfer(23_000, (10.372 - 10.0) * 1e3, 10.372, received_s=10.372)  # A
    assert 0.6 < link.bandwidth_mbps < 1.1


def test_a_frame_that_may_have_waited_behind_an_unanswered_probe_is_not_timed():
    link = LinkEstimator()
    for i in range(5):
        link.add_probe(0, 2.0, 1.0, now_s=i * 0.5, received_s=i * 0.5 + 0.001)
    assert not link.add_transfer(23_000, 200.0, 3.0, received_s=3.0, behind_unknown=True)
    assert link.unresolved == 1 and math.isnan(link.bandwidth_mbps)


def test_a_payload_probe_is_timed_from_a_frame_that_arrived_between_it_and_its_lead():
    link = LinkEstimator()
    for i in range(5):
        link.add_probe(0, 2.0, 1.0, now_s=i * 0.5, received_s=i * 0.5 + 0.001)
    transfer_ms = PAYLOAD_BYTES * 8 / (8.0 * 1e3)  # 8 Mbit/s
    link.add_probe(0, 2.0, 1.0, now_s=3.0, received_s=3.0)  # the lead...
    link.add_transfer(23_000, 1.0 + 23.0, 3.0, received_s=3.023)  # ... a frame slipped in after it ...
    assert link.add_probe(PAYLOAD_BYTES, 2.0, math.nan, 3.1, dispersion_ms=23.0 + transfer_ms,
                          received_s=3.023 + transfer_ms / 1e3)  # ... and the payload came behind the frame
    assert link.bandwidth_mbps == pytest.approx(8.0, rel=0.01)


# Throughput samples of frames on the testbed's 40 Mbit/s link (receipts, Mbit/s), as measured.
FAST_LINK_SAMPLES = [39.469, 34.909, 39.102, 17.469, 39.506, 38.915, 38.396, 20.659, 25.883, 17.715, 40.685, 39.587,
                     26.596, 25.504, 24.474, 29.193, 39.759, 27.764, 34.040, 39.032, 25.855, 38.638, 39.544, 27.366,
                     34.879, 39.212, 37.255, 39.587, 39.455, 24.356, 24.168, 25.595, 38.834]


def test_each_outlier_of_a_run_is_judged_against_the_level_before_it():
    """Noisy samples of a fast link, then a drop to 1 Mbit/s: the first low sample must not widen
    the spread so much that the second looks normal."""
    estimate = RobustEwma(step_samples=2)
    for x in FAST_LINK_SAMPLES:
        estimate.add(x)
    changes = estimate.level_changes
    assert not estimate.add(1.03) and estimate.value > 25.0  # waits: a spike, or a new level?
    assert not estimate.add(0.99)
    assert estimate.value == pytest.approx(1.01) and estimate.level_changes == changes + 1
    spiky = RobustEwma(step_samples=2)
    for x in FAST_LINK_SAMPLES:
        spiky.add(x)
    before, changes = spiky.value, spiky.level_changes
    spiky.add(1.0)  # a spike...
    assert spiky.add(31.0)  # ... shown as one by the next sample: it counts now, clipped
    assert 0.7 * before < spiky.value < before and spiky.level_changes == changes


def test_waiting_outliers_say_which_level_they_suggest():
    estimate = RobustEwma(step_samples=2)
    for _ in range(5):
        estimate.add(40.0)
    assert not estimate.changing and math.isnan(estimate.suspected)
    assert not estimate.add(1.2)
    assert estimate.changing and estimate.suspected == 1.2 and estimate.value > 30.0
    estimate.add(0.8)
    assert not estimate.changing and estimate.value == pytest.approx(1.0)


def test_unresolvable_and_premature_observations_are_not_used():
    link = LinkEstimator()
    assert not link.add_probe(PAYLOAD_BYTES, 5.0, 1.0, 0.0)  # no RTT yet to subtract
    assert not link.add_transfer(100_000, 10.0, 0.0)  # no apparent one-way delay yet
    link.add_probe(0, 20.0, 10.0, 0.1)
    assert not link.add_probe(PAYLOAD_BYTES, 19.0, math.nan, 0.2)  # payload faster than an empty probe
    assert not link.add_transfer(0, 12.0, 0.3)
    assert link.unresolved == 1 and math.isnan(link.state(0.3).bandwidth_mbps)


def test_link_goes_down_after_timeout_without_answers():
    link = LinkEstimator(timeout_s=1.5)
    assert not link.link_up(0.0)
    link.add_probe(0, 10.0, 5.0, now_s=100.0)
    assert link.link_up(101.5)
    assert not link.link_up(101.6)
    assert link.state(101.6).rtt_ms == 10.0  # the last estimate is still reported while down
    link.add_transfer(1000, 6.0, now_s=102.0)  # a transfer receipt also proves the link answers
    assert link.link_up(102.5)


def test_a_link_back_after_being_down_is_measured_afresh():
    link = LinkEstimator(timeout_s=2.0)
    probe_stream(link, random.Random(3), rtt_ms=2.0, bandwidth_mbps=40.0, clock_offset_ms=0.0, n=10)
    assert link.state(5.0).bandwidth_mbps == pytest.approx(40.0, rel=0.1)
    link.add_unanswered(150_000, elapsed_ms=8000.0)  # the next tier died: the bound pushed the estimate to ~0
    assert link.bandwidth_mbps < 0.2 and not link.link_up(20.0)
    link.add_probe(0, 3.0, 1.5, now_s=20.0)  # it answers again
    state = link.state(20.0)
    assert link.reconnections == 1 and state.link_up
    assert math.isnan(state.bandwidth_mbps) and state.rtt_ms == 3.0  # nothing of the old link left
    link.add_probe(0, 3.0, 1.5, now_s=20.5)
    assert link.add_probe(PAYLOAD_BYTES, 3.0 + PAYLOAD_BYTES * 8 / 40e3, math.nan, now_s=21.0)
    assert link.state(21.0).bandwidth_mbps == pytest.approx(40.0, rel=0.01)
    assert link.reconnections == 1  # answers within the timeout are no reconnection


# --- ProbeTracker -----------------------------------------------------------------------------

def test_a_confirming_pair_goes_out_of_turn_and_leaves_the_schedule_as_it_was():
    tracker = ProbeTracker(4096, timeout_s=2.0)
    assert [size for _, size in tracker.send(0.0, 100.0)] == [0]
    assert [size for _, size in tracker.send(0.01, 100.01, confirm=True)] == [0, 4096]
    assert tracker.payload_pending_since(100.02) and not tracker.payload_pending_since(100.005)
    assert [size for _, size in tracker.send(0.02, 100.02, confirm=True)] == [0]  # one payload at a time
    tracker.forget_payloads()
    assert [size for _, size in tracker.send(0.5, 100.5)] == [0, 4096]  # the regular second period
    tracker.forget_payloads()
    tracker.send(1.0, 101.0)
    assert [size for _, size in tracker.next_probes(1.5, payload=False)] == [0]  # frames measure the link



def test_a_payload_probe_follows_an_empty_one_every_second_period_and_is_timed_by_their_arrivals():
    tracker = ProbeTracker(PAYLOAD_BYTES, timeout_s=1.0)
    assert tracker.send(10.0, 1000.0) == [(0, 0)]
    assert tracker.send(10.5, 1000.5) == [(1, 0), (2, PAYLOAD_BYTES)]  # the pair: lead, payload
    lead = tracker.match(1, 0, received_wall_s=1000.505, monotonic_s=10.51)
    assert lead.rtt_ms == pytest.approx(10.0) and lead.dispersion_ms is None
    # This host heard the payload's echo late (starved of CPU): the RTT says 60 ms, the arrivals 15.
    result = tracker.match(2, PAYLOAD_BYTES, received_wall_s=1000.52, monotonic_s=10.56)
    assert result.seq == 2 and result.payload_bytes == PAYLOAD_BYTES
    assert result.rtt_ms == pytest.approx(60.0) and result.apparent_one_way_ms == pytest.approx(20.0)
    assert result.dispersion_ms == pytest.approx(15.0)
    assert tracker.match(0, 0, 1000.01, 10.6).rtt_ms == pytest.approx(600.0)


def test_a_payload_probe_whose_lead_was_lost_has_no_dispersion():
    tracker = ProbeTracker(PAYLOAD_BYTES, timeout_s=1.0)
    tracker.send(0.0, 0.0)
    tracker.send(0.5, 0.5)
    assert tracker.match(2, PAYLOAD_BYTES, 0.52, 0.53).dispersion_ms is None


def test_one_payload_probe_in_flight_and_its_late_answer_still_counts():
    tracker = ProbeTracker(PAYLOAD_BYTES, timeout_s=1.0, payload_timeout_s=5.0)
    assert tracker.send(0.0, 0.0) == [(0, 0)]
    assert tracker.send(0.5, 0.5, payload_bytes=4096) == [(1, 0), (2, 4096)]
    assert tracker.send(1.0, 1.0) == [(3, 0)]
    assert tracker.send(1.5, 1.5, payload_bytes=4096) == [(4, 0)]  # seq 2 unanswered: no second payload
    assert tracker.match(0, 0, 0.0, 1.6) is None  # an empty probe's answer after 1.6 s is late
    result = tracker.match(2, 4096, 3.0, 3.1)  # a payload probe's after 2.6 s is news of a slow link
    assert result is not None and result.rtt_ms == pytest.approx(2600.0)
    assert tracker.send(3.5, 3.5, payload_bytes=4096) == [(5, 0)]  # payloads go every second period
    assert tracker.send(4.0, 4.0, payload_bytes=4096) == [(6, 0), (7, 4096)]


def test_payload_probes_lost_with_the_link_are_forgotten_so_the_next_can_go():
    tracker = ProbeTracker(PAYLOAD_BYTES, timeout_s=1.0, payload_timeout_s=10.0)
    tracker.send(0.0, 0.0)
    tracker.send(0.5, 0.5, payload_bytes=4096)  # the pair 1, 2 sent as the link went down
    assert tracker.send(2.5, 2.5, 4096) == [(3, 0)] and tracker.send(3.0, 3.0, 4096) == [(4, 0)]
    assert tracker.forget_payloads() == 1 and tracker.unanswered_payloads(3.1) == []
    assert tracker.send(3.5, 3.5, 4096) == [(5, 0)] and tracker.send(4.0, 4.0, 4096) == [(6, 0), (7, 4096)]
    assert tracker.match(2, 4096, 5.0, 5.0) is None and tracker.dropped["late"] == 1  # should it come after all


def test_probe_payload_is_sized_to_a_share_of_the_link():
    # 4% of 1 s: a 40 ms transfer at any rate.
    assert sized_payload_bytes(10.0, 0.04, 1.0, 1024, 1 << 20) == 50_000
    assert sized_payload_bytes(1000.0, 0.04, 1.0, 1024, 1 << 20) == 1 << 20  # capped
    assert sized_payload_bytes(0.1, 0.04, 1.0, 1024, 1 << 20) == 1024
    assert sized_payload_bytes(math.nan, 0.04, 1.0, 1024, 1 << 20) is None


def test_duplicate_late_unknown_and_mismatched_echoes_are_dropped():
    tracker = ProbeTracker(PAYLOAD_BYTES, timeout_s=1.0)
    tracker.send(0.0, 0.0)
    tracker.send(0.5, 0.5)  # 1 (empty), 2 (payload)
    assert tracker.match(0, 0, 0.0, 0.1) is not None
    assert tracker.match(0, 0, 0.0, 0.2) is None  # duplicate
    assert tracker.match(2, 0, 0.5, 0.6) is None  # says it carried no payload
    assert tracker.match(7, 0, 0.5, 0.6) is None  # never sent
    assert tracker.match(1, 0, 0.5, 1.6) is None  # 1.1 s after sending: late
    tracker.send(5.0, 5.0)
    assert dict(tracker.dropped) == {"duplicate": 1, "mismatched": 1, "unknown": 1, "late": 1}
    assert list(tracker._pending) == [3]  # the expired probes were forgotten


# --- RAPL -------------------------------------------------------------------------------------

def fake_rapl_zone(tmp_path, energy_uj, max_range_uj=262143328850):
    """A powercap zone laid out as the kernel's intel-rapl driver lays it out."""
    zone = tmp_path / "intel-rapl:0"
    zone.mkdir(exist_ok=True)
    (zone / "name").write_text("package-0\n")
    (zone / "max_energy_range_uj").write_text(f"{max_range_uj}\n")
    (zone / "energy_uj").write_text(f"{energy_uj}\n")
    return zone


def test_rapl_power_from_energy_counter_differences(tmp_path):
    zone = fake_rapl_zone(tmp_path, 5_000_000)
    reader = RaplReader(zone, warn=pytest.fail)
    assert math.isnan(reader.power_w(100.0))  # no interval yet
    (zone / "energy_uj").write_text("35000000\n")  # +30 J
    assert reader.power_w(102.0) == pytest.approx(15.0)
    (zone / "energy_uj").write_text("35000000\n")
    assert reader.power_w(103.0) == 0.0


def test_rapl_counter_wrap_around(tmp_path):
    zone = fake_rapl_zone(tmp_path, 262_140_000_000, max_range_uj=262_143_328_850)
    reader = RaplReader(zone, warn=pytest.fail)
    reader.power_w(0.0)
    (zone / "energy_uj").write_text("6671150\n")  # wrapped: 3.32885 J before the wrap + 6.67115 J after
    assert reader.power_w(0.5) == pytest.approx(20.0)


def test_rapl_unreadable_is_nan_and_said_once(tmp_path):
    warnings = []
    missing = RaplReader(tmp_path / "intel-rapl:9", warn=warnings.append)
    assert math.isnan(missing.power_w(0.0)) and math.isnan(missing.power_w(1.0))
    assert len(warnings) == 1 and "intel-rapl:9" in warnings[0]

    zone = fake_rapl_zone(tmp_path, 1000)
    reader = RaplReader(zone, warn=warnings.append)
    reader.power_w(0.0)
    (zone / "energy_uj").unlink()  # e.g. the counter made root-only
    assert math.isnan(reader.power_w(1.0)) and math.isnan(reader.power_w(2.0))
    assert len(warnings) == 2


# --- NVML -------------------------------------------------------------------------------------

def nvml_present():
    pynvml = pytest.importorskip("pynvml", reason="nvidia-ml-py is not installed")
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return False
    pynvml.nvmlShutdown()
    return True


def test_without_a_gpu_the_gpu_fields_are_nan_and_said_once():
    if nvml_present():
        pytest.skip("this machine has NVML and a GPU; test_real_gpu_reading covers it")
    warnings = []
    reader = NvmlReader(0, warn=warnings.append)
    assert all(math.isnan(v) for v in reader.read() + reader.read())
    assert len(warnings) == 1 and "NaN" in warnings[0]
    reader.close()


def test_real_gpu_reading():
    if not nvml_present():
        pytest.skip("no NVIDIA GPU or NVML library on this machine")
    reader = NvmlReader(0, warn=lambda message: None)
    percent, memory_percent, power_w = reader.read()
    reader.close()
    assert 0 <= percent <= 100 and 0 <= memory_percent <= 100
    assert math.isnan(power_w) or 0 < power_w < 2000


def test_nvml_units_and_unsupported_queries(monkeypatch):
    """NVML gives memory in bytes and power in mW; a query the GPU lacks becomes NaN, said once."""
    real = pytest.importorskip("pynvml", reason="nvidia-ml-py is not installed")

    class NVMLError(Exception):
        pass

    def unsupported(handle):
        raise NVMLError("Not Supported")

    fake = types.SimpleNamespace(
        NVMLError=NVMLError, nvmlInit=lambda: None, nvmlShutdown=lambda: None,
        nvmlDeviceGetHandleByIndex=lambda index: ("gpu", index),
        nvmlDeviceGetUtilizationRates=lambda handle: types.SimpleNamespace(gpu=37, memory=12),
        nvmlDeviceGetMemoryInfo=lambda handle: types.SimpleNamespace(total=8 << 30, used=2 << 30, free=6 << 30),
        nvmlDeviceGetPowerUsage=unsupported)
    assert all(hasattr(real, name) for name in vars(fake))  # the fake only uses the real API's names
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    warnings = []
    reader = NvmlReader(0, warn=warnings.append)
    percent, memory_percent, power_w = reader.read()
    assert (percent, memory_percent) == (37.0, 25.0) and math.isnan(power_w)
    fake.nvmlDeviceGetPowerUsage = lambda handle: 45_250  # mW
    assert math.isnan(reader.read()[2])  # an unsupported query is not retried
    assert len(warnings) == 1 and "power" in warnings[0]


# --- LoadSampler on this machine --------------------------------------------------------------

def test_load_sampler_sees_a_busy_machine():
    sampler = LoadSampler(rapl_zone="/nonexistent/intel-rapl:0", warn=lambda message: None)
    time.sleep(0.2)
    idle = sampler.sample()
    assert 0 <= idle.cpu_percent <= 100 and 0 < idle.memory_percent < 100
    assert math.isnan(idle.cpu_package_power_w)
    assert any("CPU package power" in note for note in sampler.unavailable)
    # Keep every core busy: the machine's CPU percent cannot then be low, whatever else runs.
    import psutil
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(psutil.cpu_count())]
    try:
        time.sleep(0.3)  # let them start
        sampler.sample()
        time.sleep(1.0)
        busy = sampler.sample()
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
    assert 80 <= busy.cpu_percent <= 100
