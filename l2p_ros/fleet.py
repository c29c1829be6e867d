"""One cloud, many vehicles, free of ROS: which received frames the cloud worker runs next, and
which of them run together as one batch.

Scheduling rules of :class:`CloudBatcher`:

- Per-vehicle FIFO queues of at most ``queue_depth`` items. A vehicle's items leave its queue in
  the order they arrived (a batch takes a vehicle's oldest items, never skips over one). When an
  item arrives at a full queue, the vehicle's oldest item is pushed out and returned by
  :meth:`CloudBatcher.put`: the caller counts it as dropped (``cloud_backlog``) for that vehicle.
  Only the vehicle that overflowed loses a frame; the others' queues are untouched.
- The vehicle served first rotates round robin: a batch starts at the first vehicle with a queued
  item at or after the rotation pointer (vehicles in the order given to the constructor), and the
  pointer then moves to the vehicle after it. So one vehicle's burst cannot starve another: every
  vehicle with work heads a batch at least once in every ``len(vehicles)`` batches.
- The batch's key is that of the first vehicle's oldest item. Items share a batch only when their
  keys are equal (for the cloud: same model, cut and codec, so their tensors stack).
- Filling: compatible items are added in round-robin order over the vehicles, starting at the
  first vehicle, at most one per vehicle per pass, and more passes while the batch is not full
  (work-conserving: a vehicle alone may fill a batch). A vehicle whose next item has another key
  adds nothing more to this batch (its FIFO order is kept).
- Waiting: when the batch is not full and ``max_wait_s > 0``, :meth:`CloudBatcher.take` waits until
  ``max_wait_s`` after the first item's arrival for more compatible items, then returns what there
  is. It returns earlier when the batch fills, or when no item that could still arrive could join
  it (every vehicle's next item, after those in the batch, is already queued with another key).
- With ``max_batch=1`` this is exactly a fair round robin of single items and never waits.
- Nothing is lost silently: every item given to :meth:`CloudBatcher.put` is returned exactly once,
  by :meth:`CloudBatcher.take` in a batch, by :meth:`CloudBatcher.put` as dropped (overflow, or
  any put after :meth:`CloudBatcher.shutdown`), or by :meth:`CloudBatcher.drain` after shutdown.

Items and keys are opaque here (the cloud node passes its decoded-or-not FeatureMaps and a
(model, cut, codec) key). Times come from an injectable monotonic clock in seconds, so tests can
drive time.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Generic, Hashable, Sequence, TypeVar

T = TypeVar("T")  # what the caller queues for a frame (e.g. its received message)

# Longest single condition wait, real seconds: waits re-read the clock this often, so a fake clock
# advanced by a test is noticed without a notify.
_POLL_S = 0.05


@dataclass
class _Queued(Generic[T]):
    key: Hashable
    item: T
    arrival_s: float


class CloudBatcher(Generic[T]):
    """Per-vehicle queues served fairly, batched by key (see the module docstring for the rules).

    Thread-safe: every method takes one internal :class:`threading.Condition`; :meth:`put` never
    blocks on the worker, :meth:`take` blocks the worker(s) until a batch is ready.
    """

    def __init__(self, vehicles: Sequence[str], queue_depth: int, max_batch: int = 1, max_wait_s: float = 0.0,
                 clock: Callable[[], float] = time.monotonic):
        vehicles = list(vehicles)
        if not vehicles:
            raise ValueError("need at least one vehicle")
        if len(set(vehicles)) != len(vehicles):
            raise ValueError(f"vehicle names must be unique, got {vehicles}")
        if queue_depth < 1 or max_batch < 1 or max_wait_s < 0:
            raise ValueError(f"need queue_depth >= 1, max_batch >= 1, max_wait_s >= 0; got "
                             f"{queue_depth}, {max_batch}, {max_wait_s}")
        self.vehicles: tuple[str, ...] = tuple(vehicles)
        self.queue_depth = queue_depth
        self.max_batch = max_batch
        self.max_wait_s = float(max_wait_s)
        self._clock = clock
        self._cond = threading.Condition()
        self._queues: dict[str, deque[_Queued[T]]] = {vehicle: deque() for vehicle in self.vehicles}
        self._next_first = 0  # index of the vehicle that heads the next batch if it has work
        self._running = True

    # -- producer side --------------------------------------------------------------------------
    def put(self, vehicle: str, key: Hashable, item: T) -> T | None:
        """Queue ``item`` of ``vehicle``; ``key`` says which items may share a batch (same cut).

        Returns the vehicle's oldest item when its queue (``queue_depth``) overflowed (the caller
        counts it as dropped 'cloud_backlog' for that vehicle), else None. After :meth:`shutdown`
        nothing is queued and ``item`` itself is returned (dropped). An unknown vehicle is a
        ValueError. Never blocks on the worker.
        """
        queue = self._queues.get(vehicle)
        if queue is None:
            raise ValueError(f"unknown vehicle {vehicle!r}; this batcher serves {list(self.vehicles)}")
        with self._cond:
            if not self._running:
                return item
            dropped = queue.popleft().item if len(queue) >= self.queue_depth else None
            queue.append(_Queued(key, item, self._clock()))
            self._cond.notify_all()
            return dropped

    # -- consumer side --------------------------------------------------------------------------
    def take(self) -> list[tuple[str, T]] | None:
        """Block until a batch is ready; None after shutdown(). A batch is 1..max_batch items sharing
        one key, as ``(vehicle, item)`` pairs in the order they were added (the first vehicle's
        oldest item first)."""
        with self._cond:
            while True:
                if not self._running:
                    return None
                plan = self._plan()
                if plan is None:
                    self._cond.wait(_POLL_S)
                    continue
                first, picks, closed = plan
                if len(picks) < self.max_batch and self.max_wait_s > 0 and not closed:
                    first_arrival_s = self._queues[self.vehicles[first]][0].arrival_s
                    left_s = first_arrival_s + self.max_wait_s - self._clock()
                    if left_s > 0:
                        self._cond.wait(min(left_s, _POLL_S))
                        continue  # state may have changed: plan again
                return self._pop(first, picks)

    def _plan(self) -> tuple[int, list[int], bool] | None:
        """The batch that would be taken now, without taking it: the first vehicle's index, the
        vehicle index of each item in order, and whether no future put could add to it. None when
        every queue is empty. Caller holds the lock."""
        n = len(self.vehicles)
        order = [(self._next_first + i) % n for i in range(n)]
        first = next((v for v in order if self._queues[self.vehicles[v]]), None)
        if first is None:
            return None
        order = [(first + i) % n for i in range(n)]
        key = self._queues[self.vehicles[first]][0].key
        taken = [0] * n  # items taken from each vehicle so far
        blocked = [False] * n  # its next queued item has another key
        picks: list[int] = []
        added = True
        while added and len(picks) < self.max_batch:
            added = False
            for v in order:
                if len(picks) >= self.max_batch:
                    break
                queue = self._queues[self.vehicles[v]]
                if blocked[v] or taken[v] >= len(queue):
                    continue
                if queue[taken[v]].key != key:
                    blocked[v] = True
                    continue
                taken[v] += 1
                picks.append(v)
                added = True
        closed = all(blocked)  # no vehicle can add a compatible item, now or later
        return first, picks, closed

    def _pop(self, first: int, picks: list[int]) -> list[tuple[str, T]]:
        batch = [(self.vehicles[v], self._queues[self.vehicles[v]].popleft().item) for v in picks]
        self._next_first = (first + 1) % len(self.vehicles)
        return batch

    # -- state and lifecycle --------------------------------------------------------------------
    def queued(self) -> dict[str, int]:
        """Items waiting per vehicle (every vehicle, zeros included)."""
        with self._cond:
            return {vehicle: len(queue) for vehicle, queue in self._queues.items()}

    def shutdown(self) -> None:
        """Stop: blocked and later :meth:`take` calls return None, later puts are refused (returned).
        Items still queued stay until :meth:`drain` hands them back."""
        with self._cond:
            self._running = False
            self._cond.notify_all()

    def drain(self) -> list[tuple[str, T]]:
        """Remove and return every queued item as ``(vehicle, item)``, per vehicle oldest first, so
        a stopping caller can account for them (e.g. as dropped). Usable at any time."""
        with self._cond:
            items = [(vehicle, queued.item) for vehicle, queue in self._queues.items() for queued in queue]
            for queue in self._queues.values():
                queue.clear()
            return items
