#!/usr/bin/env bash
# The checks for a machine with a CUDA GPU, in one go: the CUDA tests (tests/test_cuda.py), then the benchmark on the
# GPU in fp32, bf16 autocast, and bf16 with torch.compile. Results go to $OUT (default bench/results).
# Usage: bash bench/cuda_check.sh            (PYTHON=... to pick the interpreter; IMVIA_DATA_DIR or the mirror for DB15K)
set -u
OUT=${OUT:-bench/results}
PY=${PYTHON:-python3}
STEPS=${STEPS:-20}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv || true
"$PY" -c "import sys, torch; print(sys.version.split()[0], torch.__version__, torch.cuda.get_device_name())" || exit 1
status=0
run() {  # a step that fails is reported, and the next one still runs
    echo "=== $*"
    "$@" || { echo "=== FAILED ($?): $*"; status=1; }
}
run timeout 600 "$PY" -m bench --device cuda --dtype fp32 --steps "$STEPS" --warmup 5 --out "$OUT"
run timeout 600 "$PY" -m pytest -q -p no:cacheprovider -o addopts="" tests/test_cuda.py
run timeout 600 "$PY" -m bench --device cuda --dtype bf16 --steps "$STEPS" --warmup 5 --out "$OUT"
run timeout 600 "$PY" -m bench --device cuda --dtype bf16 --compile --steps "$STEPS" --warmup 5 \
    --no-sorted-eval --out "$OUT"
exit $status
