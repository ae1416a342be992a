#!/usr/bin/env bash
# Every GPU figure of issue 26 in one call on a machine with an NVIDIA GPU (at most 10 minutes: the steps' limits add up to 590 s).
#
#   OUT=/some/folder bash benchmarks/gpu_check.sh
#
# Writes into $OUT (default benchmarks/results/gpu_check): env.txt, steps.txt (each step's status and wall time),
# pytest_gpu.log (tests marked gpu, incl. the agreement targets and "no capture in the frame loop"),
# latency_shipped_cuda*.json (start-up with a cold then warm compile cache, first frame, steady p50/p99 at
# 1/4/8/16 faces), frame_path_agreement_cuda*.json (GPU vs CPU path on the clip), streams_cuda_torch_tvl1.json
# (frames/s at 1, 4 and 16 streams sharing the engine, batched vs separate), process_*.log + .csv (`aunets process` on
# the clip: its summary JSON with startup_s; the step's seconds are the whole-process wall time). Each pair:
# the engine's flow (DIS on the host, eager) and `--flow torch-tvl1` (all on the GPU, one CUDA graph).
# Each step has its own time limit and the script goes on when one fails, so one run yields what it can.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results/gpu_check}
mkdir -p "$OUT"
PY=${PYTHON:-python3}   # a Python with torch built with CUDA and aunets' dependencies (not this repo's CPU .venv)
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export AUNETS_CACHE_DIR="$OUT/cache"   # a fresh compile cache: the first process below starts cold
step() {  # step NAME SECONDS COMMAND...: run with a time limit, log to $OUT/NAME.log, record the status
    local name=$1 limit=$2; shift 2
    local t0 t1 rc
    t0=$(date +%s.%N)
    timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
    rc=$?
    t1=$(date +%s.%N)
    echo "$name rc=$rc seconds=$(awk "BEGIN {print $t1 - $t0}")" | tee -a "$OUT/steps.txt"
}
{ date -u +%FT%TZ; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1
  "$PY" -c "import torch, cv2; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available()); print('opencv', cv2.__version__)"
  git rev-parse HEAD 2>/dev/null; } >"$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

CLIP=media/pexels_wolfganglanger_expressions.mp4
# whole-process wall time (steps.txt), the summary JSON with start-up figures (the .log), the CSV
step process_cuda 60 "$PY" -m aunets process $CLIP --csv "$OUT/process_cuda.csv" --device cuda --no-progress
step process_cuda_tvl1 60 "$PY" -m aunets process $CLIP --csv "$OUT/process_cuda_tvl1.csv" --device cuda \
    --flow torch-tvl1 --no-progress
step process_cuda_tvl1_second_run 45 "$PY" -m aunets process $CLIP --csv "$OUT/process_cuda_tvl1_2.csv" \
    --device cuda --flow torch-tvl1 --no-progress
step process_cpu 30 "$PY" -m aunets process $CLIP --csv "$OUT/process_cpu.csv" --device cpu --no-progress
step process_cpu_runtime_cuda 40 "$PY" -m aunets process $CLIP --csv "$OUT/process_cpu_runtime_cuda.csv" \
    --device cpu --runtime cuda --no-progress
step latency_shipped 80 "$PY" benchmarks/latency_shipped.py --device cuda --frames 200 --out "$OUT"
step latency_shipped_tvl1 80 "$PY" benchmarks/latency_shipped.py --device cuda --flow torch-tvl1 --frames 200 \
    --out "$OUT"
step frame_path_agreement 30 "$PY" benchmarks/frame_path_agreement.py --device cuda --frames 200 --out "$OUT"
step frame_path_agreement_tvl1 30 "$PY" benchmarks/frame_path_agreement.py --device cuda --flow torch-tvl1 \
    --frames 200 --out "$OUT"
step streams_tvl1 70 "$PY" benchmarks/streams.py --device cuda --flow torch-tvl1 --streams 1 4 16 \
    --rounds 50 --out "$OUT"
step pytest_gpu 65 "$PY" -m pytest -q -m gpu tests/test_gpu.py tests/test_frame_path.py -rs
rm -rf "$OUT/cache"   # compiled kernels: large, machine-specific
cat "$OUT/steps.txt"
