"""The learned bottleneck codec: its file (weights only, checked whole), its wire format (validated
like every received payload), and its place in the split pipeline. Trained bottlenecks are judged
in test_bottleneck_training.py and by bench/bench_bottleneck.py; here an untrained one (seeded)
is enough, since what is checked does not depend on how well it reconstructs."""
import copy
import dataclasses
import json
import struct

import pytest
import torch

from l2p_ros.assets import SAMPLE_VIDEO, asset_path
from l2p_ros.bottleneck import (Bottleneck, BottleneckError, BottleneckInfo, decode_codes, encode_codes,
                                load_bottleneck, resolve_path)
from l2p_ros.codec_spec import CodecSpec, PayloadError, is_bottleneck_codec
from l2p_ros.model.cpu_conv import NATIVE_BF16
from l2p_ros.model.darknet import load_model
from l2p_ros.model.matching import match_detections
from l2p_ros.model.postprocess import letterbox, load_class_names
from l2p_ros.sources import read_video
from l2p_ros.split import SplitDetector

MODEL_ID = "yolov3-tiny-416"


@pytest.fixture(scope="module")
def detector():
    return SplitDetector(load_model("yolov3-tiny"), load_class_names(), MODEL_ID)


@pytest.fixture(scope="module")
def image():
    return next(frame for _, frame in read_video(asset_path(SAMPLE_VIDEO), [30]))


def make_file(directory, detector, name="street", cut=7, channels=8, bits=4, **changes):
    torch.manual_seed(0)
    info = BottleneckInfo(MODEL_ID, detector.model.weights_fingerprint, cut,
                          tuple(detector.model.output_shapes[cut][1:]), channels, bits, 16,
                          {"sources": ["vtest.avi"]})
    return Bottleneck(dataclasses.replace(info, **changes)).save(directory / f"{name}.safetensors")


def test_codec_names():
    spec = CodecSpec.parse("bn:street-v1")
    assert (spec.dtype, spec.bottleneck, str(spec)) == ("bn", "street-v1", "bn:street-v1")
    assert is_bottleneck_codec("bn:x") and not is_bottleneck_codec("jpeg-q75")
    for bad, message in (("bn:", "needs one"), ("bn:../etc/passwd", "no path"), ("bn:a/b", "no path")):
        with pytest.raises(PayloadError, match=message):
            CodecSpec.parse(bad)
    with pytest.raises(PayloadError, match="no compression"):
        CodecSpec("bn", "zstd", bottleneck="x")
    with pytest.raises(PayloadError, match="bottleneck codes"):
        CodecSpec.parse("bn:x").wire_dtype
    assert resolve_path("street").name == "street.safetensors" and resolve_path("/tmp/a.safetensors").is_absolute()


def test_file_round_trip_and_wire_round_trip_are_deterministic(tmp_path, detector, image):
    path = make_file(tmp_path, detector)
    spec = detector.add_bottleneck(path)
    assert str(spec) == "bn:street"
    bottleneck = load_bottleneck(path, model_id=MODEL_ID, weights_fingerprint=detector.model.weights_fingerprint)
    assert bottleneck.info.training == {"sources": ["vtest.avi"]}
    first, second = detector.edge(image, 7, spec), detector.edge(image, 7, spec)
    assert first.records == second.records  # same frame, same bytes
    (record,) = first.records
    assert (record.layer_index, record.shape, record.dtype) == (7, (1, 8, 26, 26), "uint8")
    assert first.payload_bytes == len(record.data) < 8 * 26 * 26  # 4-bit codes, zstd'd
    codes = decode_codes(first.records, bottleneck.info)
    assert codes.dtype == torch.uint8 and int(codes.max()) <= 15
    assert torch.equal(decode_codes(encode_codes(7, codes), bottleneck.info), codes)
    a, b = detector.cloud(first), detector.cloud(second)
    assert [d.to_dict() for d in a.detections] == [d.to_dict() for d in b.detections]


