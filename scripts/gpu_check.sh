#!/usr/bin/env bash
# Issue 12's GPU checks as one command for a lent GPU machine (a session has 15 minutes of one,
# start-up included; this takes about 5 on an H200). Prepare here with scripts/gpu_prepare.sh,
# then run there with the device tool: carry [".whl", ".gpu-cache"], command
# `bash scripts/gpu_check.sh`, timeout_s 540. Each step has its own time limit, and a failed step
# does not stop the next. What comes back ($OUT, else out/gpu-check): gpu_check.log and the JSON.
# `PYTHON=.venv/bin/python GPU_CHECK_DEVICE=cpu bash scripts/gpu_check.sh` runs the same steps here
# on the CPU with small sizes (a dry run of the script; ~4 min).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-out/gpu-check}
device=${GPU_CHECK_DEVICE:-cuda}
mkdir -p "$out"
exec > >(tee "$out/gpu_check.log") 2>&1
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD
python=${PYTHON:-python3}   # the dry run here: PYTHON=.venv/bin/python GPU_CHECK_DEVICE=cpu
if ! "$python" -c "import zstandard, lz4, platformdirs" 2> /dev/null; then   # the GPU image lacks them
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl/*.whl || { echo "the carried wheels did not install: run scripts/gpu_prepare.sh, carry .whl"; exit 1; }
    export PYTHONPATH=/tmp/site:$PWD
fi
[ -d .gpu-cache ] && export L2P_CACHE_DIR=$PWD/.gpu-cache
results=$(cd "$out" && pwd)   # the benches save a result name that is an absolute path as that file
failed=()
step() {  # step NAME SECONDS COMMAND...
    local name=$1 limit=$2
    shift 2
    echo; echo "== $name ($(date +%T), limit ${limit}s): $*"
    local start=$SECONDS
    timeout "$limit" "$@"
    local rc=$?
    echo "== $name: exit $rc after $((SECONDS - start)) s"
    [ $rc -eq 0 ] || failed+=("$name")
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
"$python" -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__,
                                            'cuda', torch.cuda.is_available())"
if [ "$device" = cpu ]; then
    quick=(--quick) batches=1,4 fleet_batches=1,4 rounds=1 vehicles=4 workers=2
else
    quick=() batches=1,8,32 fleet_batches=1,4,16,32 rounds=3 vehicles=32 workers=4
fi
step tests 150 "$python" -m pytest -q -p no:cacheprovider \
    test/test_device.py test/test_split_batch.py test/test_codec.py
step cloud_host 120 "$python" bench/bench_cloud_host.py --device "$device" --batches "$batches" --rounds "$rounds" \
    --decode-workers "$workers" \
    --paths 8:fp32,8:int8-channel+zstd,cloud:jpeg-q75,7:bn:sample-scenes,7:bn:sample-scenes-wide \
    --out "$results/cloud_host_yolov3-tiny_$device"
[ "$device" = cpu ] || step cloud_host_fp16 60 "$python" bench/bench_cloud_host.py --device "$device" \
    --precision fp16 --batches "$batches" --rounds "$rounds" --decode-workers "$workers" \
    --paths 8:fp16,cloud:jpeg-q75 \
    --out "$results/cloud_host_yolov3-tiny_${device}_fp16"
step fleet 150 "$python" bench/bench_fleet.py --device "$device" --only capacity --batches "$fleet_batches" \
    --rounds 2 --capacity-vehicles "$vehicles" --out "$results/fleet_yolov3-tiny_${device}_capacity"
step gpu 150 "$python" bench/bench_gpu.py --device "$device" "${quick[@]}" --out "$results/gpu.json"
echo; echo "failed steps: ${failed[*]:-none}"
[ ${#failed[@]} -eq 0 ]
