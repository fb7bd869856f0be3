#!/usr/bin/env bash
# GPU runbook: rnnlab's GPU checks in one run of at most 8 minutes on one H100/H200.
#
#     bash benchmarks/gpu_check.sh OUTDIR
#
# Runs from the working tree (PYTHONPATH=src, the machine's python3 with its torch, Triton,
# pytest, xdist; nothing is installed) with the C++ CPU engine off (RNNLAB_CPU_ENGINE=0: its
# build is not what a GPU run checks). Every step has its own time limit, so a hang costs that
# step only; what a step measured before its limit stays in OUTDIR. Writes 10 files at most:
#
#   summary.txt               the GPU, versions, and per step its exit status, time and result
#   tests_triton.log          tests/triton_backend + the variants smoke test, compiled on CUDA
#   tests_conformance.log     tests/conformance, the CUDA cases
#   tests_triton_columns2.log tests/triton_backend with RNNLAB_TRITON_COLUMN_PROGRAMS=2
#   tests_triton_resident.log the resident tests, tests/triton_backend/test_triton_backend.py and
#                             the layer-norm variants with RNNLAB_TRITON_RESIDENT=1 (W_hh on
#                             chip wherever it applies)
#   gpu_layers_lstm.md        gpu_layers.py: LSTM, B 8/64, H 256/1024, T = 1024, triton bf16 + fp32,
#                             the host's choice beside the weights streamed (--streamed)
#   gpu_layers_others.md      gpu_layers.py: GRU, SRU, RNN, same B and H, T = 256, --streamed
#   variants_gpu.md           variants.py --device cuda: B 64, I=H 512, T 100, fp32 + bf16
#   gpu_step_profile.md       gpu_step_profile.py: LSTM and GRU, bf16, B 8/64, H 1024, T 256,
#                             µs per step of the recurrent kernels split into product, epilogue
#                             and barrier (why a row misses its target)
#   crossover_cuda.json       the table backend="auto" reads on CUDA, written by the three
#                             benchmark steps (--crossover): µs per step of native (cuDNN),
#                             triton and, where cuDNN cannot run the row, reference, per family,
#                             configuration class, dtype, mode, B, H
#   benchmarks.log            the benchmarks' output
#
# To commit the table: check summary.txt (the three benchmark steps rc=0, or the table holds
# what they measured before their limit), then
#     cp OUTDIR/crossover_cuda.json src/rnnlab/backends/crossover_cuda.json
#     PYTHONPATH=src python -m pytest -q tests/test_crossover.py
# and commit it with the GPU named in the message (the file's "source" says the GPU, versions,
# date and commands).
#
# The limits (seconds) sum to 470 (+ 5 s per step to kill one that ignores the signal); a
# step's exit status 124 means it reached its limit. Python: $PYTHON (python3); xdist workers:
# $WORKERS (16).
set -u
OUT=${1:?usage: bash benchmarks/gpu_check.sh OUTDIR}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
cd "$(dirname "$0")/.."
export PYTHONPATH=src PYTHONUNBUFFERED=1 RNNLAB_CPU_ENGINE=0
unset TRITON_INTERPRET
PY=${PYTHON:-python3}
WORKERS=${WORKERS:-16}
SUMMARY=$OUT/summary.txt
: >"$SUMMARY"

PYTEST=("$PY" -m pytest -p no:cacheprovider -n "$WORKERS" -v -rfEs --durations=15)
if "$PY" -c "import pytest_timeout" 2>/dev/null; then
    PYTEST+=(--timeout 60 --timeout-method thread)  # one hung test fails, not the step
fi

step() {  # step NAME LIMIT LOG COMMAND...: run COMMAND under LIMIT seconds, output to LOG
    local name=$1 limit=$2 log=$3 start rc
    shift 3
    start=$(date +%s)
    timeout -k 5 "$limit" "$@" >>"$log" 2>&1
    rc=$?
    printf '%-22s rc=%-3s %4ss (limit %ss)  %s\n' "$name" "$rc" "$(($(date +%s) - start))" \
        "$limit" "$(grep -E '^=+ .* in [0-9.]+s.* =+$' "$log" | tail -1)" >>"$SUMMARY"
}

{
    echo "# rnnlab GPU check, $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    timeout 5 nvidia-smi --format=csv,noheader \
        --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,temperature.gpu,utilization.gpu
    timeout 15 "$PY" - <<'EOF'
import torch, triton
p = torch.cuda.get_device_properties(0)
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}, "
      f"Triton {triton.__version__}; {p.name}, {p.multi_processor_count} SMs")
EOF
} >>"$SUMMARY" 2>&1

step "triton tests" 75 "$OUT/tests_triton.log" \
    "${PYTEST[@]}" tests/triton_backend tests/test_variants_benchmark.py
step "conformance (CUDA)" 85 "$OUT/tests_conformance.log" \
    "${PYTEST[@]}" tests/conformance -k cuda
step "triton tests, 2 cols" 35 "$OUT/tests_triton_columns2.log" \
    env RNNLAB_TRITON_COLUMN_PROGRAMS=2 "${PYTEST[@]}" tests/triton_backend
# forced resident, the layer norms included: the projected LSTM has no resident form, and the
# several-programs tests ask for one program per 80 float32 units, whose slices exceed the
# on-chip budget: both refuse
step "triton tests, resident" 40 "$OUT/tests_triton_resident.log" \
    env RNNLAB_TRITON_RESIDENT=1 "${PYTEST[@]}" tests/triton_backend/test_resident.py \
    tests/triton_backend/test_triton_backend.py tests/triton_backend/test_triton_variants.py \
    -k "not several_programs and not proj and (not test_triton_variants or layernorm)"

CROSSOVER=$OUT/crossover_cuda.json
rm -f "$CROSSOVER"  # the rows of this run only
BENCH=("$PY" benchmarks/gpu_layers.py --dtypes bfloat16,float32 --batches 8,64
       --hiddens 256,1024 --no-named --rounds 3 --warmup 1 --crossover "$CROSSOVER" --streamed)
step "gpu_layers LSTM" 85 "$OUT/benchmarks.log" \
    "${BENCH[@]}" --families LSTM --lengths 1024 --out "$OUT/gpu_layers_lstm.md"
step "gpu_layers GRU/SRU/RNN" 55 "$OUT/benchmarks.log" \
    "${BENCH[@]}" --families GRU,SRU,RNN --lengths 256 --out "$OUT/gpu_layers_others.md"
step "variants (GPU)" 65 "$OUT/benchmarks.log" \
    "$PY" benchmarks/variants.py --device cuda --rounds 3 --warmup 1 --out "$OUT/variants_gpu.md" \
    --crossover "$CROSSOVER"
step "step profile" 30 "$OUT/benchmarks.log" \
    "$PY" benchmarks/gpu_step_profile.py --families LSTM,GRU --batches 8,64 --hiddens 1024 \
    --dtypes bf16 --rounds 3 --out "$OUT/gpu_step_profile.md"

echo "crossover_cuda.json: $(grep -o '"family"' "$CROSSOVER" 2>/dev/null | wc -l) rows" >>"$SUMMARY"

cat "$SUMMARY"
echo "--- failures"
grep -hE '^(FAILED|ERROR) ' "$OUT"/tests_*.log | sort | uniq | head -40
