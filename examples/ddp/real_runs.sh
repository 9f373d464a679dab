#!/usr/bin/env bash
# Real-GPU reference runs of the distributed examples (device tool, nvidia-h200-x2).
# Usage: OUT=/some/dir bash examples/ddp/real_runs.sh   (logs go to $OUT)
set -uo pipefail
OUT=${OUT:-/tmp/phantora-real}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
STEPS=${STEPS:-12}
{
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'nccl', torch.cuda.nccl.version()); [print(i, torch.cuda.get_device_properties(i)) for i in range(torch.cuda.device_count())]"
  nvidia-smi topo -m || true
} 2>&1 | tee "$OUT/env.txt"
run() {  # name nproc script args...
  local name=$1 n=$2; shift 2
  echo "=== $name (nproc=$n): $*" | tee -a "$OUT/real_runs.txt"
  timeout 120 torchrun --standalone --nproc-per-node "$n" "$@" --steps "$STEPS" 2>&1 | tee "$OUT/$name.log" \
    | grep -E "mean ms/iter|max_memory|world size|Error|error" | tee -a "$OUT/real_runs.txt"
}
run ddp_1gpu 1 examples/ddp/train.py
run ddp_2gpu 2 examples/ddp/train.py
run fsdp2_1gpu 1 examples/fsdp2/train.py
run fsdp2_2gpu 2 examples/fsdp2/train.py
run tp2d_2gpu 2 examples/tp2d/train.py --tp 2
