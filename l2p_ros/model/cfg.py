"""Darknet ``.cfg`` parsing into a list of layer specs indexed exactly like Darknet.

Darknet's format is a tiny INI dialect with repeated section names, which ``configparser``
cannot represent (it merges duplicate sections), so it is parsed by hand here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

SUPPORTED_TYPES = ("convolutional", "maxpool", "upsample", "route", "shortcut", "yolo")


class CfgError(ValueError):
    """A .cfg file that cannot describe a supported Darknet network."""


@dataclass(frozen=True)
class LayerSpec:
    """One Darknet layer: its index, type, raw options and the absolute indices it reads.

    ``inputs`` holds Darknet layer indices; ``-1`` stands for the network input image.
    """

    index: int
    type: str
    options: dict[str, str]
    inputs: tuple[int, ...]

    def get_int(self, key: str, default: int | None = None) -> int:
        if key not in self.options:
            if default is None:
                raise CfgError(f"layer {self.index} ({self.type}) lacks required option '{key}'")
            return default
        try:
            return int(self.options[key])
        except ValueError:
            raise CfgError(f"layer {self.index} ({self.type}): {key}={self.options[key]!r} is not an integer") from None

    def get_ints(self, key: str) -> list[int]:
        try:
            return [int(v) for v in self.options[key].split(",") if v.strip()]
        except ValueError:
            raise CfgError(f"layer {self.index} ({self.type}): {key}={self.options[key]!r} is not a list of "
                           "integers") from None


@dataclass(frozen=True)
class NetworkSpec:
    """A parsed network: the ``[net]`` options and the layers in Darknet order."""

    net: dict[str, str]
    layers: tuple[LayerSpec, ...] = field(default_factory=tuple)
    name: str = "darknet"

    @property
    def input_channels(self) -> int:
        return int(self.net.get("channels", 3))


def _sections(text: str, source: str) -> list[tuple[str, dict[str, str]]]:
    sections: list[tuple[str, dict[str, str]]] = []
    for line_no, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            if not line.endswith("]"):
                raise CfgError(f"{source}:{line_no}: malformed section header {raw!r}")
            sections.append((line[1:-1].strip(), {}))
        elif "=" in line:
            if not sections:
                raise CfgError(f"{source}:{line_no}: option before any section")
            key, value = line.split("=", 1)
            sections[-1][1][key.strip()] = value.strip()
        else:
            raise CfgError(f"{source}:{line_no}: cannot parse {raw!r}")
    return sections


def _resolve_inputs(index: int, kind: str, options: dict[str, str]) -> tuple[int, ...]:
    def absolute(ref: int) -> int:
        target = index + ref if ref < 0 else ref
        if not 0 <= target < index:
            raise CfgError(f"layer {index} ({kind}) refers to layer {ref}, outside 0..{index - 1}")
        return target

    previous = (index - 1,)  # -1 means the input image for layer 0
    if kind == "route":
        return tuple(absolute(int(v)) for v in options["layers"].split(",") if v.strip())
    if kind == "shortcut":
        return (index - 1, absolute(int(options["from"])))
    return previous


def parse_cfg_text(text: str, source: str = "<cfg>", name: str = "darknet") -> NetworkSpec:
    sections = _sections(text, source)
    if not sections or sections[0][0] not in ("net", "network"):
        raise CfgError(f"{source}: the first section must be [net]")
    layers = []
    for index, (kind, options) in enumerate(sections[1:]):
        if kind not in SUPPORTED_TYPES:
            raise CfgError(f"{source}: layer {index} has unsupported type [{kind}]")
        layer = LayerSpec(index, kind, options, _resolve_inputs(index, kind, options))
        _check_sizes(layer, source)
        layers.append(layer)
    return NetworkSpec(net=sections[0][1], layers=tuple(layers), name=name)


# Options that must be positive where present (a negative filter count otherwise ends deep in torch).
_POSITIVE = {"convolutional": ("filters", "size", "stride", "groups"), "maxpool": ("size", "stride"),
             "upsample": ("stride",)}


def _check_sizes(layer: LayerSpec, source: str) -> None:
    for key in _POSITIVE.get(layer.type, ()):
        if key in layer.options and layer.get_int(key) < 1:
            raise CfgError(f"{source}: layer {layer.index} ({layer.type}): {key}={layer.options[key]} must be >= 1")


def parse_cfg(path: str | Path) -> NetworkSpec:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Darknet cfg not found: {path}")
    return parse_cfg_text(path.read_text(), source=str(path), name=path.stem)


BUNDLED_CFG_DIR = Path(__file__).with_name("cfg")
BUNDLED_MODELS = ("yolov3", "yolov3-tiny")
PRETRAINED_WEIGHTS = {"yolov3-tiny": "yolov3-tiny.weights"}  # the only weights available offline


def model_cfg_path(model: str | Path) -> Path:
    """The cfg of a model: a bundled name (``yolov3``, ``yolov3-tiny``) or an existing .cfg path."""
    name = str(model)
    if name in BUNDLED_MODELS:
        return bundled_cfg(name)
    if not Path(name).is_file():
        raise ValueError(f"model must be one of {BUNDLED_MODELS} or an existing .cfg file, got {name!r}")
    return Path(name)


def bundled_cfg(model: str) -> Path:
    """Path of a cfg shipped with the package (``yolov3`` or ``yolov3-tiny``)."""
    path = BUNDLED_CFG_DIR / f"{model}.cfg"
    if not path.is_file():
        known = sorted(p.stem for p in BUNDLED_CFG_DIR.glob("*.cfg"))
        raise ValueError(f"unknown model '{model}': bundled models are {known}")
    return path
