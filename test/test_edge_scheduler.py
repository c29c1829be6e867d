"""The edge's scheduling without ROS: a fake clock drives time, threads show where take() blocks."""
import sys
import threading
import time

import pytest

from l2p_ros.edge_scheduler import EdgeScheduler, SchedulerState
from test.blocking_helpers import JOIN_S, FakeClock, Taker


def make(clock=None, decision_wait_s=0.0, cloud_timeout_s=0.5, retry_period_s=2.0) -> EdgeScheduler:
    return EdgeScheduler(decision_wait_s, cloud_timeout_s, retry_period_s, clock=clock or FakeClock())


def send(scheduler: EdgeScheduler, key, frame=None):
    """Take the latest frame and mark it sent to the next tier, as the edge node does."""
    scheduler.put_frame(key, frame if frame is not None else f"frame {key}")
    taken = scheduler.take()
    assert taken.key == key and scheduler.offload_allowed()
    scheduler.mark_sent(taken)
    return taken


# -- latest-frame slot ----------------------------------------------------------------------------
def test_latest_frame_wins_and_the_replaced_ones_are_stale():
    scheduler = make()
    assert scheduler.put_frame((1, 0), "a") is False
    assert scheduler.put_frame((2, 0), "b") is True
    assert scheduler.put_frame((3, 0), "c") is True
    assert scheduler.stale_frames == 2
    # One frame waits for the worker, but none is ahead of the next one to come: it replaces it.
    assert scheduler.state() == SchedulerState(queue_length=1, in_flight=0, next_tier_silent=False,
                                               partitioner_silent=False, fallbacks=0)
    taken = scheduler.take()
    assert (taken.key, taken.frame, taken.timed_out) == ((3, 0), "c", False)
    # The slot is empty again: the next frame replaces nothing.
    assert scheduler.state().queue_length == 0
    assert scheduler.put_frame((4, 0), "d") is False
    assert scheduler.stale_frames == 2


def test_take_blocks_until_a_frame_arrives():
    scheduler = make()
    taker = Taker(scheduler)
    assert not taker.returned(0.3)  # nothing to do yet
    scheduler.put_frame((1, 0), "a")
    assert taker.returned()
    assert taker.result.frame == "a"


def test_shutdown_unblocks_take_and_later_takes_return_none():
    scheduler = make()
    taker = Taker(scheduler)
    assert not taker.returned(0.2)
    scheduler.shutdown()
    assert taker.returned()
    assert taker.result is None
    scheduler.put_frame((1, 0), "a")
    assert scheduler.take() is None


# -- decision matching ----------------------------------------------------------------------------
def test_a_frame_gets_its_own_decision_when_it_is_already_there():
    scheduler = make(decision_wait_s=1.0)
    scheduler.put_decision((1, 0), "decision 1")
    scheduler.put_decision((9, 0), "decision 9")  # the last one, but not this frame's
    scheduler.put_frame((1, 0), "a")
    assert scheduler.take().decision == "decision 1"


def test_a_frame_waits_for_its_own_decision_within_the_wait():
    clock = FakeClock()
    scheduler = make(clock, decision_wait_s=1.0)
    scheduler.put_decision((0, 5), "older decision")
    scheduler.put_frame((1, 0), "a")
    taker = Taker(scheduler)
    assert not taker.returned(0.3)  # waiting for (1, 0)'s decision: the clock has not moved
    clock.advance(0.9)
    scheduler.put_decision((1, 0), "decision 1")
    assert taker.returned()
    assert taker.result.decision == "decision 1"


def test_a_frame_uses_the_last_decision_when_its_own_is_late():
    clock = FakeClock()
    scheduler = make(clock, decision_wait_s=1.0)
    scheduler.put_decision((0, 5), "older decision")
    scheduler.put_decision((0, 7), "last decision")
    scheduler.put_frame((1, 0), "a")
    taker = Taker(scheduler)
    assert not taker.returned(0.3)
    clock.advance(1.0)  # the wait is over
    assert taker.returned()
    assert taker.result.decision == "last decision"
    # Its own decision, arriving late, is kept for a frame with that key; it becomes the last decision.
    scheduler.put_decision((1, 0), "decision 1")
    scheduler.put_frame((2, 0), "b")
    clock_thread_advance = threading.Timer(0.2, clock.advance, args=(1.0,))
    clock_thread_advance.start()
    assert scheduler.take().decision == "decision 1"
    clock_thread_advance.join()


def test_a_frame_has_no_decision_before_any_arrived():
    clock = FakeClock()
    scheduler = make(clock, decision_wait_s=0.5)
    scheduler.put_frame((1, 0), "a")
    taker = Taker(scheduler)
    assert not taker.returned(0.2)
    clock.advance(0.5)
    assert taker.returned()
    assert taker.result.decision is None


