#!/usr/bin/env bash
# One device-tool call: record examples/gpt (several configs) and examples/fsdp2 on one GPU, and
# measure examples/gpt for real (plain python3) for the accuracy table.
#   bash benchmarks/real/profile_examples_update.sh h200 300      (GPU key, wall budget in seconds)
# Writes $OUT/log.txt (via the caller's tee) and $OUT/prof.tar.gz with ship/gpt_example.jsonl and
# ship/fsdp2_example.jsonl -> profiles/data/<gpu>/.
set -uo pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH=.
G=$1; BUDGET=${2:-300}; T0=$(date +%s)
W=/tmp/prof2; rm -rf $W; mkdir -p $W/ship
. "$(dirname "$0")/budget.sh"
P="python3 -m phantora profile --gpu-name $G"
GPT=examples/gpt/train.py
CONFIGS=("" "--dtype fp32" "--batch-size 4" "--batch-size 16" "--n-layer 6 --n-embd 1024 --n-head 16 --batch-size 4")
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c 'import torch; p=torch.cuda.get_device_properties(0); print("torch", torch.__version__, p.name, p.total_memory, p.L2_cache_size)'
echo "== real gpt runs"
for a in "${CONFIGS[@]}"; do
  timeout $(lim 60 200) python3 $GPT $a 2>&1 | tail -3 | sed "s/^/[real gpt $a] /"
done
echo "== record gpt configs"
R=$W/gpt_runs.txt
for a in "${CONFIGS[@]}"; do echo "1 $GPT --steps 4 $a"; done > $R
timeout $(lim 150 80) $P --out $W/ship/gpt_example.jsonl --runs $R 2>&1 | grep -v "^step " | tail -15
pack
echo "== record fsdp2"
R2=$W/fsdp2_runs.txt
for w in 2 4 8; do for a in "" "--dtype fp32"; do echo "$w examples/fsdp2/train.py --steps 3 $a"; done; done > $R2
timeout $(lim 100 10) $P --out $W/ship/fsdp2_example.jsonl --runs $R2 2>&1 | grep -v "^step " | tail -10
pack
ls -la $W/ship
echo "done in $(( $(date +%s) - T0 )) s"
