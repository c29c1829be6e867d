"""The fleet cloud's scheduling without ROS: fair per-vehicle queues, batches by key, waiting on a
fake clock, overflow drops handed back, and nothing lost under threads."""
import random
import threading
from collections import Counter

import pytest

from l2p_ros.fleet import CloudBatcher
from test.blocking_helpers import JOIN_S, FakeClock, Taker


def make(vehicles=("a", "b", "c"), queue_depth=100, max_batch=1, max_wait_s=0.0, clock=None) -> CloudBatcher:
    return CloudBatcher(vehicles, queue_depth, max_batch, max_wait_s, clock=clock or FakeClock())


def take_all(batcher: CloudBatcher) -> list[list[tuple[str, object]]]:
    """Every batch until the queues are empty (never blocks: only called with work queued)."""
    batches = []
    while sum(batcher.queued().values()):
        batches.append(batcher.take())
    return batches


# -- construction -----------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs", [dict(vehicles=[]), dict(vehicles=["a", "a"]), dict(queue_depth=0),
                                    dict(max_batch=0), dict(max_wait_s=-0.1)])
def test_invalid_construction_is_a_value_error(kwargs):
    with pytest.raises(ValueError):
        make(**kwargs)


def test_an_unknown_vehicle_is_a_value_error_and_queues_nothing():
    batcher = make()
    with pytest.raises(ValueError, match="unknown vehicle 'z'"):
        batcher.put("z", "cut", 1)
    assert batcher.queued() == {"a": 0, "b": 0, "c": 0}


# -- fairness ------------------------------------------------------------------------------------------
def test_batch_one_is_a_fair_round_robin_and_a_burst_does_not_starve_the_others():
    batcher = make(max_batch=1)
    for i in range(10):  # vehicle a bursts first
        batcher.put("a", "cut", f"a{i}")
    batcher.put("b", "cut", "b0")
    batcher.put("c", "cut", "c0")
    batcher.put("b", "cut", "b1")
    batches = take_all(batcher)
    assert all(len(batch) == 1 for batch in batches)
    order = [item for batch in batches for _, item in batch]
    # b and c are served within the first round, then the remaining ones alternate, each in FIFO order
    assert order[:6] == ["a0", "b0", "c0", "a1", "b1", "a2"]
    assert order[6:] == [f"a{i}" for i in range(3, 10)]


def test_every_vehicle_with_work_heads_a_batch_within_one_round():
    batcher = make(vehicles=("a", "b", "c", "d"), max_batch=2)
    for i in range(20):
        batcher.put("a", "cut", ("a", i))
    for vehicle in "bcd":
        batcher.put(vehicle, "cut", (vehicle, 0))
    first_batches = [batcher.take() for _ in range(4)]
    served = {vehicle for batch in first_batches for vehicle, _ in batch}
    assert served == {"a", "b", "c", "d"}


def test_round_robin_skips_idle_vehicles_and_never_waits_at_batch_one():
    clock = FakeClock()
    batcher = make(max_batch=1, max_wait_s=10.0, clock=clock)  # max_wait_s is moot when a batch is full
    batcher.put("c", "cut", "c0")
    assert batcher.take() == [("c", "c0")]
    batcher.put("b", "cut", "b0")
    batcher.put("c", "cut", "c1")
    assert batcher.take() == [("b", "b0")]  # the pointer moved past c, wrapping to a, then b
    assert batcher.take() == [("c", "c1")]


# -- batching by key -------------------------------------------------------------------------------
def test_a_batch_shares_the_first_vehicles_key_and_fills_round_robin():
    batcher = make(max_batch=4)
    batcher.put("a", 5, "a0")
    batcher.put("a", 5, "a1")
    batcher.put("a", 5, "a2")
    batcher.put("b", 7, "b0")  # another cut: cannot join
    batcher.put("c", 5, "c0")
    batcher.put("c", 5, "c1")
    # pass 1: a0, (b blocked), c0; pass 2: a1, c1 -> full
    assert batcher.take() == [("a", "a0"), ("c", "c0"), ("a", "a1"), ("c", "c1")]
    # b heads the next batch with its own key; a's remaining item has key 5 and cannot join it
    assert batcher.take() == [("b", "b0")]
    assert batcher.take() == [("a", "a2")]


