"""The uplink's backlog the partitioner's own decisions leave (LinkBacklog), and the cost model's
own queue capped at it (``link_backlog:=decided``)."""
from dataclasses import replace

import pytest

from l2p_ros.deployment import Deployment, build_cost_model
from l2p_ros.monitoring.link_backlog import LinkBacklog
from l2p_ros.monitoring.state import AssumedLinks, system_state
from l2p_ros.policies.registry import make_policy
from l2p_ros.policies.types import Partition
from test.test_monitoring_edge_speed import EDGE_PROFILE, Link, Load
from test.test_monitoring_link_arrivals import Clock
from test.test_policies_fast_dads import random_states
from test.test_policies_own_queue import committed_options


def test_decided_frames_queue_on_the_link_one_after_another_and_drain_in_real_time():
    """Frames every 100 ms, 20 ms on the edge, 150 ms on the link: the link gains 50 ms a frame.
    The backlog is what the link still has to send once the edge is free for the next frame."""
    clock = Clock()
    backlog = LinkBacklog(0.1, clock=clock)
    assert backlog.queue_ms == 0.0
    for k in range(4):
        clock.now_s = 0.1 * k
        assert backlog.decided(20.0, 150.0)
    # The fourth frame (at 0.3 s) leaves the edge at 0.32 s behind frames that leave the link at
    # 0.47 s: it is sent 0.47..0.62 s; a frame the edge starts at 0.32 s finds 300 ms on the link.
    assert backlog.queue_ms == pytest.approx(300.0)
    clock.now_s = 0.5
    assert backlog.queue_ms == pytest.approx(120.0)
    assert backlog.decided(30.0, 0.0)  # run on the edge: nothing more on the link, but the edge is busy
    assert backlog.queue_ms == pytest.approx(90.0)  # until 0.53 s, when 90 ms are left
    clock.now_s = 1.0
    assert backlog.queue_ms == 0.0


def test_a_frame_the_edge_cannot_start_before_the_next_arrives_is_never_sent():
    """The live edge keeps the latest frame: with 250 ms on the edge and frames every 100 ms, the
    frames arriving while it is busy are replaced; a FIFO edge runs every one."""
    clock = Clock()
    latest, fifo = LinkBacklog(0.1, clock=clock), LinkBacklog(0.1, latest_frame_wins=False, clock=clock)
    taken = []
    for k in range(6):
        clock.now_s = 0.1 * k
        taken.append(latest.decided(250.0, 40.0))
        assert fifo.decided(250.0, 40.0)
    # 0 s runs to 0.25; 0.1 waits and 0.2 would start at 0.25, before 0.3 arrives: taken, runs to
    # 0.5; 0.3 and 0.4 would start at 0.5 or later: replaced; 0.5 starts at once.
    assert taken == [True, False, True, False, False, True]
    # Each sends its 40 ms once its head is done: when the edge is next free the last one's is left.
    assert latest.queue_ms == pytest.approx(40.0) and fifo.queue_ms == pytest.approx(40.0)
    assert not latest.decided(0.0, 500.0)  # superseded: the edge runs the frame of 0.5 s past 0.6 s
    assert latest.queue_ms == pytest.approx(40.0)
    clock.now_s = 0.8
    assert latest.decided(0.0, 500.0)
    assert latest.queue_ms == pytest.approx(500.0)


def test_a_frame_waits_at_most_the_links_buffer():
    """Every frame sent at once, 300 ms each, over a link that holds 500 ms: the queue a frame
    finds never passes the buffer, however much more was decided."""
    clock = Clock()
    backlog = LinkBacklog(0.1, clock=clock)
    for k in range(20):
        clock.now_s = 0.1 * k
        backlog.decided(0.0, 300.0, max_queue_ms=500.0)
        assert backlog.queue_ms <= 800.0 + 1e-9
    assert backlog.queue_ms == pytest.approx(800.0)  # the last one: a full buffer ahead, then its own 300 ms
    clock.now_s += 0.8
    assert backlog.queue_ms == pytest.approx(0.0)


def test_bad_settings_and_times_are_refused_with_what_is_wrong():
    with pytest.raises(ValueError, match="frame_interval_s must be > 0"):
        LinkBacklog(0.0)
    with pytest.raises(ValueError, match="edge_ms, send_ms and max_queue_ms must be >= 0"):
        LinkBacklog(0.1).decided(-1.0, 10.0)


def test_the_own_queue_is_capped_at_the_queue_now_and_unknown_caps_nothing():
    model, partitions, table = committed_options()
    for state in random_states(5, 10):
        own = replace(state, link_buffer_ms=300.0, frame_interval_ms=100.0)
        for now_ms in (0.0, 40.0, 1000.0):
            capped = replace(own, link_queue_now_ms=now_ms)
            as_table = table.predict(capped)
            for i, partition in enumerate(partitions):
                uncapped = model.predict(partition, own)  # its frame reaches the link after its head
                expected = min(uncapped.link_queue_ms, max(now_ms - uncapped.edge_ms, 0.0))
                assert model.predict(partition, capped).link_queue_ms == pytest.approx(expected)
                assert as_table.link_queue_ms[i] == pytest.approx(expected)
        # Without the own queue there is nothing to cap.
        assert model.predict(partitions[0], replace(state, link_queue_now_ms=0.0)).link_queue_ms == 0.0
    with pytest.raises(ValueError, match="queue now and arrival scv must be >= 0"):
        replace(random_states(1, 1)[0], link_queue_now_ms=-1.0)


def test_greedy_sends_the_image_while_the_link_is_empty_and_runs_the_edge_once_it_is_full():
    """The testbed's edge (a quarter of this VM's core, measured 2.5x its profile) at 1 Mbit/s, no
    bottleneck offered: charged the queue the image would build once chosen (the full buffer), greedy
    never sends it; capped at the queue now, it sends the image while the link is empty and keeps
    it on the edge while a full buffer waits there."""
    deployment = Deployment("yolov3-tiny", 416, edge_profile=EDGE_PROFILE, edge_speed_factor=0.25)
    model, _ = build_cost_model(deployment, log=lambda *_: None)
    greedy = make_policy("greedy", model, codec="int8-channel+zstd", image_codec="jpeg-q75")
    image = Partition.image_offload("jpeg-q75")

    def decide(now_ms: float | None) -> Partition:
        return greedy.decide(system_state(0.5, Link(1.0, 25.0), Load(0.0), AssumedLinks(), edge_time_factor=2.5,
                                          link_buffer_ms=300.0, frame_interval_ms=100.0, link_queue_now_ms=now_ms))
    assert decide(None) != image
    assert decide(0.0) == image
    assert decide(300.0) == decide(None)
