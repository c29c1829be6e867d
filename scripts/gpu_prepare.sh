#!/usr/bin/env bash
# Gather here what scripts/gpu_check.sh needs on a lent GPU machine and its image lacks: wheels of
# zstandard, lz4 and platformdirs for its Python 3.12 on x86-64 (.whl/), and the assets the
# checks read (.gpu-cache/, used there as L2P_CACHE_DIR). Both folders are git-ignored and travel
# only when a device call carries them: carry [".whl", ".gpu-cache"], 49 MB: with the repo's 11 MB,
# under the 64 MiB a call may carry.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
versions=$("$python" - <<'PY'
from importlib.metadata import version
print(" ".join(f"{name}=={version(name)}" for name in ("zstandard", "lz4", "platformdirs")))
PY
)
rm -rf .whl && mkdir -p .whl
platforms=""
for tag in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
    platforms="$platforms --platform $tag"
done
# shellcheck disable=SC2086  # word splitting of the flags and versions is wanted
"$python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    $platforms -d .whl $versions
cache=$("$python" -c "from l2p_ros.assets import cache_dir; print(cache_dir())")
mkdir -p .gpu-cache
for name in yolov3-tiny.weights yolov3-tiny.cfg coco.names vtest.avi messi5.jpg fruits.jpg basketball1.png; do
    if [ ! -f "$cache/$name" ]; then
        echo "missing $cache/$name: run \`l2p fetch-assets\` (or make setup) first" >&2
        exit 1
    fi
    cp -p "$cache/$name" .gpu-cache/
done
du -sh .whl .gpu-cache
echo "ready: device run with carry [\".whl\", \".gpu-cache\"] and command: bash scripts/gpu_check.sh"
