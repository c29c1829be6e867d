"""Measurement files written before network-resolution image offload: their ``jpeg-qN`` was the
camera-size image. They are read with that name put right (``jpeg-full-qN``), never as network-size
bytes, and a cache holding one is measured again where today's codecs are missing (only the image
columns when only image codecs are missing)."""
import json
from pathlib import Path

import numpy as np
import yaml

from l2p_ros.measure import payload_fit
from l2p_ros.measure.profile import load_profile
from l2p_ros.simulation import video

H200_PROFILE = Path(__file__).resolve().parents[1] / "models" / "profiles" / "yolov3-tiny-416-cuda-h200.yaml"


def test_a_version_1_profile_has_its_camera_size_jpeg_renamed():
    text = H200_PROFILE.read_text()  # committed as measured on that host, in the old format
    assert text.startswith("schema: l2p-profile/1")
    written = yaml.safe_load(text)["cuts"][0]["payload_bytes"]["jpeg-q75"]
    image = load_profile(H200_PROFILE).cut(-1).payload_bytes
    assert image["jpeg-full-q75"] == written and "jpeg-q75" not in image


def test_a_version_1_payload_fit_has_its_camera_size_jpeg_renamed(tmp_path):
    fits = [{"after_layer": -1, "codec": "jpeg-q75", "intercept_bytes": 50000.0, "slope_bytes": 9000.0,
             "r2": 0.4, "residual_std_bytes": 900.0, "mean_bytes": 54000.0, "cv": 0.05, "exact": False},
            {"after_layer": 3, "codec": "fp16", "intercept_bytes": 5.0e5, "slope_bytes": 0.0, "r2": None,
             "residual_std_bytes": 0.0, "mean_bytes": 5.0e5, "cv": 0.0, "exact": True}]
    old = {"schema": "l2p-payload-fit/1", "model": {"name": "yolov3-tiny", "input_size": 416},
           "source": {"codecs": ["fp16", "jpeg-q75"], "request": {"codecs": ["fp16", "jpeg-q75"]}},
           "complexity_range": [0.1, 0.6], "fits": fits}
    path = tmp_path / "old-fit.yaml"
    path.write_text(yaml.safe_dump(old))
    fit = payload_fit.load_payload_fit(path)
    assert set(fit.fits) == {(-1, "jpeg-full-q75"), (3, "fp16")}
    assert fit.source["codecs"] == fit.source["request"]["codecs"] == ["fp16", "jpeg-full-q75"]
    fit.save(tmp_path / "again.yaml")  # written back in today's format, names kept
    assert payload_fit.load_payload_fit(tmp_path / "again.yaml").fits.keys() == fit.fits.keys()


def _rewrite_schema(path: Path, schema: str, image_codecs: list[str]) -> None:
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    meta = json.loads(str(arrays["meta"]))
    arrays["meta"] = np.array(json.dumps({**meta, "schema": schema, "image_codecs": image_codecs}))
    np.savez_compressed(path, **arrays)


def test_an_old_video_table_is_renamed_and_a_cached_one_measured_again(tmp_path, monkeypatch):
    monkeypatch.setenv("L2P_CACHE_DIR", str(tmp_path))
    for asset in ("vtest.avi", "Megamind.avi", "yolov3-tiny.cfg", "yolov3-tiny.weights", "coco.names"):
        source = Path.home() / ".cache" / "l2p_ros" / asset
        if source.is_file():  # reuse what the suite already fetched; otherwise fetched offline as usual
            (tmp_path / asset).symlink_to(source)
    table = video.video_table(frames_per_clip=3, log=lambda *_: None)
    assert set(video.IMAGE_CODECS) <= set(table.image_codecs)
    row = table.image_bytes[:, table.image_index("jpeg-q75")]
    full = table.image_bytes[:, table.image_index("jpeg-full-q75")]
    assert (row < 0.6 * full).all()  # vtest 0.36x, Megamind 0.46..0.54x
    path = next((tmp_path / "simulation").glob("*.npz"))
    # As a version 2 table would have said it: only camera-size JPEG, under the old name.
    _rewrite_schema(path, video.SCHEMA_V2, ["jpeg-q75"])
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    arrays["image_bytes"] = full[:, None]
    arrays["tensor_bytes"] = arrays["tensor_bytes"] + 1  # marked: only the image columns are measured again
    np.savez_compressed(path, **arrays)
    assert video.load_table(path).image_codecs == ("jpeg-full-q75",)
    again = video.video_table(frames_per_clip=3, log=lambda *_: None)  # lacks jpeg-q75: measured again
    assert np.array_equal(again.image_bytes[:, again.image_index("jpeg-q75")], row)
    assert np.array_equal(again.image_bytes, table.image_bytes)
    assert np.array_equal(again.tensor_bytes, table.tensor_bytes + 1)
    assert video.load_table(path).image_codecs == table.image_codecs
