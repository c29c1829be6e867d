"""The measured inputs committed under models/profiles/ (docs/evaluation.md names them): each loads
with its schema, fits the bundled model it names (layer count, every chain cut and what crosses it,
output shapes, operation counts, exact payload sizes), says which machine it was measured on, and
works as a cost model's input."""
from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np
import pytest

from l2p_ros.codec_spec import has_exact_size
from l2p_ros.measure.models import model_graph, model_id
from l2p_ros.measure.payload_fit import load_payload_fit
from l2p_ros.measure.profile import derive_profile, is_derived, load_profile
from l2p_ros.model.cfg import bundled_cfg, parse_cfg
from l2p_ros.model.darknet import Darknet
from l2p_ros.model.graph import INPUT, crossing_bytes
from l2p_ros.measure.profiler import layer_flops
from l2p_ros.policies.baselines import Greedy
from l2p_ros.policies.cost_model import CostModel
from l2p_ros.policies.types import SystemState
from l2p_ros.simulation.video import load_table, payload_samples

PROFILES_DIR = Path(__file__).resolve().parents[1] / "models" / "profiles"
PROFILES = sorted(p for p in PROFILES_DIR.glob("*.yaml")
                  if not p.name.endswith("-payload-fit.yaml") and not p.name.startswith(("frame-costs-", "cloud-batching-")))
FRAME_COSTS = sorted(PROFILES_DIR.glob("frame-costs-*.yaml"))
FITS = sorted(PROFILES_DIR.glob("*-payload-fit.yaml"))
# What the docs use: this host's CPU profile of yolov3-tiny, the H200 profiles, the fit on real frames.
TABLES = sorted(PROFILES_DIR.glob("video-*.npz"))
EXPECTED = {"yolov3-tiny-416-cpu-t1-vm-2core.yaml", "yolov3-tiny-416-cuda-h200.yaml", "yolov3-416-cuda-h200.yaml",
            "yolov3-tiny-416-pretrained-payload-fit.yaml", "video-yolov3-tiny-416-pretrained-vtest+Megamind-n60.npz"}


@functools.lru_cache(maxsize=None)
def network(model_name: str, input_size: int) -> Darknet:
    """The bundled model's network (random weights suffice: shapes and operation counts only)."""
    return Darknet(parse_cfg(bundled_cfg(model_name)), input_size)


def test_the_documented_inputs_are_committed():
    assert EXPECTED <= {p.name for p in PROFILES + FITS + TABLES}


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: p.name)
def test_profile_fits_its_model_and_names_its_machine(path):
    profile = load_profile(path)
    name, size = profile.model["name"], profile.model["input_size"]
    assert path.name.startswith(model_id(name, size) + "-")
    graph = model_graph(name)
    assert profile.model["num_layers"] == graph.num_layers == len(profile.layers)
    # Measured, on a machine it names (invariant 6), with the device and threads the file name says.
    machine = profile.machine
    assert not is_derived(profile) and machine["hostname"] and machine["platform"] and machine["torch"]
    assert re.search(rf"-{re.escape(machine['device'].split(':')[0])}-", path.name)
    if machine["device"] == "cpu":
        assert f"-t{machine['threads']}-" in path.name
    else:
        assert machine.get("gpu") and machine["gpu"].split()[-1].lower() in path.name
    assert profile.measurement["repeats"] >= 10
    assert profile.measurement["full_pass_ms_median"] == pytest.approx(profile.total_ms, rel=0.25)
    # Layers: the model's own types, output shapes and operation counts; positive medians in order.
    net = network(name, size)
    for layer, spec in zip(profile.layers, graph.spec.layers):
        assert (layer.index, layer.type) == (spec.index, spec.type)
        assert tuple(layer.output_shape) == tuple(net.output_shapes[spec.index])
        assert layer.flops == layer_flops(net, spec.index)
        assert 0 < layer.latency_ms_p10 <= layer.latency_ms_median <= layer.latency_ms_p90
    # Cuts: every chain cut, carrying exactly what the graph says crosses it, at exact sizes.
    input_shape = (1, 3, size, size)
    assert [c.after_layer for c in profile.cuts] == list(range(INPUT, graph.num_layers))
    for cut in profile.cuts:
        expected = graph.chain_cut(cut.after_layer)
        assert cut.crossing == list(expected.crossing) and cut.name == expected.name(graph.num_layers)
        assert cut.edge_ms + cut.rest_ms == pytest.approx(profile.total_ms, rel=1e-6)
        assert cut.edge_ms == pytest.approx(sum(l.latency_ms_median for l in profile.layers[:cut.after_layer + 1]),
                                            rel=1e-6, abs=1e-6)
        if expected.is_image_offload:
            # Every profile has camera-size JPEG; those written since network-resolution offload
            # (every one but the H200's, kept as measured there) also have it at network size.
            images = cut.payload_bytes
            assert images["raw"] == 3 * size * size and 0 < images["jpeg-full-q75"] < 3 * size * size
            if "cuda" not in path.name:
                assert 0 < images["jpeg-q75"] < 0.5 * images["jpeg-full-q75"]
        elif cut.after_layer < graph.num_layers - 1:
            assert cut.payload_bytes["fp32"] == crossing_bytes(expected, net.output_shapes, input_shape, 4)
            assert cut.payload_bytes["fp16"] == crossing_bytes(expected, net.output_shapes, input_shape, 2)


