#!/usr/bin/env bash
# One short GPU check for a machine with PyTorch and no Ray (the device tool's H100/H200):
# GPT-2 small's step, today's against the candidates, and its MFU (benchmarks/gpu_mfu.py, ~6 min
# with Inductor's cache cold) and raylm's own loop with bf16 + torch.compile + checkpoint/resume
# (benchmarks/gpu_train_check.py, ~3 min). Results go to $RAYLM_RESULTS_DIR (default
# benchmarks/results). Usage: bash benchmarks/gpu_check.sh [mfu|loop] (default: both; the device
# tool's 10-minute calls take one each)
set -u
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
$PY -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, torch.version.cuda)"
WHAT=${1:-both}
if [ "$WHAT" != loop ]; then
  timeout 480 $PY -m benchmarks.gpu_mfu --batch 16 64 || echo "gpu_mfu.py failed: $?"
fi
[ "$WHAT" = mfu ] && exit 0
timeout 150 $PY -m benchmarks.gpu_train_check --steps 40 --compile 2>&1 | grep -v '^\[train\]' || echo "gpu_train_check.py failed: $?"
timeout 100 $PY -m benchmarks.gpu_train_check --steps 40 --act-ckpt 2>&1 | grep -v '^\[train\]' || echo "act-ckpt check failed: $?"
