"""Split execution: run the layers before a cut (head) and after it (tail) with the same code.

Both halves call ``Darknet.layer_forward`` on the same inputs in the same order as the full
forward pass, so ``tail(head(x))`` is bit-identical to ``model(x)`` in fp32 (invariant 1).
``layer_forward`` gives the same bits whatever the memory layout of its inputs (tested), so
tensors decoded from the wire need no conversion.
"""
from __future__ import annotations

from typing import Iterable

import torch

from l2p_ros.model.darknet import Darknet
from l2p_ros.model.graph import INPUT, Cut, LayerGraph

Payload = dict[int, torch.Tensor]  # crossing tensors keyed by Darknet layer index (INPUT: image)


class SplitRunner:
    """Runs any segment of a Darknet model between two cuts, on the model's device and precision.

    Received tensors (the image, a decoded payload) are moved to the model's device and dtype on
    entry; a no-op when they are there already, as on the CPU in fp32.
    """

    def __init__(self, model: Darknet):
        self.model = model
        self.graph = LayerGraph(model.spec)

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (1, self.model.spec.input_channels, self.model.input_size, self.model.input_size)

    def cut(self, value: Cut | int | str) -> Cut:
        return value if isinstance(value, Cut) else self.graph.parse_cut(value)

    def expected_shapes(self, cut: Cut | int | str) -> dict[int, tuple[int, ...]]:
        """Shape of every tensor that must cross ``cut``, for validating received payloads."""
        cut = self.cut(cut)
        return {
            node: tuple(self.input_shape if node == INPUT else self.model.output_shapes[node])
            for node in cut.crossing
        }

    @torch.inference_mode()
    def run_segment(self, available: Payload, layers: Iterable[int], export: Iterable[int]) -> Payload:
        """Run ``layers`` (ascending) from ``available`` tensors; return the ``export`` tensors.

        Outputs are dropped as soon as no remaining layer or export needs them, so peak memory
        stays that of the full forward pass.
        """
        return self.run_segment_with_grad(available, layers, export)

    def run_segment_with_grad(self, available: Payload, layers: Iterable[int], export: Iterable[int]) -> Payload:
        """:meth:`run_segment` with autograd on: training a bottleneck backpropagates through the
        frozen layers after its cut."""
        order = sorted(layers)
        export = set(export)
        device, dtype = self.model.device, self.model.dtype
        values = {node: tensor.to(device=device, dtype=dtype) for node, tensor in available.items()}
        remaining_uses: dict[int, int] = {}
        for index in order:
            for source in self.model.spec.layers[index].inputs:
                remaining_uses[source] = remaining_uses.get(source, 0) + 1
        for index in order:
            spec = self.model.spec.layers[index]
            try:
                inputs = [values[s] for s in spec.inputs]
            except KeyError as missing:
                raise ValueError(f"layer {index} needs the output of layer {missing.args[0]}, "
                                 "which is neither computed in this segment nor received") from None
            values[index] = self.model.layer_forward(index, inputs)
            for source in spec.inputs:
                remaining_uses[source] -= 1
                if remaining_uses[source] == 0 and source not in export:
                    del values[source]
        missing = export - values.keys()
        if missing:
            raise ValueError(f"segment cannot export layers {sorted(missing)}: not computed")
        return {node: values[node] for node in sorted(export)}

    def head(self, image: torch.Tensor, cut: Cut | int | str) -> Payload:
        """Layers before the cut on a preprocessed image (1,3,S,S); returns the crossing tensors."""
        cut = self.cut(cut)
        return self.run_segment({INPUT: image}, cut.edge_layers, cut.crossing)

    def middle(self, payload: Payload, first: Cut | int | str, second: Cut | int | str) -> Payload:
        """A fog tier: the layers between two cuts, from the first cut's tensors to the second's."""
        first, second = self.cut(first), self.cut(second)
        if not first.edge_layers <= second.edge_layers:
            raise ValueError("the second cut must contain every layer of the first")
        self._check_payload(payload, first)
        return self.run_segment(payload, second.edge_layers - first.edge_layers, second.crossing)

    def tail(self, payload: Payload, cut: Cut | int | str) -> list[torch.Tensor]:
        """Layers after the cut; returns the yolo outputs in ``model.yolo_indices`` order."""
        cut = self.cut(cut)
        self._check_payload(payload, cut)
        rest = set(range(self.graph.num_layers)) - cut.edge_layers
        outputs = self.run_segment(payload, rest, self.graph.yolo_layers)
        return [outputs[i] for i in self.model.yolo_indices]

    def _check_payload(self, payload: Payload, cut: Cut) -> None:
        if set(payload) != set(cut.crossing):
            raise ValueError(f"payload carries layers {sorted(payload)}, cut needs {list(cut.crossing)}")