def test_a_silent_partitioner_bounds_how_long_the_last_decision_is_kept():
    """A dead partitioner: the last decision was kept forever and every frame first waited
    decision_wait_s for a decision that never came (measured live: 121 frames at cut -1)."""
    clock = FakeClock()
    scheduler = EdgeScheduler(0.5, 0.5, 2.0, clock=clock, partitioner_timeout_s=2.0)
    scheduler.put_decision((0, 1), "offload")
    scheduler.put_frame((1, 0), "a")
    clock.advance(1.0)  # within the timeout: the last decision still holds, after the wait
    taker = Taker(scheduler)
    assert not taker.returned(0.2)
    clock.advance(0.5)
    assert taker.returned() and taker.result.decision == "offload"
    assert not scheduler.state().partitioner_silent
    clock.advance(0.5)  # 2 s since the last decision: silent
    assert scheduler.state().partitioner_silent
    scheduler.put_frame((2, 0), "b")
    taken = scheduler.take()  # no wait: the fake clock does not move, yet take returns
    assert (taken.key, taken.decision) == ((2, 0), None)
    # The next decision ends the silence.
    scheduler.put_decision((3, 0), "edge")
    assert not scheduler.state().partitioner_silent
    scheduler.put_frame((3, 0), "c")
    assert scheduler.take().decision == "edge"


def test_a_partitioner_that_never_answers_is_silent_from_the_first_frame_on():
    clock = FakeClock()
    scheduler = EdgeScheduler(0.0, 0.5, 2.0, clock=clock, partitioner_timeout_s=2.0)
    assert not scheduler.state().partitioner_silent  # no frame yet: nothing to decide
    scheduler.put_frame((1, 0), "a")
    scheduler.take()
    clock.advance(2.0)
    assert scheduler.state().partitioner_silent


def test_a_decision_is_used_once():
    scheduler = make(decision_wait_s=0.0)
    scheduler.put_decision((1, 0), "decision 1")
    scheduler.put_decision((2, 0), "decision 2")
    scheduler.put_frame((1, 0), "a")
    assert scheduler.take().decision == "decision 1"
    scheduler.put_frame((1, 0), "a again")  # same key: its decision was consumed, the last one applies
    assert scheduler.take().decision == "decision 2"


def test_falsy_decisions_are_decisions():
    scheduler = make(decision_wait_s=0.0)
    scheduler.put_decision((1, 0), 0)  # generic: whatever the caller's decision is, even 0
    scheduler.put_decision((9, 0), "last")
    scheduler.put_frame((1, 0), "a")
    assert scheduler.take().decision == 0


def test_decision_history_is_bounded():
    scheduler = make(decision_wait_s=0.0)
    for sec in range(100):
        scheduler.put_decision((sec, 0), f"decision {sec}")
    scheduler.put_frame((0, 0), "a")  # its decision was evicted by later ones
    assert scheduler.take().decision == "decision 99"
    scheduler.put_frame((50, 0), "b")
    assert scheduler.take().decision == "decision 50"


def test_shutdown_during_the_decision_wait_hands_over_the_frame():
    scheduler = make(decision_wait_s=60.0)
    scheduler.put_decision((0, 1), "last")
    scheduler.put_frame((1, 0), "a")
    taker = Taker(scheduler)
    assert not taker.returned(0.2)
    scheduler.shutdown()
    assert taker.returned()
    assert (taker.result.frame, taker.result.decision) == ("a", "last")


# -- in flight, timeouts, fallback and retries ----------------------------------------------------
def test_detections_clear_the_in_flight_entry():
    clock = FakeClock()
    scheduler = make(clock, cloud_timeout_s=0.5)
    send(scheduler, (1, 0))
    send(scheduler, (2, 0))
    assert scheduler.state().in_flight == 2
    assert scheduler.detections_received((1, 0)) is True
    assert scheduler.detections_received((1, 0)) is False  # already answered
    assert scheduler.detections_received((7, 0)) is False  # never sent
    assert scheduler.state().in_flight == 1
    clock.advance(10.0)
    assert scheduler.check_timeouts() is True  # only (2, 0) was still waiting
    # 10 s without a decision: the partitioner is silent too.
    assert scheduler.state() == SchedulerState(queue_length=1, in_flight=0, next_tier_silent=True,
                                               partitioner_silent=True, fallbacks=1)
    assert scheduler.take().key == (2, 0)


