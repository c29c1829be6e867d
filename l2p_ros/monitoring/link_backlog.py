"""The uplink's backlog now, from the partitioner's own decisions (ROS-free).

The own queue (:func:`~l2p_ros.policies.cost_model.own_link_queue_ms`) prices an option as if it
were chosen for every frame: sending the image over a link it fills is charged the link's full
buffer, even when the link is empty now and one image would leave at once. Where the image and
the edge together beat either (1 Mbit/s, no bottleneck: the oracle sends 63% of the frames as the
image and runs the rest on the edge), greedy then ran every frame on the edge (481 ms against the
oracle's 199, docs/evaluation.md). Capping each option's own queue at the queue the link holds now
lets it mix: the image is cheap while the link is empty, dear while it is full.

The monitor's RTT shows that queue only once a probe has crossed it, half a second to a second
late, and that lag lost most of the gain in the simulator (320 ms instead of 209). The partitioner
knows sooner what is on the link: it decided it. :class:`LinkBacklog` replays its own decisions
on a model of the edge and the uplink (the edge takes the latest frame and runs one at a time; the
link sends one frame at a time at the estimated bandwidth) and says how much the link still has to
send once the edge is free for the next frame; an option whose head takes ``edge_ms`` then reaches
the link that much later and waits that much less (the cost model subtracts it). Charging the
backlog as of now instead made an image that waits behind an edge-only frame pay for link time
that drains meanwhile: greedy alternated the two at 258 ms where the oracle took 199 (1 Mbit/s,
Jetson-class, simulated; 211 with the subtraction). What it cannot see (a frame the edge finished
locally after a timeout, the monitor's probes, headers) it leaves out; frames are priced at the
predicted edge and sending times.
"""
from __future__ import annotations

import time
from typing import Callable

# ``link_backlog``: ``off`` charges the own queue alone (every figure before stop 36), ``decided``
# caps it at the backlog the partitioner's own decisions leave on the link now.
LINK_BACKLOG_MODES = ("off", "decided")
DEFAULT_LINK_BACKLOG = "off"


class LinkBacklog:
    """The uplink's backlog as the partitioner's decisions leave it, on ``clock`` (seconds).

    ``latest_frame_wins``: the live edge keeps only the newest frame, so a decided frame that the
    edge could not start before the next frame arrives (``frame_interval_s`` later) is superseded
    and never sent; a FIFO edge (the simulator's default) runs every decided frame in turn.
    """

    def __init__(self, frame_interval_s: float, latest_frame_wins: bool = True,
                 clock: Callable[[], float] = time.monotonic):
        if not frame_interval_s > 0:
            raise ValueError(f"frame_interval_s must be > 0, got {frame_interval_s}")
        self.frame_interval_s = frame_interval_s
        self.latest_frame_wins = latest_frame_wins
        self._clock = clock
        self._edge_free_s = float("-inf")  # when the edge finishes the frames decided so far
        self._link_free_s = float("-inf")  # when the uplink has sent them

    def decided(self, edge_ms: float, send_ms: float, max_queue_ms: float = float("inf")) -> bool:
        """A frame arriving now was decided: ``edge_ms`` on the edge, then ``send_ms`` on the uplink
        (0: run on the edge alone), where it waits at most ``max_queue_ms`` (the link's buffer: a
        link fuller than that drops, and the edge finishes what times out). False when the edge
        would not get to it (superseded).

        Without the bound a policy that keeps sending more than the link carries (DADS sending the
        image at 1 Mbit/s, live) ran the model 5 s ahead of a link that holds a few hundred ms."""
        if edge_ms < 0 or send_ms < 0 or max_queue_ms < 0:
            raise ValueError(f"edge_ms, send_ms and max_queue_ms must be >= 0, got {edge_ms}, {send_ms}, "
                             f"{max_queue_ms}")
        now_s = self._clock()
        start_s = max(now_s, self._edge_free_s)
        if self.latest_frame_wins and start_s >= now_s + self.frame_interval_s:
            return False  # the next frame takes the slot before the edge is free
        self._edge_free_s = start_s + edge_ms / 1e3
        if send_ms > 0:
            wait_s = min(max(self._link_free_s - self._edge_free_s, 0.0), max_queue_ms / 1e3)
            self._link_free_s = self._edge_free_s + wait_s + send_ms / 1e3
        return True

    @property
    def queue_ms(self) -> float:
        """What the uplink still has to send of the decided frames when the edge is next free for a
        new one (now, or when it finishes the decided frames), ms: the wait of a frame that reaches
        the link then; one whose head takes ``edge_ms`` waits ``edge_ms`` less."""
        return max(0.0, self._link_free_s - max(self._clock(), self._edge_free_s)) * 1e3
