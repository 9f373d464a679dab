#!/usr/bin/env bash
# One device-tool call for the data-dependent control-flow validation (MoE training, HF generate):
# real runs of examples/moe/train.py and examples/generate/generate.py, and kernel profiles of the
# fit configs only (MoE size A, generate batch 1); size B and batch 8 stay held out.
#   bash benchmarks/real/moe_generate_real.sh h200 540 2>&1 | tee $OUT/log.txt
#   bash benchmarks/real/moe_generate_real.sh h200 540 large   # GPU-bound MoE sizes C (fit), D and E (held out)
# Writes $OUT/real.jsonl (one JSON line per real run) and $OUT/prof.tar.gz (ship/moe_generate.jsonl).
set -uo pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH=.
G=$1; BUDGET=${2:-540}; SET=${3:-small}; T0=$(date +%s)
W=/tmp/moegen; rm -rf $W; mkdir -p $W/ship
. "$(dirname "$0")/budget.sh"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'
MOE=examples/moe/train.py; GEN=examples/generate/generate.py
A="--hidden 512 --layers 4 --experts 8 --top-k 2 --batch-size 8 --seq-len 512"
B="--hidden 1024 --layers 4 --experts 16 --top-k 2 --batch-size 4 --seq-len 1024"
real() { timeout $(lim 90 120) python3 "$@" 2>$W/err.txt | grep '^{' | tee -a $OUT/real.jsonl || tail -5 $W/err.txt; }
if [ "$SET" = large ]; then
  C="--hidden 2048 --layers 2 --experts 8 --top-k 2 --batch-size 8 --seq-len 2048"
  D="--hidden 1536 --layers 3 --experts 8 --top-k 2 --batch-size 4 --seq-len 4096"
  E="--hidden 2048 --layers 2 --experts 16 --top-k 4 --batch-size 8 --seq-len 1024"
  echo "== real MoE (large)"
  for impl in grouped_mm eager; do for cfg in "$C" "$D" "$E"; do real $MOE --experts-impl $impl $cfg --steps 12; done; done
  real $MOE --experts-impl grouped_mm $C --steps 12   # a second process: run-to-run spread
  R=$W/runs.txt
  { echo "1 $MOE --experts-impl grouped_mm $C --steps 3"; echo "1 $MOE --experts-impl eager $C --steps 3"; } > $R
  timeout $(lim 240 5) python3 -m phantora profile --gpu-name $G --out $W/ship/moe_large.jsonl --runs $R 2>&1 | grep -v "^{" | tail -8
  pack; echo "done in $(( $(date +%s) - T0 )) s"; exit 0
fi
echo "== real MoE"
for impl in eager grouped_mm; do
  real $MOE --experts-impl $impl $A --steps 12
  real $MOE --experts-impl $impl $B --steps 12
done
real $MOE --experts-impl eager $A --steps 12   # a second process: run-to-run spread
echo "== real generate"
for b in 1 8; do real $GEN --batch-size $b; done
real $GEN --batch-size 1   # second process
echo "== record the fit configs"
R=$W/runs.txt
{ echo "1 $MOE --experts-impl eager $A --steps 3"; echo "1 $MOE --experts-impl grouped_mm $A --steps 3";
  echo "1 $GEN --batch-size 1 --new-tokens 16"; } > $R
timeout $(lim 240 5) python3 -m phantora profile --gpu-name $G --out $W/ship/moe_generate.jsonl --runs $R 2>&1 | grep -v "^{" | tail -8
pack
echo "done in $(( $(date +%s) - T0 )) s"
