"""What an option costs once chosen: the queue its own frames leave on the uplink
(``link_rtt:=own-queue``), in the cost model, its table, DADS, and on the committed profiles; and
the link buffer the partitioner measures for it."""
from dataclasses import replace

import numpy as np
import pytest

from l2p_ros.deployment import Deployment, build_cost_model
from l2p_ros.monitoring.link_buffer import LinkBuffer
from l2p_ros.monitoring.state import AssumedLinks, system_state
from l2p_ros.policies.cost_model import CostModel, own_link_queue_ms
from l2p_ros.policies.dads import DadsPolicy
from l2p_ros.policies.registry import make_policy
from l2p_ros.policies.types import Partition
from test.test_monitoring_edge_speed import EDGE_PROFILE, Link, Load
from test.test_policies_fast_dads import random_states, with_complexity


@pytest.mark.parametrize("sending_ms, edge_ms, expected_ms", [
    (50.0, 20.0, 25.0),                        # rho 0.5 at the camera's 100 ms: 0.5 * 50 / (2 * 0.5)
    (50.0, 200.0, 0.25 * 50.0 / 1.5),          # a slow edge feeds the link every 200 ms: rho 0.25
    (95.0, 10.0, 300.0),                       # rho 0.95: M/D/1 says 902.5 ms, the buffer holds 300
    (120.0, 10.0, 300.0),                      # more than the link carries: the queue is full
    (0.0, 10.0, 0.0),                          # nothing sent, nothing waits
    (float("inf"), 10.0, 300.0),               # no link: the frame is lost anyway, the wait is bounded
])
def test_own_link_queue_is_md1_below_a_full_link_and_the_buffer_at_it(sending_ms, edge_ms, expected_ms):
    assert own_link_queue_ms(sending_ms, edge_ms, 100.0, 300.0) == pytest.approx(expected_ms)
    many = own_link_queue_ms(np.array([sending_ms, 0.0]), np.array([edge_ms, edge_ms]), 100.0, 300.0)
    assert many[0] == pytest.approx(expected_ms) and many[1] == 0.0


@pytest.mark.parametrize("arrival_scv", [0.0, 0.3, 1.0, 2.0])
def test_kingmans_wait_scales_md1s_by_how_irregular_the_arrivals_are(arrival_scv):
    """Kingman's G/D/1 wait is M/D/1's times the arrivals' scv (1: at random, M/D/1 itself; 0: a
    perfectly regular camera, no wait below a full link); a full link still waits the buffer."""
    below = own_link_queue_ms(50.0, 20.0, 100.0, 300.0, arrival_scv)
    assert below == pytest.approx(arrival_scv * 25.0)
    assert own_link_queue_ms(50.0, 20.0, 100.0, 300.0) == pytest.approx(25.0)  # the default: Poisson
    assert own_link_queue_ms(120.0, 10.0, 100.0, 300.0, arrival_scv) == 300.0
    assert own_link_queue_ms(95.0, 10.0, 100.0, 300.0, arrival_scv) == pytest.approx(min(arrival_scv * 902.5, 300.0))


def test_the_cost_model_charges_the_states_arrival_scv_and_refuses_a_negative_one():
    model = with_complexity("yolov3-tiny", costs="committed")
    partition = Partition.chain(7, "int8-channel")
    state = replace(random_states(1, 5)[0], link_buffer_ms=300.0, frame_interval_ms=100.0, bandwidth_mbps=5.0)
    poisson, regular = model.predict(partition, state), model.predict(partition, replace(state, link_arrival_scv=0.1))
    assert 0 < poisson.send_ms < max(100.0, poisson.edge_ms)  # below a full link, where the arrivals matter
    assert regular.link_queue_ms == pytest.approx(0.1 * poisson.link_queue_ms) and poisson.link_queue_ms > 0
    assert model.table([partition]).predict(replace(state, link_arrival_scv=0.1)).link_queue_ms[0] == \
        pytest.approx(regular.link_queue_ms, rel=1e-9)
    with pytest.raises(ValueError, match="arrival scv must be >= 0"):
        replace(state, link_arrival_scv=-0.1)


def test_the_queue_grows_with_the_load_and_never_passes_the_buffer():
    sending_ms = np.linspace(0.0, 150.0, 301)
    waits = own_link_queue_ms(sending_ms, np.zeros_like(sending_ms), 100.0, 250.0)
    assert np.all(np.diff(waits) >= 0) and waits.max() == 250.0 and waits[0] == 0.0


