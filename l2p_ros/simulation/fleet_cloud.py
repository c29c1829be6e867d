"""The simulated vehicle's cloud shared with a fleet that batches (``SimulationConfig.fleet``).

The other ``vehicles - 1`` vehicles are the simulated one's peers: under the same conditions and
policy they choose the same partition, and their cameras are spread over the frame interval, so
each frame the simulated vehicle sends to the cloud comes with one frame of each peer, arriving
``j / (vehicles * fps)`` seconds after it (j = 1 .. vehicles - 1). The cloud works as the fleet
cloud node does with ``max_wait_ms`` 0: whenever it is free it takes the frames that have arrived
and share the first one's cut, up to ``max_batch`` in arrival order, and a batch of b takes the
one-frame time times the measured :class:`~l2p_ros.policies.cloud_batching.BatchCurve` factor.
Peers' frames that arrive later wait for later batches, and delay the simulated vehicle's next
frames as they would. One simplification: the simulated vehicle's next frame never joins the batch
of its previous one (frames are played one by one). An overloaded cloud keeps ``queue_depth``
frames per peer and drops the oldest, as the node does; the simulated vehicle's own frames are
never dropped (they wait).

The state is an immutable value, so :meth:`Simulator._play` stays a function of its inputs.
Hand-written: the peers and the batcher are this project's.
"""
from __future__ import annotations

from dataclasses import dataclass

from l2p_ros.policies.cloud_batching import CloudShare


@dataclass(frozen=True)
class _Waiting:
    arrival_s: float
    key: tuple  # frames that share it share a batch (the cut the cloud starts from, the payload kind)
    single_ms: float  # one frame's time at the cloud
    image: bool
    ours: bool


@dataclass(frozen=True)
class FleetCloudState:
    free_s: float = 0.0  # when the cloud finishes its current batch
    waiting: tuple[_Waiting, ...] = ()  # peers' frames not yet in a batch, by arrival


IDLE = FleetCloudState()


def serve(share: CloudShare, state: FleetCloudState, arrival_s: float, key: tuple, single_ms: float,
          image: bool) -> tuple[float, FleetCloudState, int]:
    """The simulated vehicle's frame arriving at ``arrival_s``: (when its batch is done, the cloud's
    state after that batch, the batch's size)."""
    interval_s = 1.0 / (share.vehicles * share.frames_per_s)
    arriving = [_Waiting(arrival_s, key, single_ms, image, True)]
    arriving += [_Waiting(arrival_s + j * interval_s, key, single_ms, image, False) for j in range(1, share.vehicles)]
    queue = sorted(state.waiting + tuple(arriving), key=lambda w: (w.arrival_s, not w.ours))
    # An overloaded cloud holds queue_depth frames per vehicle and drops the oldest (cloud_backlog):
    # the peers' waiting frames are bounded so, and the simulated vehicle's frame is always served.
    excess = len(queue) - 1 - (share.vehicles - 1) * share.queue_depth
    if excess > 0:
        oldest = {id(w) for w in [w for w in queue if not w.ours][:excess]}
        queue = [w for w in queue if id(w) not in oldest]
    free_s = state.free_s
    while True:
        first = queue[0]
        start_s = max(free_s, first.arrival_s)
        batch = [w for w in queue if w.arrival_s <= start_s and w.key == first.key][:share.max_batch]
        longest_ms = max(w.single_ms for w in batch)
        free_s = start_s + longest_ms * share.batching.curve(first.image).factor(len(batch)) / 1e3
        taken = {id(w) for w in batch}
        queue = [w for w in queue if id(w) not in taken]
        if any(w.ours for w in batch):
            return free_s, FleetCloudState(free_s, tuple(queue)), len(batch)
