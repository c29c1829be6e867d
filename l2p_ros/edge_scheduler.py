"""The edge's scheduling, free of ROS: which frame the edge worker runs next, with which decision,
and what happens when the next tier stops answering.

- Latest frame wins: one slot holds the newest frame; a frame replaced before the worker took it
  is stale (the caller counts it as ``stale_frame``).
- Decision matching: a taken frame waits up to ``decision_wait_s`` for the decision with its key,
  else it uses the last decision received, else none.
- Partitioner silence: when no decision has arrived for ``partitioner_timeout_s`` (since the last one,
  or since the first frame if none came), the partitioner is silent: frames no longer wait for
  decisions and run with none (the edge's default cut), instead of keeping the last decision
  forever; the next decision ends the silence.
- In flight: a frame sent to the next tier is kept (with its payload, so it can still be finished
  locally) until detections with its key come back.
- Timeout fallback (invariant 5): a frame in flight for ``cloud_timeout_s`` or more moves to the
  fallback list, which :meth:`EdgeScheduler.take` serves before the slot, and the next tier is
  marked silent. While it is silent, frames stay local except one retry every ``retry_period_s``;
  detections for a frame still in flight (answered within ``cloud_timeout_s``) end the silence.
  A late answer does not (a tier too slow to use is not back), but it takes its frame off the
  fallback list if the worker has not run it yet.

Frames and decisions are opaque to the scheduler (the edge node passes its ROS objects); a frame's
key is any hashable identity shared by the frame, its decision and its detections (the header
stamp). Times come from an injectable monotonic clock in seconds, so tests can drive time.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Generic, Hashable, TypeVar

F = TypeVar("F")  # what the caller keeps for a frame (e.g. its header and image)
D = TypeVar("D")  # a partition decision, opaque here

# Decisions for frames never taken (stale, or not yet arrived) are kept for this many keys.
DECISION_HISTORY = 64
# Longest single condition wait, real seconds: waits re-read the clock this often, so a fake clock
# advanced by a test is noticed without a notify.
_POLL_S = 0.1


@dataclass
class ScheduledFrame(Generic[F, D]):
    """A frame in the scheduler: in the slot, taken by the worker, in flight, or timed out.

    ``decision`` is set by :meth:`EdgeScheduler.take`; ``sent_s`` (scheduler clock, seconds) by
    :meth:`EdgeScheduler.mark_sent`; ``timed_out`` is True when the next tier did not answer in time
    and the frame must be finished locally as a fallback.
    """

    key: Hashable
    frame: F
    decision: D | None = None
    sent_s: float | None = None
    timed_out: bool = False


@dataclass(frozen=True)
class SchedulerState:
    """A consistent snapshot: frames waiting for the worker (fallback list plus the slot), frames in
    flight, whether the next tier is currently silent, and ``fallbacks``: the timed-out frames
    waiting for a local pass, the only frames a newly arriving one waits behind (the slot's frame is
    replaced by it, never ahead of it)."""

    queue_length: int
    in_flight: int
    next_tier_silent: bool
    partitioner_silent: bool = False
    fallbacks: int = 0


class EdgeScheduler(Generic[F, D]):
    """Latest-frame slot, decision matching, in-flight table and timeout fallback of the edge.

    Thread-safe: every method takes one internal :class:`threading.Condition`; callbacks
    (:meth:`put_frame`, :meth:`put_decision`, :meth:`detections_received`, :meth:`check_timeouts`)
    never block on the worker, and :meth:`take` blocks the worker until there is work.
    """

    def __init__(self, decision_wait_s: float, cloud_timeout_s: float, retry_period_s: float,
                 clock: Callable[[], float] = time.monotonic, partitioner_timeout_s: float = 2.0):
        if decision_wait_s < 0 or cloud_timeout_s <= 0 or retry_period_s <= 0 or partitioner_timeout_s <= 0:
            raise ValueError(f"need decision_wait_s >= 0, cloud_timeout_s > 0, retry_period_s > 0, "
                             f"partitioner_timeout_s > 0; got {decision_wait_s}, {cloud_timeout_s}, "
                             f"{retry_period_s}, {partitioner_timeout_s}")
        self.decision_wait_s = decision_wait_s
        self.partitioner_timeout_s = partitioner_timeout_s
        self.cloud_timeout_s = cloud_timeout_s
        self.retry_period_s = retry_period_s
        self._clock = clock
        self._cond = threading.Condition()
        self._latest: ScheduledFrame[F, D] | None = None
        self._timed_out: list[ScheduledFrame[F, D]] = []
        self._in_flight: OrderedDict[Hashable, ScheduledFrame[F, D]] = OrderedDict()
        self._decisions: OrderedDict[Hashable, D] = OrderedDict()
        self._last_decision: D | None = None
        self._last_decision_s: float | None = None  # when a decision last arrived, else the first frame
        self._next_tier_silent = False
        self._last_retry_s: float | None = None  # None: the first retry is due at once
        self._running = True
        self.stale_frames = 0  # frames replaced in the slot before the worker took them

    # -- callbacks: store and wake the worker, never block on it -----------------------------------
    def put_frame(self, key: Hashable, frame: F) -> bool:
        """Put a new frame in the latest-frame slot and wake the worker.

        Returns True when it replaced a frame the worker had not taken (that frame is stale and is
        dropped; the caller counts it). Thread-safe, non-blocking.
        """
        with self._cond:
            replaced = self._latest is not None
            if replaced:
                self.stale_frames += 1
            self._latest = ScheduledFrame(key, frame)
            if self._last_decision_s is None:
                self._last_decision_s = self._clock()
            self._cond.notify()
            return replaced

    def put_decision(self, key: Hashable, decision: D) -> None:
        """Record the decision for the frame ``key``; it also becomes the last decision, used by
        frames whose own decision does not come in time. Thread-safe, non-blocking."""
        with self._cond:
            self._decisions[key] = decision
            while len(self._decisions) > DECISION_HISTORY:
                self._decisions.popitem(last=False)
            self._last_decision = decision
            self._last_decision_s = self._clock()
            self._cond.notify()

    def detections_received(self, key: Hashable) -> bool:
        """Detections for ``key`` came from the next tier: the frame leaves the in-flight table, or
        the fallback list if it timed out and the worker has not run it yet (its answer is in, so
        the edge need not spend a full local pass on it).

        Only an answer within ``cloud_timeout_s`` (a frame still in flight) ends a silence. Counting
        a late one as back (before stop 14) let a slow link re-open offloading after each late
        answer; every frame sent then timed out too and queued for a full local pass (CI's testbed
        run at 0.5 Mbit/s on a loaded host: 177 frames still unfinished a minute after the camera
        stopped). The retries find a tier that answers in time again.
        Returns True when this answer ends the frame (it was in flight, or waiting for its local
        pass); False for one already finished or never sent. Thread-safe, non-blocking."""
        with self._cond:
            if self._in_flight.pop(key, None) is not None:
                self._next_tier_silent = False
                return True
            waiting = len(self._timed_out)
            self._timed_out = [scheduled for scheduled in self._timed_out if scheduled.key != key]
            return len(self._timed_out) < waiting

    def check_timeouts(self) -> bool:
        """Move every frame in flight for ``cloud_timeout_s`` or longer to the fallback list and mark
        the next tier silent; wakes the worker when the fallback list is not empty.

        Returns True when this call made a talking next tier silent (the caller logs it once).
        Thread-safe, non-blocking; call it periodically.
        """
        deadline_s = self._clock() - self.cloud_timeout_s
        became_silent = False
        with self._cond:
            while self._in_flight:  # in send order, so the oldest is first
                key, scheduled = next(iter(self._in_flight.items()))
                if scheduled.sent_s > deadline_s:
                    break
                del self._in_flight[key]
                scheduled.timed_out = True
                self._timed_out.append(scheduled)
                became_silent = became_silent or not self._next_tier_silent
                self._next_tier_silent = True
            if self._timed_out:
                self._cond.notify()
        return became_silent

    # -- worker ------------------------------------------------------------------------------------
    def take(self) -> ScheduledFrame[F, D] | None:
        """Block until there is work and return it: a timed-out frame first (``timed_out`` True, so
        completion is bounded), else the frame in the slot with its decision matched (its own if it
        arrives within ``decision_wait_s``, else the last decision, else None).

        Returns None once :meth:`shutdown` was called. Thread-safe; meant for one worker thread.
        """
        with self._cond:
            while self._running and not self._timed_out and self._latest is None:
                self._cond.wait(_POLL_S)
            if not self._running:
                return None
            if self._timed_out:
                return self._timed_out.pop(0)
            scheduled, self._latest = self._latest, None
            if self._partitioner_silent():
                scheduled.decision = self._decisions.pop(scheduled.key, None)
                return scheduled
            wait_until_s = self._clock() + self.decision_wait_s
            while scheduled.key not in self._decisions and self._running:
                left_s = wait_until_s - self._clock()
                if left_s <= 0:
                    break
                self._cond.wait(min(left_s, _POLL_S))
            decision = self._decisions.pop(scheduled.key, None)
            scheduled.decision = self._last_decision if decision is None else decision
            return scheduled

    def _partitioner_silent(self) -> bool:
        """Called with the lock held."""
        return (self._last_decision_s is not None
                and self._clock() - self._last_decision_s >= self.partitioner_timeout_s)

    def offload_allowed(self) -> bool:
        """Whether a frame may go to the next tier now: always while it answers; while it is silent,
        one frame per ``retry_period_s`` (a call that returns True then uses up that retry).
        Thread-safe."""
        with self._cond:
            if not self._next_tier_silent:
                return True
            now_s = self._clock()
            if self._last_retry_s is None or now_s - self._last_retry_s >= self.retry_period_s:
                self._last_retry_s = now_s
                return True
            return False

    def mark_sent(self, scheduled: ScheduledFrame[F, D]) -> None:
        """Record that ``scheduled`` is being sent to the next tier now: it stays in flight (payload
        kept, so a silent next tier cannot lose it) until its detections or its timeout.
        Call it before publishing, so fast detections find it. Thread-safe."""
        with self._cond:
            scheduled.sent_s = self._clock()
            self._in_flight[scheduled.key] = scheduled

    def send_failed(self, scheduled: ScheduledFrame[F, D]) -> None:
        """Undo :meth:`mark_sent` for a frame whose send failed (the caller finishes it locally).
        Thread-safe."""
        with self._cond:
            self._in_flight.pop(scheduled.key, None)

    # -- state and lifetime --------------------------------------------------------------------------
    def state(self) -> SchedulerState:
        """A consistent snapshot of queue length, frames in flight and silence. Thread-safe."""
        with self._cond:
            return SchedulerState(queue_length=len(self._timed_out) + int(self._latest is not None),
                                  in_flight=len(self._in_flight), next_tier_silent=self._next_tier_silent,
                                  partitioner_silent=self._partitioner_silent(), fallbacks=len(self._timed_out))

    def shutdown(self) -> None:
        """Stop: a blocked or later :meth:`take` returns None. Thread-safe, idempotent."""
        with self._cond:
            self._running = False
            self._cond.notify_all()
