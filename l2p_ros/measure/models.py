"""A model's identity, shared by whatever measures, predicts or runs it: its cfg, its layer graph,
its id on the wire and in file names, and which weights it is measured with.

No torch here (only the cfg parser and the graph); :func:`load_measured_model` imports the network
when it is called.
"""
from __future__ import annotations

from pathlib import Path

from l2p_ros.model.cfg import PRETRAINED_WEIGHTS, model_cfg_path, parse_cfg
from l2p_ros.model.graph import LayerGraph


def model_name(model: str | Path) -> str:
    """``"yolov3-tiny"`` for the bundled name or any path to ``yolov3-tiny.cfg``."""
    return Path(str(model)).stem


def model_id(model: str | Path, input_size: int) -> str:
    """The id a frame carries and file names use, e.g. ``yolov3-tiny-416``."""
    return f"{model_name(model)}-{input_size}"


def model_graph(model: str | Path) -> LayerGraph:
    """The layer graph of a bundled model name or a cfg path."""
    return LayerGraph(parse_cfg(model_cfg_path(model)))


def measures_random_weights(model: str | Path, weights: Path | None = None) -> bool:
    """Whether measuring ``model`` uses random weights: only yolov3-tiny has pretrained weights
    offline, so any other model without user weights is measured with seeded random ones (valid
    for latency and sizes of uncompressed tensors only)."""
    return weights is None and model_name(model) not in PRETRAINED_WEIGHTS


def weights_label(model: str | Path, weights: Path | None = None) -> str:
    """What a measurement file records as its weights: ``pretrained``, ``random`` or the path."""
    if measures_random_weights(model, weights):
        return "random"
    return str(weights) if weights is not None else "pretrained"


def load_measured_model(model: str | Path, input_size: int, weights: Path | None = None):
    """The Darknet a measurement runs: ``weights``, else pretrained, else random (and says so)."""
    from l2p_ros.model.darknet import load_model

    return load_model(model, input_size=input_size, weights=weights,
                      random_weights=measures_random_weights(model, weights))