def test_a_vehicle_alone_may_fill_a_batch():
    batcher = make(max_batch=3)
    for i in range(5):
        batcher.put("b", "cut", i)
    assert batcher.take() == [("b", 0), ("b", 1), ("b", 2)]
    assert batcher.take() == [("b", 3), ("b", 4)]


def test_per_vehicle_fifo_is_kept_when_keys_interleave():
    batcher = make(max_batch=4)
    batcher.put("a", 1, "a0")
    batcher.put("a", 2, "a1")
    batcher.put("a", 1, "a2")  # same key as a0, but behind a1: not taken past it
    batcher.put("b", 1, "b0")
    assert batcher.take() == [("a", "a0"), ("b", "b0")]
    assert batcher.take() == [("a", "a1")]
    assert batcher.take() == [("a", "a2")]


def test_max_batch_bounds_every_batch():
    batcher = make(max_batch=2)
    for vehicle in "abc":
        for i in range(3):
            batcher.put(vehicle, "cut", (vehicle, i))
    batches = take_all(batcher)
    assert [len(batch) for batch in batches] == [2, 2, 2, 2, 1]
    assert Counter(vehicle for batch in batches for vehicle, _ in batch) == {"a": 3, "b": 3, "c": 3}


# -- waiting for a fuller batch (fake clock) -----------------------------------------------------------
def test_without_max_wait_take_returns_a_partial_batch_at_once():
    batcher = make(max_batch=8, max_wait_s=0.0)
    batcher.put("a", "cut", "a0")
    assert batcher.take() == [("a", "a0")]


def test_max_wait_holds_a_partial_batch_until_its_deadline_on_the_fake_clock():
    clock = FakeClock()
    batcher = make(max_batch=4, max_wait_s=0.5, clock=clock)
    batcher.put("a", "cut", "a0")
    taker = Taker(batcher)
    clock.advance(0.3)
    batcher.put("b", "cut", "b0")
    batcher.put("c", "other cut", "c0")  # cannot join: no reason to return
    assert not taker.returned(timeout_s=0.3)  # the fake clock is before the deadline: still waiting
    clock.advance(0.2)  # 0.5 s after a0 arrived
    assert taker.returned()
    assert taker.result == [("a", "a0"), ("b", "b0")]
    assert batcher.queued() == {"a": 0, "b": 0, "c": 1}


def test_max_wait_returns_as_soon_as_the_batch_is_full():
    clock = FakeClock()
    batcher = make(max_batch=2, max_wait_s=100.0, clock=clock)
    batcher.put("a", "cut", "a0")
    taker = Taker(batcher)
    batcher.put("b", "cut", "b0")
    assert taker.returned()  # the clock never moved
    assert taker.result == [("a", "a0"), ("b", "b0")]


def test_max_wait_counts_from_the_first_items_arrival_not_from_take():
    clock = FakeClock()
    batcher = make(max_batch=4, max_wait_s=0.5, clock=clock)
    batcher.put("a", "cut", "a0")
    clock.advance(0.6)  # already past the deadline when the worker comes
    assert batcher.take() == [("a", "a0")]


def test_max_wait_ends_early_when_no_item_could_still_join():
    clock = FakeClock()
    batcher = make(vehicles=("a", "b"), max_batch=4, max_wait_s=100.0, clock=clock)
    batcher.put("a", "cut", "a0")
    batcher.put("a", "other", "a1")  # a's next item has another key
    batcher.put("b", "other", "b0")  # and so has b's: whatever arrives later queues behind them
    assert batcher.take() == [("a", "a0")]  # without waiting (the clock never moved)


