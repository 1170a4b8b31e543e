#!/usr/bin/env bash
# The GPU check: one command a GPU machine runs, in under 8 minutes on an H100/H200-class
# GPU with CuPy and PyTorch installed. From the repository root:
#
#     bash benchmarks/gpu_check.sh OUT             # results in OUT/, a summary printed
#     bash benchmarks/gpu_check.sh --dry-run OUT   # the same paths on the CPU, small (CI)
#
# 1. environment      OUT/environment.json; without a GPU: one line, exit status 2
# 2. tests            the GPU-marked test suite (pytest -m gpu): OUT/tests.txt
#                     (meanwhile, on the CPU, train.py's float32 reference run)
# 3. train.py         --backend cupy, the default task, STEPS steps, in float32 and in float16:
#                     OUT/train-float32/, OUT/train-float16/, OUT/train-cpu-float32/;
#                     compared (tail training loss, test token accuracy): OUT/compare.json
# 4. benchmark        minigrad on CuPy against PyTorch on CUDA, W1-W3 of train_step.py and a
#                     Transformer-base step in float32 and float16: OUT/benchmark.json
# 5. summary          OUT/summary.md, printed
#
# Each phase has a time limit (below) so that the whole stays under 8 minutes; a phase
# that runs out is named in the summary and the next one runs. Exit status: 0 when every
# phase ran, 1 when one failed or ran out of time, 2 without a GPU.
set -u

DRY=""
if [ "${1:-}" = "--dry-run" ]; then
    DRY="--dry-run"
    shift
fi
if [ $# -ne 1 ]; then
    echo "usage: bash benchmarks/gpu_check.sh [--dry-run] OUT_DIR" >&2
    exit 2
fi
OUT=$1
cd "$(dirname "$0")/.." || exit 2
mkdir -p "$OUT" || exit 2
PYTHON=${PYTHON:-python}

if [ -n "$DRY" ]; then          # the CPU, small: every path, nothing measured
    BACKEND=numpy STEPS=3 TESTS=tests/test_linalg.py        # its GPU-marked tests skip here
    TRAIN_FLAGS="--num-pairs 300 --d-model 32 --ff 64 --heads 2 --layers 1"
    BENCH_FLAGS="--workloads TB,TB16"                       # W1-W3: the same code, slow on a CPU
    LIMIT_TESTS=120 LIMIT_TRAIN=120 LIMIT_BENCH=300
else
    BACKEND=cupy STEPS=300 TESTS=tests
    TRAIN_FLAGS=""
    BENCH_FLAGS=""
    LIMIT_TESTS=200 LIMIT_TRAIN=75 LIMIT_BENCH=170
fi
FAILED=0

phase() {       # phase NAME LIMIT_SECONDS LOG COMMAND...: run it, note how it ended
    local name=$1 limit=$2 log=$3
    shift 3
    local start=$SECONDS
    timeout "$limit" "$@" > "$log" 2>&1
    local status=$?
    if [ $status -eq 124 ]; then
        echo "gpu_check: $name ran out of its $limit s (see $log)"
        FAILED=1
    elif [ $status -ne 0 ]; then
        echo "gpu_check: $name failed with status $status (see $log)"
        FAILED=1
    else
        echo "gpu_check: $name done in $((SECONDS - start)) s"
    fi
}

# 1. environment: stop here, in one line, without a GPU
$PYTHON benchmarks/gpu_benchmark.py environment "$OUT" $DRY || exit $?

# 2. the GPU-marked tests; the CPU reference run of train.py beside them
# shellcheck disable=SC2086
OMP_NUM_THREADS=4 OPENBLAS_NUM_THREADS=4 timeout $((LIMIT_TESTS + LIMIT_TRAIN)) \
    $PYTHON train.py --backend numpy --max-steps $STEPS $TRAIN_FLAGS --no-progress --no-plots --overwrite \
    --out "$OUT/train-cpu-float32" > "$OUT/train-cpu-float32.log" 2>&1 &
REFERENCE=$!
phase tests "$LIMIT_TESTS" "$OUT/tests.txt" $PYTHON -m pytest -q -m gpu -p no:cacheprovider "$TESTS"

# 3. train.py on the device, float32 and float16, compared with the CPU's run
for PRECISION in float32 float16; do
    # shellcheck disable=SC2086
    phase "train.py $PRECISION" "$LIMIT_TRAIN" "$OUT/train-$PRECISION.log" \
        $PYTHON train.py --backend $BACKEND --precision $PRECISION --max-steps $STEPS $TRAIN_FLAGS \
        --no-progress --no-plots --overwrite --out "$OUT/train-$PRECISION"
done
wait $REFERENCE || { echo "gpu_check: the CPU reference run failed (see $OUT/train-cpu-float32.log)"; FAILED=1; }
$PYTHON benchmarks/gpu_benchmark.py compare "$OUT" $DRY

# 4. the benchmark
# shellcheck disable=SC2086
phase benchmark "$LIMIT_BENCH" "$OUT/benchmark.log" $PYTHON benchmarks/gpu_benchmark.py bench "$OUT" $DRY $BENCH_FLAGS

# 5. the summary
$PYTHON benchmarks/gpu_benchmark.py summary "$OUT"
exit $FAILED