def test_inference_takes_the_packed_cpu_path_and_agrees_with_the_training_path(detector, image):
    """encode/decode run oneDNN's packed convolutions (Winograd for the wide 3x3); the training
    path (nn.Sequential) computes the same codes and, within float rounding, the same tensor; the
    decoder in bfloat16 (the default where the CPU has it) within bfloat16's rounding."""
    bottleneck = detector.bottleneck(detector.add_bottleneck("sample-scenes-wide"))
    assert bottleneck.decoder_bfloat16 == NATIVE_BF16
    crossing = detector.runner.head(letterbox(image, detector.model.input_size)[0], 7)[7]
    try:
        with torch.inference_mode():
            codes = bottleneck.encode(crossing)
            plain_codes = torch.round(torch.sigmoid(bottleneck.encoder(crossing)) * bottleneck.info.levels)
            plain = bottleneck.decoder(codes.float() / bottleneck.info.levels)
            bottleneck.set_decoder_bfloat16(False)
            decoded = bottleneck.decode(codes)
            assert all(stage._packed for stage in (*bottleneck._cpu_encoder, *bottleneck._cpu_decoder))
            assert (codes.float() != plain_codes).float().mean() < 1e-4  # a code at a rounding edge may flip
            assert decoded.dtype == torch.float32
            assert float((decoded - plain).abs().max()) < 1e-4 * float(plain.abs().max())
            assert torch.equal(bottleneck.decode(codes), decoded)  # deterministic
            assert torch.equal(copy.deepcopy(bottleneck).decode(codes), decoded)  # a copy packs its own
            if NATIVE_BF16:
                bottleneck.set_decoder_bfloat16(True)
                rounded = bottleneck.decode(codes)
                assert rounded.dtype == torch.float32 and not torch.equal(rounded, decoded)
                assert float(((rounded - plain) ** 2).mean() / plain.var()) < 1e-4
                assert torch.equal(bottleneck.decode(codes), rounded)
        with torch.enable_grad():  # training needs gradients: the plain path then
            assert bottleneck.decode(codes.float().requires_grad_() * 1).requires_grad
    finally:
        bottleneck.set_decoder_bfloat16(NATIVE_BF16)


def test_a_tampered_or_foreign_file_is_refused(tmp_path, detector):
    path = make_file(tmp_path, detector)
    raw = bytearray(path.read_bytes())
    header_size = struct.unpack("<Q", raw[:8])[0]
    raw[8 + header_size + 100] ^= 0x01  # one bit of one weight
    tampered = tmp_path / "tampered.safetensors"
    tampered.write_bytes(bytes(raw))
    with pytest.raises(BottleneckError, match="altered or damaged"):
        load_bottleneck(tampered)
    cases = [
        (make_file(tmp_path, detector, "other-model", model_id="yolov3-416"), "made for model 'yolov3-416'"),
        (make_file(tmp_path, detector, "other-weights", weights_fingerprint="sha256:00"), "distilled from weights"),
        (make_file(tmp_path, detector, "bad-cut", cut=8, crossing_shape=(128, 26, 26)), "cut 8"),
        (tmp_path / "missing.safetensors", "not found"),
    ]
    for bad, message in cases:
        with pytest.raises(BottleneckError, match=message):
            detector.add_bottleneck(bad)
    not_a_file = tmp_path / "text.safetensors"
    not_a_file.write_text("hello")
    with pytest.raises(BottleneckError, match="not a readable bottleneck file"):
        load_bottleneck(not_a_file)
    with pytest.raises(BottleneckError, match="bits must be 1..8"):
        make_file(tmp_path, detector, "wide", bits=9)


def test_a_file_without_our_metadata_is_refused(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(path), metadata={"l2p": json.dumps({"schema": "other/1"})})
    with pytest.raises(BottleneckError, match="schema 'other/1' is not one of 'l2p-bottleneck/1', 'l2p-bottleneck/2', 'l2p-bottleneck/3'"):
        load_bottleneck(path)


