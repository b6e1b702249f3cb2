#!/usr/bin/env bash
# Every check that needs a CUDA GPU, in one run of about 8 minutes on one H100.
#
# The issues' GPU figures come from here: the CUDA tests, augmentation pairs/s on batches of
# 256 (target >= 80,000), prediction images/s (target >= 1,000), training images/s with the
# data wait (target <= 5 %), and the real-data GPU mode (512 px) on Montgomery.
#
# On a machine with torch (CUDA build), numpy, opencv, numba, scipy, safetensors, typer, rich,
# pyyaml and Pillow installed, from the repository root:
#
#     bash benchmarks/gpu_session.sh [OUT_DIR]
#
# cxrseg is used from src/ (no install needed). The real-data step reads
# $CXRSEG_GPU_DATA/montgomery (default .gpu-data, a folder git ignores where a copy of
# ../shared/data/montgomery can travel to the GPU machine: `mkdir -p .gpu-data && cp -r
# ../shared/data/montgomery .gpu-data/`, 13 MB; a symbolic link would not travel) and is
# skipped where it is absent. With the device tool: run `bash benchmarks/gpu_session.sh`
# with carry [".gpu-data"] and a 600 s limit; the eight files it leaves in $OUT come back.
# Each step's output goes to OUT_DIR/<step>.txt (default: $OUT, else gpu-results/); a failed
# step is reported and the next one still runs.
set -u
out="${1:-${OUT:-gpu-results}}"
mkdir -p "$out"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python=${PYTHON:-python3}
data="${CXRSEG_GPU_DATA:-.gpu-data}"
failed=()

step() {  # step NAME LIMIT_SECONDS COMMAND...
    local name=$1 limit=$2
    shift 2
    echo "=== $name ($(date +%T), limit ${limit}s): $*" | tee "$out/$name.txt"
    timeout "$limit" "$@" 2>&1 | tee -a "$out/$name.txt"
    local rc=${PIPESTATUS[0]}
    echo "=== $name: exit $rc" | tee -a "$out/$name.txt"
    [ "$rc" -eq 0 ] || failed+=("$name")
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
$python -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" \
    | tee -a "$out/gpu.txt"

step cuda_tests 150 $python -m pytest -q -p no:cacheprovider tests/test_cuda.py
step bench_augment 60 $python benchmarks/bench_augment.py --device cuda --batch 256 --seconds 2
step bench_predict 90 $python benchmarks/bench_predict.py --device cuda --batch-size 64 \
    --images 512
step bench_train 120 $python benchmarks/bench_train.py --device cuda --size 512 --cases 64 \
    --batch-size 16 --workers 8
if [ -d "$data/montgomery" ]; then
    step real_data_gpu 240 $python benchmarks/real_data.py --mode gpu --data "$data" \
        --sets montgomery --minutes-per-set 3 --out /tmp/cxrseg-real-gpu
    cp /tmp/cxrseg-real-gpu/results.md "$out/real_data_results.md" 2>/dev/null
else
    echo "real_data_gpu: skipped, no $data/montgomery" | tee "$out/real_data_gpu.txt"
fi

echo "failed steps: ${failed[*]:-none}" | tee "$out/summary.txt"
[ ${#failed[@]} -eq 0 ]
