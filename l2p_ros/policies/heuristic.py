"""Heuristic adaptive partitioning: bandwidth thresholds move the cut (the baseline of the
learning-to-partition paper). It looks at the bandwidth estimate only, never at load or content.

The thresholds are not hard-coded: they come from the cost model at a nominal state (edge load,
RTT, queue and complexity as given, typically idle and mid-complexity). There a candidate ``p``
takes ``T_p(B) = a_p + b_p / B`` ms at bandwidth ``B`` Mbit/s, with ``a_p`` its latency on an
infinitely fast link and ``b_p = 8 * payload_bytes / 1e3`` its send time at 1 Mbit/s. The
fastest candidate as ``B`` falls is the lower envelope of lines in ``1 / B``; the thresholds
are its breakpoints. On YOLOv3-tiny with DNNSplit candidates this is the paper's shape: image
offload above a high threshold, a middle cut between, edge only below a low one.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import replace
from typing import Iterable, Sequence

from l2p_ros.policies.baselines import chain_partitions
from l2p_ros.policies.cost_model import CostModel
from l2p_ros.policies.dnnsplit import profile_candidates
from l2p_ros.policies.types import DEFAULT_IMAGE_CODEC, DEFAULT_TENSOR_CODEC, Partition, Policy, SystemState


def bandwidth_thresholds(cost_model: CostModel, partitions: Sequence[Partition],
                         nominal: SystemState) -> tuple[list[float], list[Partition]]:
    """``(thresholds_mbps, chosen)``: ascending bandwidths and one more partition than thresholds;
    below ``thresholds_mbps[0]`` the fastest at ``nominal`` is ``chosen[0]``, from
    ``thresholds_mbps[i]`` up ``chosen[i + 1]``."""
    unlimited = replace(nominal, bandwidth_mbps=math.inf)
    lines = []  # (a ms, b ms*Mbit/s, partition)
    for partition in partitions:
        a = cost_model.predict(partition, unlimited).total_ms
        if math.isfinite(a):
            lines.append((a, cost_model.predict(partition, nominal).payload_bytes * 8 / 1e3, partition))
    if not lines:
        raise ValueError("no candidate has a finite latency at the nominal state")
    current = min(lines, key=lambda line: line[:2])  # fastest on an unlimited link
    x, breakpoints, chosen = 0.0, [], [current[2]]  # x = 1 / bandwidth, rising: bandwidth falls
    while True:
        a, b, _ = current
        crossings = [((other[0] - a) / (b - other[1]), other[1], other) for other in lines if other[1] < b]
        if not crossings:
            break
        x, _, current = min(crossings, key=lambda c: c[:2])  # the earliest; of equals, the flattest
        breakpoints.append(x)
        chosen.append(current[2])
    return [1.0 / x for x in reversed(breakpoints)], list(reversed(chosen))


class HeuristicPolicy(Policy):
    """Bandwidth thresholds over ``candidates`` (default: DNNSplit's), derived at ``nominal``."""

    name = "heuristic"

    def __init__(self, cost_model: CostModel, nominal: SystemState, candidates: Iterable[int] | None = None,
                 codec: str = DEFAULT_TENSOR_CODEC, image_codec: str = DEFAULT_IMAGE_CODEC):
        if candidates is None:
            candidates = profile_candidates(cost_model.graph, cost_model.edge_profile)
        self.thresholds_mbps, self.partitions = bandwidth_thresholds(
            cost_model, chain_partitions(candidates, codec, image_codec) + cost_model.bottleneck_partitions(), nominal)

    def decide(self, state: SystemState) -> Partition:
        return self.partitions[bisect.bisect_right(self.thresholds_mbps, state.bandwidth_mbps)]