def test_the_decoder_width_is_recorded_and_files_of_the_first_schema_still_load(tmp_path, detector, image):
    """A file records its decoder's own width (schema 2 on); one of schema 1 recorded a single width,
    its decoder twice it, and loads as that. A width the tensors do not have is refused."""
    from safetensors import safe_open
    from safetensors.numpy import save_file

    wide = load_bottleneck(make_file(tmp_path, detector, "wide-decoder", decoder_hidden=40))
    assert wide.info.decoder_width == 40 and wide.decoder[0].out_channels == 40 and wide.encoder[0].out_channels == 16
    current = make_file(tmp_path, detector, "third-schema")
    with safe_open(str(current), framework="np") as handle:
        meta = json.loads(handle.metadata()["l2p"])
        arrays = {key: handle.get_tensor(key) for key in handle.keys()}
    assert meta["schema"] == "l2p-bottleneck/3" and meta["decoder_hidden"] is None
    del meta["decoder_hidden"]
    narrow = tmp_path / "first-schema.safetensors"
    save_file(arrays, str(narrow), metadata={"l2p": json.dumps({**meta, "schema": "l2p-bottleneck/1"})})
    old = load_bottleneck(narrow)
    assert old.info.decoder_hidden is None and old.decoder[0].out_channels == 32  # twice hidden 16
    same = [detector.cloud(detector.edge(image, 7, detector.add_bottleneck(path))) for path in (current, narrow)]
    assert [d.to_dict() for d in same[0].detections] == [d.to_dict() for d in same[1].detections]
    meta["decoder_hidden"] = 40  # says 40, holds 32-wide tensors
    save_file(arrays, str(narrow), metadata={"l2p": json.dumps(meta)})
    with pytest.raises(BottleneckError, match="do not fit the architecture"):
        load_bottleneck(narrow)
    with pytest.raises(BottleneckError, match="decoder_hidden must be >= 1"):
        make_file(tmp_path, detector, "none-wide", decoder_hidden=0)


@pytest.mark.parametrize("spoil, message", [
    (lambda r: [r, r], "one record"),
    (lambda r: [dataclasses.replace(r, layer_index=8)], "layer 7 expected"),
    (lambda r: [dataclasses.replace(r, shape=(1, 9, 26, 26))], r"uint8 \(1, 8, 26, 26\) without quantization parameters expected, got uint8 \(1, 9"),
    (lambda r: [dataclasses.replace(r, dtype="int8")], "uint8"),
    (lambda r: [dataclasses.replace(r, data=r.data[:-3])], "zstd"),
    (lambda r: [dataclasses.replace(r, data=b"\x00" * 40)], "zstd"),
    (lambda r: [encode_codes(7, torch.full((1, 8, 26, 26), 200, dtype=torch.uint8))[0]], "above 15"),
])
def test_malformed_codes_are_refused_and_only_their_frame_fails(tmp_path, detector, image, spoil, message):
    spec = detector.add_bottleneck(make_file(tmp_path, detector))
    good = detector.edge(image, 7, spec)
    bad = dataclasses.replace(good, records=spoil(good.records[0]))
    with pytest.raises(PayloadError, match=message):
        detector.cloud(bad)
    results = detector.cloud_batch([bad, good])
    assert isinstance(results[0], PayloadError) and not isinstance(results[1], Exception)


def test_a_frame_naming_an_unknown_bottleneck_or_the_wrong_cut_is_dropped(tmp_path, detector, image):
    spec = detector.add_bottleneck(make_file(tmp_path, detector))
    good = detector.edge(image, 7, spec)
    with pytest.raises(PayloadError, match="bn:nowhere.*not found"):
        detector.cloud(dataclasses.replace(good, codec=CodecSpec.parse("bn:nowhere")))
    with pytest.raises(PayloadError, match="works at cut 7"):
        detector.cloud(dataclasses.replace(good, cut_after_layer=5))
    with pytest.raises(ValueError, match="works at cut 7, not at cut 5"):
        detector.edge(image, 5, spec)


