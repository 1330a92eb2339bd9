#!/usr/bin/env bash
# The GPU numbers the README quotes, in one go: the 20-epoch seed recipe at batch 64 and 512 on the
# default fast path (auto precision: bf16 on sm >= 8.0), the same at fp32 and at fp16 with loss scaling
# (its inf check and scale update run inside the CUDA graph), the eager step (no CUDA graph) and
# torch.compile for comparison, the seed's
# torchvision pipeline (TORCHVISION=1), the side-by-side benchmark (reference loop, bare step,
# Ignite trainer) and a kernel profile of one step.
#   DATA=/path/to/mnist OUT=runs/gpu-check bash benchmarks/gpu_check.sh   (DATA defaults to $MNIST_IGNITE_DATA, else ./data)
set -uo pipefail
export PYTHONUNBUFFERED=1
DATA=${DATA:-${MNIST_IGNITE_DATA:-data}}
OUT=${OUT:-runs/gpu-check}
RUNS=${RUNS:-$OUT/runs}
PY=${PYTHON:-python3}
mkdir -p "$OUT" "$RUNS"
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  $PY -c "import torch, ignite; print('torch', torch.__version__, 'ignite', ignite.__version__)"; } | tee "$OUT/gpu.txt"
run() {  # name, then train_mnist.py options; wall time includes start-up, data loading and CUDA init
  local name=$1; shift
  local t0; t0=$(date +%s.%N)
  $PY examples/train_mnist.py --data-dir "$DATA" --device cuda --output-dir "$RUNS/$name" "$@" 2>&1 | tee -a "$OUT/runs.log"
  awk -v a="$t0" -v b="$(date +%s.%N)" -v n="$name" 'BEGIN { printf "%s wall_s %.1f\n", n, b - a }' | tee -a "$OUT/wall.txt"
  [[ $name == b64 || $name == b512 || $name == b64-fp* ]] && cp "$RUNS/$name/metrics.json" "$OUT/$name.metrics.json"
}
run b64 --batch-size 64
run b512 --batch-size 512
run b64-fp32 --batch-size 64 --precision fp32
run b64-fp16 --batch-size 64 --precision fp16
run b64-fp16-eager --batch-size 64 --epochs 3 --precision fp16 --no-cuda-graphs
run b64-eager --batch-size 64 --epochs 3 --no-cuda-graphs
run b512-compile --batch-size 512 --epochs 3 --compile
[[ ${TORCHVISION:-0} == 1 ]] && run b64-torchvision --batch-size 64 --epochs 2 --pipeline torchvision
$PY benchmarks/train_speed.py --data-dir "$DATA" --device cuda --batch-size 512 --batches 100 --warmup 10 2>&1 | tee -a "$OUT/bench.txt"
$PY benchmarks/train_speed.py --data-dir "$DATA" --device cuda --batch-size 64 --batches 300 --warmup 20 2>&1 | tee -a "$OUT/bench.txt"
$PY benchmarks/profile_step.py --device cuda --batch-size 512 --rows 12 2>&1 | tee "$OUT/profile.txt"
