#!/usr/bin/env bash
# The GPU numbers the README quotes, in one go: the 20-epoch seed recipe at batch 64 and 512 on the
# default fast path, the eager step (no CUDA graph) for comparison, the seed's torchvision pipeline,
# and the side-by-side benchmark (reference loop, bare step, Ignite trainer).
#   DATA=../shared/data OUT=runs/gpu-check bash benchmarks/gpu_check.sh
set -uo pipefail
export PYTHONUNBUFFERED=1
DATA=${DATA:-../shared/data}
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
  [[ -f "$RUNS/$name/metrics.json" ]] && cp "$RUNS/$name/metrics.json" "$OUT/$name.metrics.json"
}
run b64 --batch-size 64
run b512 --batch-size 512
run b64-eager --batch-size 64 --epochs 3 --no-cuda-graphs
run b64-torchvision --batch-size 64 --epochs 2 --pipeline torchvision
for b in 512 64; do
  $PY benchmarks/train_speed.py --data-dir "$DATA" --device cuda --batch-size $b --batches 300 --warmup 20 \
    2>&1 | tee -a "$OUT/bench.txt"
done