def test_a_frame_times_out_after_cloud_timeout_s_not_before():
    clock = FakeClock()
    scheduler = make(clock, cloud_timeout_s=0.5)
    sent = send(scheduler, (1, 0), "a")
    assert sent.sent_s == clock()
    clock.advance(0.49)
    assert scheduler.check_timeouts() is False
    assert scheduler.state() == SchedulerState(queue_length=0, in_flight=1, next_tier_silent=False)
    clock.advance(0.01)
    assert scheduler.check_timeouts() is True
    assert scheduler.state() == SchedulerState(queue_length=1, in_flight=0, next_tier_silent=True, fallbacks=1)
    fallback = scheduler.take()
    assert fallback is sent and fallback.timed_out and fallback.frame == "a"


def test_timeouts_keep_send_order_and_report_silence_once():
    clock = FakeClock()
    scheduler = make(clock, cloud_timeout_s=0.5)
    send(scheduler, (1, 0))
    clock.advance(0.1)
    send(scheduler, (2, 0))
    clock.advance(0.1)
    send(scheduler, (3, 0))
    clock.advance(0.35)  # (1, 0) and (2, 0) are 0.55 and 0.45 s old
    assert scheduler.check_timeouts() is True
    assert scheduler.state().in_flight == 2
    clock.advance(0.1)
    assert scheduler.check_timeouts() is False  # (2, 0) times out too, but the tier was already silent
    clock.advance(1.0)
    assert scheduler.check_timeouts() is False
    assert [scheduler.take().key for _ in range(3)] == [(1, 0), (2, 0), (3, 0)]


def test_take_serves_the_fallback_list_before_the_latest_frame():
    clock = FakeClock()
    scheduler = make(clock, cloud_timeout_s=0.5)
    send(scheduler, (1, 0), "sent")
    scheduler.put_frame((2, 0), "new")
    clock.advance(0.5)
    scheduler.check_timeouts()
    assert (scheduler.state().queue_length, scheduler.state().fallbacks) == (2, 1)  # the fallback is ahead of a new frame
    first, second = scheduler.take(), scheduler.take()
    assert (first.frame, first.timed_out) == ("sent", True)
    assert (second.frame, second.timed_out) == ("new", False)


def test_a_timeout_wakes_a_blocked_take():
    clock = FakeClock()
    scheduler = make(clock, cloud_timeout_s=0.5)
    send(scheduler, (1, 0), "sent")
    taker = Taker(scheduler)
    assert not taker.returned(0.2)
    clock.advance(0.5)
    scheduler.check_timeouts()
    assert taker.returned()
    assert taker.result.frame == "sent" and taker.result.timed_out


def test_while_silent_one_frame_per_retry_period_is_offloaded():
    clock = FakeClock()
    scheduler = make(clock, cloud_timeout_s=0.5, retry_period_s=2.0)
    assert all(scheduler.offload_allowed() for _ in range(5))  # a talking next tier: always
    send(scheduler, (1, 0))
    clock.advance(0.5)
    scheduler.check_timeouts()
    allowed = []
    for _ in range(50):  # 5 s of frames at 10 Hz while the next tier stays silent
        allowed.append(scheduler.offload_allowed())
        clock.advance(0.1)
    retried_at = [i for i, ok in enumerate(allowed) if ok]
    # The first retry is due at once, then one each 2 s (20 frames; float steps may add one frame).
    assert retried_at[0] == 0 and len(retried_at) == 3, retried_at
    assert all(20 <= b - a <= 21 for a, b in zip(retried_at, retried_at[1:])), retried_at


def test_the_first_retry_does_not_depend_on_the_clocks_origin():
    clock = FakeClock(start_s=0.0)  # a monotonic clock may start near zero
    scheduler = make(clock, cloud_timeout_s=0.5, retry_period_s=2.0)
    send(scheduler, (1, 0))
    clock.advance(0.5)
    scheduler.check_timeouts()
    assert scheduler.offload_allowed() is True
    assert scheduler.offload_allowed() is False


def test_an_answer_in_time_ends_the_silence():
    clock = FakeClock()
    scheduler = make(clock, cloud_timeout_s=0.5, retry_period_s=2.0)
    send(scheduler, (1, 0))
    clock.advance(0.5)
    scheduler.check_timeouts()
    assert scheduler.take().timed_out  # finished locally by the worker
    retry = send(scheduler, (2, 0))  # the retry, due at once
    assert scheduler.offload_allowed() is False
    clock.advance(0.3)
    assert scheduler.detections_received(retry.key) is True  # within cloud_timeout_s: the tier is back
    assert scheduler.state().next_tier_silent is False
    assert all(scheduler.offload_allowed() for _ in range(3))
    # Silent again later: the retry period counts from the last retry, not from the silence.
    send(scheduler, (3, 0))
    clock.advance(0.5)
    assert scheduler.check_timeouts() is True
    assert scheduler.offload_allowed() is False  # only 0.8 s since the last retry
    clock.advance(1.2)
    assert scheduler.offload_allowed() is True


