"""A model's per-layer latency and per-cut payload profile on one machine, and its file format.

A profile is measured, never guessed (invariant 6): it records the machine it was measured on, or,
when derived from a measured one by a speed factor, says so. No torch here: the cost model and the
policies read profiles without loading the network.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from l2p_ros.codec_spec import full_size_name

SCHEMA = "l2p-profile/2"
# The measured inputs committed with the source (models/profiles/README.md): profiles, payload fits,
# frame costs, cloud batch curves.
COMMITTED_PROFILES_DIR = Path(__file__).resolve().parents[2] / "models" / "profiles"
# Version 1 files were written before network-resolution image offload: their ``jpeg-qN`` is the
# camera-size image (``jpeg-full-qN`` today). They are read with that name put right.
SCHEMA_V1 = "l2p-profile/1"
# Image offload as the profiler measures it: raw pixels, JPEG at network and at camera resolution.
PROFILED_IMAGE_CODECS = ("raw", "jpeg-q75", "jpeg-full-q75")


class ProfileError(ValueError):
    """A profile file that is missing, of another schema, or inconsistent."""


@dataclass
class LayerProfile:
    index: int
    type: str
    latency_ms_median: float
    latency_ms_p10: float
    latency_ms_p90: float
    output_shape: list[int]
    output_bytes: int
    flops: int


@dataclass
class CutProfile:
    after_layer: int
    name: str
    crossing: list[int]
    edge_ms: float  # sum of layer medians before the cut
    rest_ms: float  # sum of layer medians after the cut
    payload_bytes: dict[str, int]  # codec name -> bytes on the wire for the profiled frame


@dataclass
class Profile:
    model: dict
    machine: dict
    measurement: dict
    layers: list[LayerProfile]
    cuts: list[CutProfile]
    created_utc: str = ""
    schema: str = SCHEMA
    extra: dict = field(default_factory=dict)

    @property
    def total_ms(self) -> float:
        return sum(layer.latency_ms_median for layer in self.layers)

    def cut(self, after_layer: int) -> CutProfile:
        for cut in self.cuts:
            if cut.after_layer == after_layer:
                return cut
        raise ProfileError(f"profile has no cut after layer {after_layer}")

    def to_dict(self) -> dict:
        return {
            "schema": self.schema,
            "created_utc": self.created_utc,
            "model": self.model,
            "machine": self.machine,
            "measurement": self.measurement,
            "layers": [vars(layer) for layer in self.layers],
            "cuts": [vars(cut) for cut in self.cuts],
            **({"extra": self.extra} if self.extra else {}),
        }

    def save(self, path: str | Path) -> None:
        save_yaml(path, self.to_dict())


def save_yaml(path: str | Path, data: dict) -> None:
    """Write a measurement file (profile, payload fit), creating its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False, width=120))


def read_versioned_yaml(path: str | Path, schema: str, what: str, older: tuple[str, ...] = ()) -> dict:
    """The mapping in a measurement file; ProfileError naming the file when missing or of another
    schema than ``schema`` or one of the ``older`` ones its reader migrates."""
    path = Path(path)
    if not path.is_file():
        raise ProfileError(f"{what} not found: {path}")
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict) or data.get("schema") not in (schema, *older):
        found = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise ProfileError(f"{path}: schema {found!r} is not {schema!r}")
    return data


def load_profile(path: str | Path) -> Profile:
    data = read_versioned_yaml(path, SCHEMA, "profile", older=(SCHEMA_V1,))
    try:
        layers = [LayerProfile(**entry) for entry in data["layers"]]
        cuts = [CutProfile(**entry) for entry in data["cuts"]]
        if data["schema"] == SCHEMA_V1:
            for cut in cuts:
                cut.payload_bytes = {full_size_name(name): size for name, size in cut.payload_bytes.items()}
        profile = Profile(data["model"], data["machine"], data["measurement"], layers, cuts,
                          data.get("created_utc", ""), SCHEMA, data.get("extra", {}))
    except (KeyError, TypeError) as error:
        raise ProfileError(f"{path}: malformed profile ({error})") from None
    if [layer.index for layer in layers] != list(range(len(layers))):
        raise ProfileError(f"{path}: layers must be listed 0..n-1 in order")
    return profile


def derive_profile(profile: Profile, speed_factor: float, label: str) -> Profile:
    """A profile of a machine ``speed_factor`` times as fast as the measured one (0.3: a Jetson-
    class edge; 20: a cloud GPU), labelled as derived (invariant 6): its ``machine`` block holds
    ``derived: true``, the label, the factor and the machine actually measured. Payload bytes do
    not depend on the machine and are kept.
    """
    if speed_factor <= 0:
        raise ValueError(f"speed_factor must be > 0, got {speed_factor}")
    scale = 1.0 / speed_factor
    layers = [replace(layer, latency_ms_median=layer.latency_ms_median * scale,
                      latency_ms_p10=layer.latency_ms_p10 * scale,
                      latency_ms_p90=layer.latency_ms_p90 * scale) for layer in profile.layers]
    cuts = [replace(cut, edge_ms=cut.edge_ms * scale, rest_ms=cut.rest_ms * scale,
                    payload_bytes=dict(cut.payload_bytes)) for cut in profile.cuts]
    measurement = {key: value * scale if key.startswith("full_pass_ms") else value
                   for key, value in profile.measurement.items()}
    machine = {"derived": True, "label": label, "speed_factor": speed_factor,
               "measured_on": copy.deepcopy(profile.machine)}
    return replace(profile, model=copy.deepcopy(profile.model), machine=machine,
                   measurement=measurement, layers=layers, cuts=cuts, extra=copy.deepcopy(profile.extra))


def is_derived(profile: Profile) -> bool:
    return bool(profile.machine.get("derived"))
