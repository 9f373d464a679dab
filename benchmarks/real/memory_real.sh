#!/usr/bin/env bash
# Real CUDA memory histories for benchmarks/memory_diff.py: each program under
# benchmarks/real/memory_history.py on the GPU, one process each; the snapshots go to $OUT/memory.tar.gz.
# Usage (device tool): bash benchmarks/real/memory_real.sh   (OUT defaults to ./memory_real)
set -uo pipefail
out="${OUT:-memory_real}"; mkdir -p "$out/snap"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))" | tee "$out/snap/device.txt"
run() {  # name, python-or-torchrun args...
  local name="$1"; shift
  echo "=== $name: $*" | tee "$out/snap/$name.log"
  timeout 240 "$@" 2>&1 | tail -20 | tee -a "$out/snap/$name.log"
  gzip -f "$out/snap/$name.pickle" 2>/dev/null || true
}
H=benchmarks/real/memory_history.py
run gpt_T2 python3 $H --out "$out/snap/gpt_T2.pickle" examples/gpt/train.py --n-layer 8 --n-head 8 --n-embd 512 --seq-len 128 --batch-size 2 --steps 4
run ddp1 torchrun --standalone --nproc-per-node 1 $H --out "$out/snap/ddp1.pickle" examples/ddp/train.py --steps 3
run gpt_default python3 $H --out "$out/snap/gpt_default.pickle" examples/gpt/train.py --steps 4
tar -czf "$out/memory.tar.gz" -C "$out" snap && ls -la "$out"
