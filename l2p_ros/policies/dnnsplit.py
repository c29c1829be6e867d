"""DNNSplit candidate cuts: the chain cuts worth considering, on the FULL crossing size.

Moving a chain cut later puts more layers on the edge. If it also sends at least as many bytes
as an earlier cut, the earlier one is at least as good unless the cloud is slower than the edge,
so only cuts that send strictly less than every earlier cut are kept, image offload included.
Sizes count every crossing tensor (skip connections, route inputs and finished yolo outputs, from
``LayerGraph.chain_cut(k).crossing``), all at fp32 like the network's own tensors, the image as
the network's input tensor; counting only the cut layer's own output, as a chain-only analysis
would, keeps cuts that in fact send far more. Image offload and edge only are always candidates.
"""
from __future__ import annotations

from typing import Sequence

from l2p_ros.model.graph import INPUT, LayerGraph, crossing_bytes
from l2p_ros.measure.profile import Profile


def dnnsplit_candidates(graph: LayerGraph, output_shapes: Sequence[Sequence[int]],
                        input_shape: Sequence[int]) -> list[int]:
    """Cut-after-layer indices kept, ascending: -1 (image offload), the kept cuts, the last layer."""
    last = graph.num_layers - 1
    candidates = [INPUT]
    smallest = crossing_bytes(graph.chain_cut(INPUT), output_shapes, input_shape)
    for k in range(last):
        size = crossing_bytes(graph.chain_cut(k), output_shapes, input_shape)
        if size < smallest:
            candidates.append(k)
            smallest = size
    return candidates + [last]


def profile_candidates(graph: LayerGraph, profile: Profile) -> list[int]:
    """:func:`dnnsplit_candidates` with the tensor shapes a profile recorded."""
    size = profile.model["input_size"]
    input_shape = (1, graph.spec.input_channels, size, size)
    return dnnsplit_candidates(graph, [layer.output_shape for layer in profile.layers], input_shape)
