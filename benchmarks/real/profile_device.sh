#!/usr/bin/env bash
# One device-tool call: record the shipped profiles for one GPU and measure real ms/iter for the accuracy table.
#   bash benchmarks/real/profile_device.sh h100 520     (GPU key, wall budget in seconds)
# Writes $OUT/log.txt (via the caller's tee) and $OUT/prof.tar.gz:
#   ship/*.jsonl      -> profiles/data/<gpu>/   (examples at their default configs, sweep)
#   heldout.jsonl     -> docs/data/profiles/<gpu>/ (accuracy configs kept OUT of the shipped profiles)
#   trace_*/runNN.gz  op traces of the recorded runs (profiles.timeline)
set -uo pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH=.
G=$1; BUDGET=${2:-520}; T0=$(date +%s)
W=/tmp/prof; rm -rf $W; mkdir -p $W/ship
. "$(dirname "$0")/budget.sh"
P="python3 -m phantora profile --gpu-name $G"
DDP=examples/ddp/train.py
GPTEX=examples/gpt/train.py

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name())'

echo "== on-demand + kernels-only"
timeout $(lim 60) python3 benchmarks/real/profile_on_demand_check.py $W/ondemand_cache.sqlite $G
timeout $(lim 60) $P --kernels-only benchmarks/real/missing_example.jsonl --cache $W/kernels_cache.sqlite --out $W/kernels_only.jsonl

# accuracy configs (single GPU, examples/ddp/train.py at world size 1); the first two are also shipped
SHIP_ACC=("" "--dtype fp32")
HELD=(
  "--n-embd 1024 --n-layer 8 --n-head 16 --batch-size 4"
  "--n-embd 2048 --n-layer 4 --n-head 16 --seq-len 2048 --batch-size 2"
  "--n-embd 1536 --n-layer 4 --n-head 12 --batch-size 8"
  "--n-embd 512 --n-layer 4 --n-head 8 --batch-size 8 --dtype fp32"
  "--n-embd 768 --n-layer 12 --n-head 12 --seq-len 512 --batch-size 16"
  "--n-embd 1024 --n-layer 6 --n-head 8 --seq-len 2048 --batch-size 2 --dtype fp32"
)
echo "== real runs (plain python3, NCCL world size 1)"
export MASTER_ADDR=127.0.0.1 MASTER_PORT=29533 RANK=0 LOCAL_RANK=0 WORLD_SIZE=1 LOCAL_WORLD_SIZE=1
for args in "${SHIP_ACC[@]}" "${HELD[@]}"; do
  echo "-- real ddp [$args]"
  timeout $(lim 60 300) python3 $DDP $args --steps 10 2>&1 | grep -E "mean ms/iter|max_memory|Error|error" | sed "s/^/[real ddp $args] /"
done
if [ -f $GPTEX ]; then
  for args in "" "--dtype fp32"; do
    echo "-- real gpt [$args]"
    timeout $(lim 60 300) python3 $GPTEX $args 2>&1 | tail -4 | sed "s/^/[real gpt $args] /"
  done
fi
unset MASTER_ADDR MASTER_PORT RANK LOCAL_RANK WORLD_SIZE LOCAL_WORLD_SIZE
pack

echo "== record shipped runs (examples at default configs)"
R=$W/ship_runs.txt
{ for a in "${SHIP_ACC[@]}"; do echo "1 $DDP --steps 4 $a"; done
  [ -f $GPTEX ] && { echo "1 $GPTEX"; echo "1 $GPTEX --dtype fp32"; }
  for w in 2 4 8; do for a in "" "--dtype fp32"; do
    echo "$w examples/fsdp2/train.py --steps 3 $a"; echo "$w examples/tp2d/train.py --steps 3 $a"; done; done
} > $R
cat -n $R
timeout $(lim 200 280) $P --out $W/ship/examples.jsonl --runs $R --trace $W/trace_ship 2>&1 | grep -v "^step " | tail -25
pack

echo "== record held-out runs (kept out of the shipped profiles)"
H=$W/heldout_runs.txt
for a in "${HELD[@]}"; do echo "1 $DDP --steps 4 $a"; done > $H
timeout $(lim 120 230) $P --out $W/heldout.jsonl --runs $H --trace $W/trace_heldout 2>&1 | grep -v "^step " | tail -10
pack

echo "== sweep bf16"
timeout $(lim 200 75) $P --out $W/ship/sweep_bf16.jsonl benchmarks/real/profile_gpt_sweep.py --dtype bf16 \
  --hidden 512,1024,2048,4096 --seq 512,1024,2048,4096 --batch 1,4,16 --budget-s $(( $(left) - 110 )) 2>&1 | tail -60
pack
echo "== sweep fp32"
timeout $(lim 120 10) $P --out $W/ship/sweep_fp32.jsonl benchmarks/real/profile_gpt_sweep.py --dtype fp32 \
  --hidden 512,1024,2048 --seq 512,1024 --batch 1,4 --max-tokens 4096 --budget-s $(( $(left) - 40 )) 2>&1 | tail -20
pack
ls -la $W $W/*/
echo "done in $(( $(date +%s) - T0 )) s"
