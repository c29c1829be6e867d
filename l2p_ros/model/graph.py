"""The layer DAG of a Darknet network and the tensors that cross any cut of it.

A cut splits the layers into an edge set (run before the cut) and the rest. What must cross is
every tensor produced on the edge side and consumed on the other side, including skip
connections (route/shortcut) and yolo outputs that are already final. The input image is node
``INPUT`` (-1); a cut whose edge set is empty sends the image itself.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Iterable, Sequence

import networkx as nx

from l2p_ros.model.cfg import NetworkSpec

INPUT = -1  # node id of the network input image
OUTPUT = "output"  # sink node: consumes every yolo layer (the detections need all of them)


class CutError(ValueError):
    """A set of layers that is not a valid cut of the network."""


@dataclass(frozen=True)
class Cut:
    """A partition of the layers: ``edge_layers`` run before the cut, the rest after it.

    ``crossing`` lists the tensors (Darknet layer indices, ``INPUT`` for the image) that must be
    sent across, sorted. A chain cut "after layer k" has ``edge_layers == {0..k}``.
    """

    edge_layers: frozenset[int]
    crossing: tuple[int, ...]
    after_layer: int | None  # k for a chain cut, None for a general DAG cut

    @property
    def is_image_offload(self) -> bool:
        return not self.edge_layers

    def name(self, num_layers: int) -> str:
        if self.after_layer is None:
            return "dag:" + ",".join(map(str, sorted(self.edge_layers)))
        if self.after_layer == INPUT:
            return "cloud"
        if self.after_layer == num_layers - 1:
            return "edge"
        return str(self.after_layer)


class LayerGraph:
    """Dependencies between the layers of one network spec."""

    def __init__(self, spec: NetworkSpec):
        self.spec = spec
        self.num_layers = len(spec.layers)
        self.yolo_layers: tuple[int, ...] = tuple(l.index for l in spec.layers if l.type == "yolo")
        dag = nx.DiGraph()
        dag.add_node(INPUT)
        for layer in spec.layers:
            dag.add_node(layer.index)
            for source in layer.inputs:
                dag.add_edge(source, layer.index)
        for index in self.yolo_layers:
            dag.add_edge(index, OUTPUT)
        self.dag = dag

    @cached_property
    def consumers(self) -> dict[int, tuple]:
        """Direct consumers of every node (``OUTPUT`` for yolo layers)."""
        return {node: tuple(self.dag.successors(node)) for node in self.dag.nodes if node != OUTPUT}

    def _crossing(self, edge_layers: frozenset[int]) -> tuple[int, ...]:
        sources = set(edge_layers) | {INPUT}
        crossing = set()
        for node in sources:
            for user in self.consumers[node]:
                if user == OUTPUT or user not in edge_layers:
                    crossing.add(node)
                    break
        if edge_layers:
            # The image only crosses when a layer after the cut reads it directly.
            if not any(u != OUTPUT and u not in edge_layers for u in self.consumers[INPUT]):
                crossing.discard(INPUT)
        return tuple(sorted(crossing))

    def chain_cut(self, after_layer: int) -> Cut:
        """The cut after Darknet layer ``after_layer`` (-1: send the image; last layer: edge only)."""
        if not INPUT <= after_layer < self.num_layers:
            raise CutError(f"cut after layer {after_layer}: must be in -1..{self.num_layers - 1}")
        edge = frozenset(range(after_layer + 1))
        return Cut(edge, self._crossing(edge), after_layer)

    def chain_cuts(self) -> list[Cut]:
        """Every chain cut, from image offload (-1) to edge only (last layer)."""
        return [self.chain_cut(k) for k in range(INPUT, self.num_layers)]

    def dag_cut(self, edge_layers: Iterable[int]) -> Cut:
        """A general cut; ``edge_layers`` must be closed under predecessors."""
        edge = frozenset(edge_layers)
        unknown = sorted(i for i in edge if not 0 <= i < self.num_layers)
        if unknown:
            raise CutError(f"layers {unknown} are not in 0..{self.num_layers - 1}")
        for index in edge:
            missing = [s for s in self.spec.layers[index].inputs if s != INPUT and s not in edge]
            if missing:
                raise CutError(f"layer {index} runs before the cut but its inputs {missing} do not")
        chain = edge == frozenset(range(len(edge)))
        return Cut(edge, self._crossing(edge), len(edge) - 1 if chain else None)

    def parse_cut(self, text: str | int) -> Cut:
        """``edge``, ``cloud``, a layer index, or ``dag:i,j,...``."""
        value = str(text).strip()
        if value == "edge":
            return self.chain_cut(self.num_layers - 1)
        if value == "cloud":
            return self.chain_cut(INPUT)
        if value.startswith("dag:"):
            return self.dag_cut(int(v) for v in value[4:].split(",") if v.strip())
        try:
            return self.chain_cut(int(value))
        except ValueError as error:
            if isinstance(error, CutError):
                raise
            raise CutError(f"cut {text!r}: expected 'edge', 'cloud', a layer index or 'dag:i,j,...'") from None


def tensor_elements(shape: Sequence[int]) -> int:
    count = 1
    for dim in shape:
        count *= int(dim)
    return count


def crossing_bytes(cut: Cut, output_shapes: Sequence[Sequence[int]], input_shape: Sequence[int],
                   bytes_per_element: int = 4) -> int:
    """Raw size of the tensors crossing ``cut`` (the image counts as ``input_shape`` elements)."""
    total = 0
    for node in cut.crossing:
        shape = input_shape if node == INPUT else output_shapes[node]
        total += tensor_elements(shape) * bytes_per_element
    return total
