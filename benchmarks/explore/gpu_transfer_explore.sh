#!/usr/bin/env bash
# Recipe exploration for benchmarks/transfer_sst2.py on a borrowed GPU (PyTorch only, no Ray):
# three variants at once on one GPU, SST-2 only, results under $OUT/<variant>/. The issue's
# budget is CPU time, so these runs choose a recipe; the committed figures come from a CPU run.
#   run from the repository root with: carry .gpu_data (a copy of ../shared/data/{sst2,agnews});
#   bash benchmarks/explore/gpu_transfer_explore.sh
set -u
OUT=${OUT:-/tmp/out}
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name --format=csv,noheader
common="--gpu --skip-bow --skip-agnews --data .gpu_data --threads 4"
run() {  # name, extra args
  mkdir -p "$OUT/$1"
  RAYLM_RESULTS_DIR="$OUT/$1" timeout 500 python3 -m benchmarks.transfer_sst2 $common --out "/tmp/$1" "${@:2}" \
    > "$OUT/$1/log.txt" 2>&1
  echo "$1 rc=$?"
}
run base &
run long --pretrain-steps 20000 &
run sst2only --pretrain-corpus sst2 &
wait
for v in base long sst2only; do echo "== $v"; tail -6 "$OUT/$v/log.txt"; grep -h '"sst2_by_lr"' -A14 "$OUT/$v"/*.json | head -16; done