@pytest.mark.parametrize("path", FITS, ids=lambda p: p.name)
def test_payload_fit_fits_its_model_and_agrees_with_the_profiles(path):
    fit = load_payload_fit(path)
    name, size = fit.model["name"], fit.model["input_size"]
    assert path.name == f"{model_id(name, size)}-{fit.model['weights']}-payload-fit.yaml"
    graph = model_graph(name)
    assert fit.model["num_layers"] == graph.num_layers
    request = fit.source["request"]
    assert fit.content_dependence["frames"] == request["frames_per_clip"] * len(request["clips"])
    codecs = set(request["codecs"])
    image_codecs = {c for c in codecs if c == "raw" or c.startswith("jpeg")}
    # Every chain cut: image codecs at image offload, tensor codecs at every tensor cut.
    assert set(fit.fits) == {(INPUT, c) for c in image_codecs} | \
        {(k, c) for k in range(graph.num_layers) for c in codecs - image_codecs}
    low, high = fit.complexity_range
    assert 0 < low < high < 1
    for f in fit.fits.values():
        assert f.exact == (f.codec == "raw" or has_exact_size(f.codec))
        if not f.exact:
            assert 0 <= f.r2 <= 1 and f.residual_std_bytes >= 0
            assert min(fit.payload_bytes(f.after_layer, f.codec, c) for c in (low, high)) > 0
    # The exact sizes are the ones every committed profile of the same model measured.
    for profile in (load_profile(p) for p in PROFILES):
        if (profile.model["name"], profile.model["input_size"]) != (name, size):
            continue
        for cut in profile.cuts:
            for codec, measured in cut.payload_bytes.items():
                if (cut.after_layer, codec) in fit.fits and fit.fit(cut.after_layer, codec).exact:
                    assert fit.payload_bytes(cut.after_layer, codec, 0.5) == measured, (cut.after_layer, codec)


@pytest.mark.parametrize("path", PROFILES, ids=lambda p: p.name)
def test_committed_inputs_drive_a_cost_model(path):
    profile = load_profile(path)
    name, size = profile.model["name"], profile.model["input_size"]
    fits = [load_payload_fit(f) for f in FITS]
    fit = next((f for f in fits if (f.model["name"], f.model["input_size"]) == (name, size)), None)
    graph = model_graph(name)
    model = CostModel(graph, profile, derive_profile(profile, 20.0, "cloud, derived 20x"),
                      **({"payload_bytes_fn": fit} if fit else {}))
    codec = "int8-channel+zstd" if fit else "int8-channel"
    greedy = Greedy(model, codec=codec)
    for bandwidth_mbps in (0.5, 20.0, 1000.0):
        state = SystemState(bandwidth_mbps=bandwidth_mbps, rtt_ms=10, frame_complexity=0.5)
        chosen = greedy.decide(state)
        chosen.to_cut(graph)
        assert model.predict(chosen, state).total_ms > 0
    assert greedy.decide(SystemState(bandwidth_mbps=0.0, rtt_ms=10)).is_edge_only(graph.num_layers)


@pytest.mark.parametrize("path", TABLES, ids=lambda p: p.name)
def test_video_table_fits_its_model(path):
    """The simulator's per-frame table (``simulation.video``): its name is the cache's name for
    its settings, its exact sizes are the model's, and its compressed sizes vary by frame."""
    table = load_table(path)
    name, size = table.model["name"], table.model["input_size"]
    frames_per_clip = int(re.search(r"-n(\d+)\.npz$", path.name).group(1))
    assert path.name == (f"video-{name}-{size}-{table.model['weights']}-"
                         f"{'+'.join(Path(c).stem for c in table.clips)}-n{frames_per_clip}.npz")
    graph = model_graph(name)
    assert table.model["num_layers"] == graph.num_layers
    assert table.num_rows == frames_per_clip * len(table.clips)
    for clip in table.clips:
        assert len(np.unique(table.frame_index[table.rows_of(clip)])) == frames_per_clip
    assert np.all((table.complexity > 0) & (table.complexity < 1))
    net = network(name, size)
    input_shape = (1, 3, size, size)
    for k in range(graph.num_layers):
        alone = graph.chain_cut(k) if graph.chain_cut(k).crossing == (k,) else None
        if alone is not None and "fp32" in table.tensor_codecs:
            assert np.all(table.tensor_bytes[:, table.codec_index("fp32"), k] ==
                          crossing_bytes(alone, net.output_shapes, input_shape, 4))
    assert np.all(table.image_bytes > 0) and np.ptp(table.image_bytes[:, 0]) > 0
    samples = payload_samples(table, graph)  # the complexity fit the policies predict with
    assert len(samples.complexity) == table.num_rows


@pytest.mark.parametrize("path", FRAME_COSTS, ids=lambda p: p.name)
def test_frame_costs_load_and_charge_every_codec_the_simulator_plays(path):
    """Each frame-costs file loads, names its machine and sources, and prices every image and
    tensor codec of the committed video table (nothing of theirs goes uncharged)."""
    from l2p_ros.measure.frame_costs import load_frame_costs
    from l2p_ros.simulation.video import load_table

    costs = load_frame_costs(path)
    assert costs.machine and costs.sources and costs.per_frame_ms["complexity"] > 0
    table = load_table(TABLES[0])
    for codec in table.image_codecs:
        assert costs.encode_ms(codec, 0) > 0 and costs.decode_ms(codec, 0) > 0, codec
    for codec in table.tensor_codecs:
        assert costs.encode_ms(codec, 1e6) > 0 and costs.decode_ms(codec, 1e6) > 0, codec
    for bottleneck in sorted((PROFILES_DIR.parent / "bottleneck").glob("*.safetensors")):  # every shipped one
        codec = f"bn:{bottleneck.stem}"
        assert costs.encode_ms(codec, 1e6) > 0 and costs.decode_ms(codec, 1e6) > 0, codec
    assert not costs.uncharged