@pytest.mark.parametrize("answered_key", [(1, 0), (99, 0)], ids=["the timed-out frame", "a frame never sent"])
def test_a_late_answer_does_not_end_the_silence(answered_key):
    """A tier answering after cloud_timeout_s is too slow to use: offloading stays shut but for the
    retries, so a slow link cannot make every frame time out and run twice."""
    clock = FakeClock()
    scheduler = make(clock, cloud_timeout_s=0.5, retry_period_s=2.0)
    send(scheduler, (1, 0))
    clock.advance(0.5)
    scheduler.check_timeouts()
    assert scheduler.offload_allowed() is True  # the retry
    # The timed-out frame's answer still ends it (no local pass); the silence stays either way.
    assert scheduler.detections_received(answered_key) is (answered_key == (1, 0))
    assert scheduler.state().next_tier_silent is True
    assert scheduler.offload_allowed() is False
    clock.advance(2.0)
    assert scheduler.offload_allowed() is True  # the next retry


def test_a_late_answer_spares_the_fallback_not_yet_run():
    clock = FakeClock()
    scheduler = make(clock, cloud_timeout_s=0.5)
    send(scheduler, (1, 0), "a")
    send(scheduler, (2, 0), "b")
    clock.advance(0.5)
    scheduler.check_timeouts()
    assert scheduler.state().queue_length == 2
    assert scheduler.detections_received((1, 0)) is True  # late, but its detections end it: no local pass
    assert scheduler.detections_received((1, 0)) is False  # a second answer ends nothing
    assert scheduler.state().queue_length == 1
    scheduler.put_frame((3, 0), "c")
    assert [scheduler.take().frame for _ in range(2)] == ["b", "c"]


def test_a_failed_send_leaves_nothing_in_flight():
    clock = FakeClock()
    scheduler = make(clock, cloud_timeout_s=0.5)
    sent = send(scheduler, (1, 0))
    scheduler.send_failed(sent)
    clock.advance(5.0)
    assert scheduler.check_timeouts() is False
    assert scheduler.state() == SchedulerState(queue_length=0, in_flight=0, next_tier_silent=False,
                                               partitioner_silent=True)


def test_parameters_are_checked():
    for bad in ((-0.1, 0.5, 2.0), (0.1, 0.0, 2.0), (0.1, 0.5, 0.0)):
        with pytest.raises(ValueError):
            EdgeScheduler(*bad)
    with pytest.raises(ValueError, match="partitioner_timeout_s > 0"):
        EdgeScheduler(0.1, 0.5, 2.0, partitioner_timeout_s=0.0)


# -- concurrency ----------------------------------------------------------------------------------
def test_every_frame_is_taken_or_stale_under_concurrent_callbacks():
    """A producer, a decision publisher and the worker race; no frame is lost or counted twice."""
    scheduler = EdgeScheduler(decision_wait_s=0.001, cloud_timeout_s=0.5, retry_period_s=2.0)
    frames = 2000
    taken = []

    def worker():
        while (item := scheduler.take()) is not None:
            taken.append(item.key)

    def decisions():
        for n in range(frames):
            scheduler.put_decision(n, f"decision {n}")

    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # interleave threads often
    try:
        threads = [threading.Thread(target=worker), threading.Thread(target=decisions)]
        for thread in threads:
            thread.start()
        stale = sum(scheduler.put_frame(n, n) for n in range(frames))
        deadline = time.monotonic() + JOIN_S
        while scheduler.state().queue_length and time.monotonic() < deadline:
            time.sleep(0.01)
        scheduler.shutdown()
        for thread in threads:
            thread.join(JOIN_S)
    finally:
        sys.setswitchinterval(old_interval)
    assert not any(thread.is_alive() for thread in threads)
    assert stale == scheduler.stale_frames
    assert len(taken) + stale == frames
    assert taken == sorted(set(taken))  # each at most once, in arrival order


def test_the_scheduler_imports_no_ros():
    import subprocess
    code = ("import sys, l2p_ros.edge_scheduler; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('rclpy', 'l2p_msgs', 'sensor_msgs', 'std_msgs')"
            " or m.startswith('l2p_ros.nodes') or m in ('torch', 'cv2', 'numpy')]; print(bad); assert not bad")
    subprocess.run([sys.executable, "-c", code], check=True)
