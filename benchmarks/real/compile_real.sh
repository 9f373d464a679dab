#!/usr/bin/env bash
# torch.compile on a real GPU (issue 18): compiled and eager ms/iter and peak memory of the validation
# configs, repeated for run-to-run spread, and the GPU time of every Triton kernel they launch (keyed as
# interpose.compile keys its simulated kernels). Run from the repo root on the GPU machine:
#   bash benchmarks/real/compile_real.sh [OUT_DIR]    (one tarball and compiled_kernels.jsonl in OUT_DIR)
# Configs (ARGS of the script):
#   gpt     examples/gpt/train.py (GPT-2 124M, batch 8, seq 1024, bf16)          kernels: split "program"
#   nano    examples/gpt/train.py nanoGPT shakespeare-char shape (6x384, seq 256, batch 64, vocab 65): "heldout"
#   cnn     examples/compile/cnn.py (ResNet-18 shape, batch 64, 224x224, bf16)   kernels: split "heldout"
# plus benchmarks/real/compile_kernel_sweep.py (split "fit": the bytes model's fit set).
set -o pipefail
out="${1:-${OUT:-compile_out}}"
mkdir -p "$out/logs"
export PYTHONUNBUFFERED=1 TORCHINDUCTOR_CACHE_DIR=/tmp/inductor_cache
start=$(date +%s)
budget="${COMPILE_REAL_BUDGET_S:-420}"
left() { echo $(( budget - ($(date +%s) - start) )); }
{ nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.mem --format=csv || true
  python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, torch.cuda.get_device_name())"
} > "$out/logs/device.txt" 2>&1
declare -A ARGS=(
  [gpt]="examples/gpt/train.py --steps 10"
  [nano]="examples/gpt/train.py --steps 10 --n-layer 6 --n-head 6 --n-embd 384 --seq-len 256 --batch-size 64 --vocab-size 65"
  [cnn]="examples/compile/cnn.py --steps 10"
)
declare -A SPLIT=([gpt]=program [nano]=heldout [cnn]=heldout)
run() {  # name, need_s, args...
  local name="$1" need="$2"; shift 2
  if (( $(left) < need )); then echo "skip $name (budget)"; return; fi
  local t0=$(date +%s)
  timeout "$(left)" python3 "$@" > "$out/logs/$name.log" 2>&1
  echo "$name rc=$? $(( $(date +%s) - t0 ))s $(grep -h 'mean ms/iter\|max_memory_allocated' "$out/logs/$name.log" | tr '\n' ' ')"
}
for c in gpt nano cnn; do
  run "${c}_eager_1" 20 ${ARGS[$c]}
  run "${c}_compiled_1" 60 ${ARGS[$c]} --compile
done
for c in gpt nano cnn; do
  run "${c}_record" 30 benchmarks/real/compile_kernels.py "$out/compiled_kernels.jsonl" "${SPLIT[$c]}" 3 2 \
      ${ARGS[$c]/--steps 10/--steps 6} --compile
done
run sweep 40 benchmarks/real/compile_kernel_sweep.py "$out/compiled_kernels.jsonl" 75
for c in gpt nano cnn; do
  run "${c}_compiled_2" 25 ${ARGS[$c]} --compile
  run "${c}_eager_2" 15 ${ARGS[$c]}
done
for c in gpt nano cnn; do
  run "${c}_compiled_3" 25 ${ARGS[$c]} --compile
  run "${c}_eager_3" 15 ${ARGS[$c]}
done
tar czf "$out/compile_logs.tgz" -C "$out" logs
wc -l "$out/compiled_kernels.jsonl" || true
echo "total $(( $(date +%s) - start ))s"