def committed_options():
    """The committed yolov3-tiny cost model, image, edge and three chain cuts, and their table."""
    model = with_complexity("yolov3-tiny", costs="committed")
    partitions = ([Partition.image_offload(), Partition.edge_only(model.num_layers)]
                  + [Partition.chain(k, "int8-channel") for k in (4, 7, 12)])
    return model, partitions, model.table(partitions)


def test_the_cost_model_charges_it_only_when_the_state_asks():
    model, partitions, table = committed_options()
    for state in random_states(3, 20):
        asked = replace(state, link_buffer_ms=300.0, frame_interval_ms=100.0)
        as_table = table.predict(asked)
        for i, partition in enumerate(partitions):
            plain, own = model.predict(partition, state), model.predict(partition, asked)
            assert plain.link_queue_ms == 0.0
            expected = own_link_queue_ms(own.send_ms, own.edge_ms, 100.0, 300.0) if own.payload_bytes else 0.0
            assert own.link_queue_ms == pytest.approx(expected)
            assert own.total_ms == pytest.approx(plain.total_ms + own.link_queue_ms)
            assert own.transfer_ms == pytest.approx(plain.transfer_ms + own.link_queue_ms)
            # The edge waits idle for the answer while its frame queues: idle power for that time.
            assert own.edge_energy_j == pytest.approx(plain.edge_energy_j + model.power.idle_w * own.link_queue_ms / 1e3)
            assert as_table.total_ms[i] == pytest.approx(own.total_ms, rel=1e-9)
            assert as_table.link_queue_ms[i] == pytest.approx(own.link_queue_ms, rel=1e-9)


def test_dads_with_its_own_queue_is_the_cost_models_minimum():
    """The queue is no sum over tensors, so no min cut carries it: both methods search the closed
    sets. Light load chooses the least latency the cost model predicts; auto the same where that
    keeps up with the frames, else the heavy-load choice (the queue does not change the stages)."""
    model = with_complexity("yolov3-tiny", costs="committed")
    light = DadsPolicy(model, 100.0, "light", "int8-channel")
    auto, heavy = DadsPolicy(model, 100.0, "auto", "int8-channel"), DadsPolicy(model, 100.0, "heavy", "int8-channel")
    references = [DadsPolicy(model, 100.0, mode, "int8-channel", method="min-cut") for mode in ("light", "auto")]
    kept_up = 0
    for state in random_states(11, 40):
        state = replace(state, link_buffer_ms=300.0, frame_interval_ms=100.0)
        choice = light.decide(state)
        assert [reference.decide(state) for reference in references] == [choice, auto.decide(state)]
        chosen = model.predict(choice, state)
        assert chosen.total_ms == pytest.approx(min(model.predict(p, state).total_ms for p in light.placements),
                                                rel=1e-9), state
        keeps_up = chosen.bottleneck_ms < 100.0
        assert auto.decide(state) == (choice if keeps_up else heavy.decide(state))
        kept_up += keeps_up
    assert 5 < kept_up < 35


def _testbed_like():
    """The committed profiles on an edge a quarter of this VM's core, offered sample-scenes: the
    cost model, the bottleneck's partition and image offload's."""
    deployment = Deployment("yolov3-tiny", 416, edge_profile=EDGE_PROFILE, edge_speed_factor=0.25,
                            bottlenecks=("sample-scenes",))
    model, _ = build_cost_model(deployment, log=lambda *_: None)
    return model, Partition.chain(7, "bn:sample-scenes"), Partition.image_offload("jpeg-q75")


def test_on_the_committed_profiles_the_image_that_fills_the_link_is_charged_its_queue():
    """The testbed's case (docs/testbed.md, experiments 8 and 9): an edge a quarter of this VM's
    core, measured 2.5x slower than its profile, the RTT floor 25 ms. Charging the RTT alone, the
    image wins at 1 and 2 Mbit/s; charged the queue it leaves on a link it fills (a 300 ms buffer),
    every searching policy takes the bottleneck, whose 8 KB a frame leave the link nearly idle. At
    5 Mbit/s the image fits the link and stays the choice either way."""
    model, bottleneck, image = _testbed_like()
    for mbit, buffer_ms, expected in ((1.0, 0.0, image), (1.0, 300.0, bottleneck), (2.0, 0.0, image),
                                      (2.0, 300.0, bottleneck), (5.0, 0.0, image), (5.0, 300.0, image)):
        state = system_state(0.5, Link(mbit, 25.0), Load(0.0), AssumedLinks(), edge_time_factor=2.5,
                             link_buffer_ms=buffer_ms, frame_interval_ms=100.0)
        for name in ("greedy", "dnnsplit", "score"):
            policy = make_policy(name, model, codec="int8-channel+zstd", image_codec="jpeg-q75")
            assert policy.decide(state) == expected, (name, mbit, buffer_ms)
        if buffer_ms and mbit < 5:
            assert model.predict(image, state).link_queue_ms == buffer_ms
            assert model.predict(bottleneck, state).link_queue_ms < 0.2 * buffer_ms