# -- overflow and accounting ---------------------------------------------------------------------------
def test_overflow_returns_the_vehicles_oldest_item_and_spares_the_others():
    batcher = make(queue_depth=2)
    assert batcher.put("a", "cut", "a0") is None
    assert batcher.put("a", "cut", "a1") is None
    assert batcher.put("b", "cut", "b0") is None
    assert batcher.put("a", "cut", "a2") == "a0"
    assert batcher.put("a", "cut", "a3") == "a1"
    assert batcher.queued() == {"a": 2, "b": 1, "c": 0}
    assert [item for batch in take_all(batcher) for _, item in batch] == ["a2", "b0", "a3"]


def test_shutdown_unblocks_take_and_later_puts_are_returned_as_dropped():
    batcher = make(max_batch=4, max_wait_s=100.0)
    taker = Taker(batcher)  # blocks: nothing queued
    assert not taker.returned(timeout_s=0.2)
    batcher.shutdown()
    assert taker.returned()
    assert taker.result is None
    assert batcher.take() is None
    assert batcher.put("a", "cut", "late") == "late"


def test_shutdown_unblocks_a_take_waiting_for_a_fuller_batch_and_drain_returns_the_rest():
    batcher = make(max_batch=4, max_wait_s=100.0)
    batcher.put("a", "cut", "a0")
    taker = Taker(batcher)
    assert not taker.returned(timeout_s=0.2)
    batcher.shutdown()
    assert taker.returned()
    assert taker.result is None
    assert batcher.drain() == [("a", "a0")]
    assert batcher.queued() == {"a": 0, "b": 0, "c": 0}


def test_nothing_is_lost_under_threaded_stress():
    """Four producers (one bursting), two workers, small queues, random keys: every item put comes
    back exactly once, by take, as dropped by put, or by drain; batches share a key and keep each
    vehicle's order."""
    vehicles = ("v0", "v1", "v2", "v3")
    batcher = CloudBatcher(vehicles, queue_depth=3, max_batch=4, max_wait_s=0.001)  # the real clock
    per_vehicle = {"v0": 2000, "v1": 300, "v2": 300, "v3": 300}
    dropped: list[tuple[str, tuple]] = []
    taken: list[list[tuple[str, tuple]]] = []
    lock = threading.Lock()

    def produce(vehicle: str, seed: int):
        rng = random.Random(seed)
        for i in range(per_vehicle[vehicle]):
            key = rng.choice(["k0", "k1"])
            out = batcher.put(vehicle, key, (vehicle, i, key))
            if out is not None:
                with lock:
                    dropped.append((vehicle, out))

    def work():
        while (batch := batcher.take()) is not None:
            with lock:
                taken.append(batch)

    workers = [threading.Thread(target=work, daemon=True) for _ in range(2)]
    producers = [threading.Thread(target=produce, args=(v, n), daemon=True) for n, v in enumerate(vehicles)]
    for thread in workers + producers:
        thread.start()
    for thread in producers:
        thread.join(60)
        assert not thread.is_alive()
    batcher.shutdown()
    for thread in workers:
        thread.join(JOIN_S)
        assert not thread.is_alive()
    leftover = batcher.drain()

    returned = [pair for batch in taken for pair in batch] + dropped + leftover
    assert len(returned) == sum(per_vehicle.values())
    assert {(vehicle, item[1]) for vehicle, item in returned} == {
        (vehicle, i) for vehicle, count in per_vehicle.items() for i in range(count)}
    assert all(vehicle == item[0] for vehicle, item in returned)
    for batch in taken:
        assert 1 <= len(batch) <= 4
        assert len({item[2] for _, item in batch}) == 1  # one key per batch
        for vehicle in vehicles:  # a vehicle's items in a batch are in its order
            indices = [item[1] for v, item in batch if v == vehicle]
            assert indices == sorted(indices)
