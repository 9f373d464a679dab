#!/usr/bin/env bash
# Device-tool call (one H200): the multi-rank examples' 1-GPU configs for real on today's host, with the
# CPU benchmark, and a host-cost recording of the FSDP2 example (its DTensor/FSDP2 Python per op).
#   bash benchmarks/real/host_time_multirank.sh h200 200
set -uo pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH=.
G=$1; BUDGET=${2:-200}; T0=$(date +%s)
W=/tmp/hostmr; rm -rf $W; mkdir -p $W/ship
. "$(dirname "$0")/budget.sh"
python3 -m profiles.hostbench | tee -a $OUT/real.txt
for ex in ddp fsdp2; do
  echo "== $ex 1 GPU" | tee -a $OUT/real.txt
  timeout $(lim 60 60) torchrun --standalone --nproc-per-node 1 examples/$ex/train.py --steps 12 2>&1 | grep -E "mean ms|max_memory" | tee -a $OUT/real.txt
done
echo "1 examples/fsdp2/train.py --steps 3" > $W/runs.txt
timeout $(lim 90 5) python3 -m phantora profile --gpu-name $G --out $W/ship/fsdp2_host.jsonl --runs $W/runs.txt 2>&1 | grep -v "^{" | tail -3
python3 -m profiles.hostbench | tee -a $OUT/real.txt
pack; echo "done in $(( $(date +%s) - T0 )) s"
