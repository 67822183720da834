#!/usr/bin/env bash
# One short GPU check for a machine with PyTorch and no Ray (the device tool's H100/H200):
# MFU of GPT-2 small (benchmarks/gpu_mfu.py) and raylm's own loop with bf16 + torch.compile +
# checkpoint/resume (benchmarks/gpu_train_check.py). Results go to $RAYLM_RESULTS_DIR (default
# benchmarks/results). Usage: bash benchmarks/gpu_check.sh
set -u
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
$PY -c "import torch, sys; print('python', sys.version.split()[0], 'torch', torch.__version__, torch.version.cuda)"
timeout 330 $PY -m benchmarks.gpu_mfu --batch 16 32 64 --reference || echo "gpu_mfu.py failed: $?"
timeout 150 $PY -m benchmarks.gpu_train_check --steps 40 --compile 2>&1 | grep -v '^\[train\]' || echo "gpu_train_check.py failed: $?"
timeout 100 $PY -m benchmarks.gpu_train_check --steps 40 --act-ckpt 2>&1 | grep -v '^\[train\]' || echo "act-ckpt check failed: $?"
