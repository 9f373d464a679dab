#!/usr/bin/env bash
# torch.compile memory and the gpt program's own fused kernels on a real GPU (issue 18), one short call:
#   bash benchmarks/real/compile_memory_real.sh [OUT_DIR]   -> OUT_DIR/compile_memory_real.tgz
# 1. compiled cnn: torch.cuda.memory snapshot (benchmarks/real/memory_history.py), 3 steps
# 2. compiled gpt: every Triton kernel's GPU time (compile_kernels.py, steps 2-3 of 4, split "program")
# 3. compiled gpt: memory snapshot, 3 steps (Inductor cache warm from 2), if the budget allows
set -o pipefail
out="${1:-${OUT:-compile_mem_out}}"
mkdir -p "$out/mem"
export PYTHONUNBUFFERED=1 TORCHINDUCTOR_CACHE_DIR=/tmp/inductor_cache
start=$(date +%s)
budget="${COMPILE_MEM_BUDGET_S:-150}"
left() { echo $(( budget - ($(date +%s) - start) )); }
run() {  # name, need_s, args...
  local name="$1" need="$2"; shift 2
  if (( $(left) < need )); then echo "skip $name (budget)"; return; fi
  local t0=$(date +%s)
  timeout "$(left)" python3 "$@" > "$out/mem/$name.log" 2>&1
  echo "$name rc=$? $(( $(date +%s) - t0 ))s $(grep -h 'mean ms/iter\|max_memory_allocated\|compile_kernels:' "$out/mem/$name.log" | tr '\n' ' ')"
}
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, torch.cuda.get_device_name())" > "$out/mem/device.txt" 2>&1
run cnn_mem 30 benchmarks/real/memory_history.py --out "$out/mem/real_cnn_compiled.pickle" examples/compile/cnn.py --steps 3 --compile
run gpt_record 30 benchmarks/real/compile_kernels.py "$out/mem/compiled_kernels_gpt.jsonl" program 2 2 examples/gpt/train.py --steps 4 --compile
run gpt_mem 25 benchmarks/real/memory_history.py --out "$out/mem/real_gpt_compiled.pickle" examples/gpt/train.py --steps 3 --compile
gzip -f "$out"/mem/*.pickle 2>/dev/null
wc -l "$out/mem/compiled_kernels_gpt.jsonl" || true
tar czf "$out/compile_memory_real.tgz" -C "$out" mem && rm -rf "$out/mem"
echo "total $(( $(date +%s) - start ))s"