def test_crossing_shapes_come_from_the_cut_not_the_file(tmp_path, detector):
    # A bottleneck claiming cut 7 but another crossing shape does not fit the model.
    path = make_file(tmp_path, detector, "wrong-shape", crossing_shape=(64, 26, 26))
    with pytest.raises(BottleneckError, match="expects one"):
        detector.add_bottleneck(path)


def test_fingerprints_name_the_weights():
    pretrained = load_model("yolov3-tiny")
    assert pretrained.weights_fingerprint.startswith("sha256:") and len(pretrained.weights_fingerprint) == 71
    with pytest.warns(UserWarning):
        random = load_model("yolov3-tiny", random_weights=True)
    assert random.weights_fingerprint == "random-seed-0"


def test_the_shipped_bottleneck_keeps_most_detections_on_frames_it_never_saw(detector):
    """vtest-street was distilled on the first 80% (in time) of 300 frames spread over vtest.avi;
    the frames after 640 were held out. Its held-out result is recorded in the file."""
    spec = detector.add_bottleneck("vtest-street")
    info = detector.bottleneck(spec).info
    assert (info.cut_after_layer, info.channels, info.bits) == (7, 16, 4)
    assert info.training["held_out"]["matched_share"] >= 0.9
    frames = [frame for _, frame in read_video(asset_path(SAMPLE_VIDEO), range(660, 790, 13))]
    reference = [detector.detect(frame) for frame in frames]
    sent = [detector.edge(frame, 7, spec) for frame in frames]
    matched = sum(match_detections(r, detector.cloud(s).detections) for r, s in zip(reference, sent))
    assert sum(map(len, reference)) >= 50
    assert matched >= 0.85 * sum(map(len, reference))
    image_bytes = sum(detector.edge(frame, "cloud", CodecSpec.parse("jpeg-q75")).payload_bytes for frame in frames)
    assert sum(s.payload_bytes for s in sent) < 0.3 * image_bytes


def test_the_varied_bottleneck_keeps_most_detections_on_a_scene_it_never_saw(detector):
    """sample-scenes was distilled on the street video and the training photos with augmented
    views; Megamind.avi (an animation) was never among them. The street-only bottleneck keeps
    almost none of its detections; the varied one most, and with a wider decoder (192 channels
    against 128: sample-scenes-wide) more still (docs/benchmarks.md)."""
    frames = [frame for _, frame in read_video(asset_path("Megamind.avi"), range(0, 270, 10))]
    reference = [detector.detect(frame) for frame in frames]
    assert sum(map(len, reference)) >= 30
    matched = {}
    for name in ("sample-scenes", "sample-scenes-wide", "vtest-street"):
        spec = detector.add_bottleneck(name)
        matched[name] = sum(match_detections(r, detector.cloud(detector.edge(frame, 7, spec)).detections)
                            for r, frame in zip(reference, frames)) / sum(map(len, reference))
    assert matched["sample-scenes"] >= 0.6 and matched["vtest-street"] <= 0.2, matched
    assert matched["sample-scenes-wide"] >= 0.8 and matched["sample-scenes-wide"] > matched["sample-scenes"], matched
    wide = detector.bottleneck(CodecSpec.parse("bn:sample-scenes-wide")).info
    assert (wide.channels, wide.bits, wide.hidden, wide.decoder_width) == (32, 4, 128, 192)
    info = detector.bottleneck(CodecSpec.parse("bn:sample-scenes")).info
    assert (info.cut_after_layer, info.channels, info.bits) == (7, 32, 4)
    assert info.training["augmented_views"] == 2 and info.training["held_out"]["matched_share"] >= 0.9
    assert any("opencv-doc-photos" in source for source in info.training["sources"])
