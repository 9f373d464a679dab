#!/usr/bin/env bash
# Simulated side of docs/validation.md "torch.compile (issue 18)": the configs of
# benchmarks/real/compile_real.sh, eager and compiled, under `phantora run --scenario scenarios/h200x1.yaml`
# (host time zero). Summaries go to docs/data/compile/sim_<config>_<eager|compiled>.summary.json.
set -o pipefail
cd "$(dirname "$0")/.."
out=docs/data/compile
declare -A ARGS=(
  [gpt]="examples/gpt/train.py --steps 10"
  [nano]="examples/gpt/train.py --steps 10 --n-layer 6 --n-head 6 --n-embd 384 --seq-len 256 --batch-size 64 --vocab-size 65"
  [cnn]="examples/compile/cnn.py --steps 10"
)
for c in ${CONFIGS:-gpt nano cnn}; do
  for m in ${MODES:-eager compiled}; do
    extra=""; [[ $m == compiled ]] && extra="--compile"
    t0=$(date +%s)
    nice -n 5 .venv/bin/python -m phantora run --scenario scenarios/h200x1.yaml --out "/tmp/phantora_compile_${c}_${m}" \
      --overwrite ${ARGS[$c]} $extra > "/tmp/phantora_compile_${c}_${m}.log" 2>&1
    echo "$c $m rc=$? $(( $(date +%s) - t0 ))s"
    cp "/tmp/phantora_compile_${c}_${m}/summary.json" "$out/sim_${c}_${m}.summary.json"
  done
done