def _with_a_bottleneck(model_name="yolov3-tiny"):
    """Synthetic profiles (payloads growing with complexity) and a bottleneck of 6 KB at cut 7."""
    plain = with_complexity(model_name)
    return CostModel(plain.graph, plain.edge_profile, plain.cloud_profile, payload_bytes_fn=plain.payload_bytes_fn,
                     bottlenecks={"bn:test": (7, 6000.0)})


@pytest.mark.parametrize("method", ["closed-sets", "min-cut"])
@pytest.mark.parametrize("own_queue", [False, True])
def test_dads_weighs_bottlenecks_by_its_rule_over_every_option(method, own_queue):
    """DADS offered a bottleneck: the least latency of every closed set and the bottleneck; where
    that cannot keep up with the frames, the least slowest stage of them all (ties: latency)."""
    model = _with_a_bottleneck()
    dads = DadsPolicy(model, 100.0, "auto", "int8-channel", method=method)
    reference = DadsPolicy(model, 100.0, "light", "int8-channel")
    reference._prepare_closed_sets()
    options = reference.placements + model.bottleneck_partitions()
    kinds = set()
    for state in random_states(5, 60):
        if own_queue:
            state = replace(state, link_buffer_ms=300.0, frame_interval_ms=100.0)
        predicted = [model.predict(p, state) for p in options]
        light = min(range(len(options)), key=lambda i: predicted[i].total_ms)
        if predicted[light].bottleneck_ms >= 100.0:
            light = min(range(len(options)), key=lambda i: (predicted[i].bottleneck_ms, predicted[i].total_ms))
            kinds.add("heavy")
        choice = dads.decide(state)
        assert model.predict(choice, state).total_ms == pytest.approx(predicted[light].total_ms, rel=1e-6), state
        kinds.add(options[light].codec == "bn:test")
    assert kinds == {"heavy", True, False}  # the sample reaches both loads and both kinds of choice


def test_on_the_committed_profiles_dads_keeps_up_where_greedy_takes_the_lower_latency():
    """The testbed's 2 Mbit/s (experiment 9): charged its own queue, the image waits 300 ms but its
    link stage keeps up with 10 frames/s, where the bottleneck's edge stage (2.5x its profile) does
    not: DADS sends the image, greedy (latency alone) the bottleneck. At 1 Mbit/s neither keeps up
    and the bottleneck's edge stage is the shorter: DADS takes it too."""
    model, bottleneck, image = _testbed_like()
    for mbit, expected in ((2.0, {"dads": image, "dads-light": bottleneck, "greedy": bottleneck}),
                           (1.0, {"dads": bottleneck, "dads-light": bottleneck, "greedy": bottleneck})):
        state = system_state(0.5, Link(mbit, 25.0), Load(0.0), AssumedLinks(), edge_time_factor=2.5,
                             link_buffer_ms=300.0, frame_interval_ms=100.0)
        for name, partition in expected.items():
            assert make_policy(name, model, codec="int8-channel+zstd").decide(state) == partition, (name, mbit)


def test_link_buffer_is_the_deepest_queue_of_the_window_and_at_least_the_assumed():
    now = [0.0]
    buffer = LinkBuffer(assumed_ms=200.0, window_s=60.0, clock=lambda: now[0])
    assert buffer.seen_ms is None and buffer.buffer_ms == 200.0
    for t, rtt_ms in ((0.0, 40.0), (5.0, 330.0), (10.0, 120.0), (40.0, 60.0)):
        now[0] = t
        buffer.add(rtt_ms, floor_ms=30.0)
    assert buffer.seen_ms == 300.0 and buffer.buffer_ms == 300.0
    now[0] = 66.0  # the 300 ms queue was 61 s ago
    assert buffer.seen_ms == 90.0 and buffer.buffer_ms == 200.0
    now[0] = 101.0
    assert buffer.seen_ms is None


def test_link_buffer_ignores_unusable_reports_and_refuses_bad_settings():
    buffer = LinkBuffer(assumed_ms=100.0)
    for rtt_ms, floor_ms in ((float("nan"), 20.0), (float("inf"), 20.0), (10.0, 20.0)):
        buffer.add(rtt_ms, floor_ms)
    assert buffer.seen_ms is None
    for assumed_ms in (0.0, -5.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="assumed_ms"):
            LinkBuffer(assumed_ms)
    with pytest.raises(ValueError, match="window_s"):
        LinkBuffer(100.0, window_s=0.0)
