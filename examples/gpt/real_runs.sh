#!/usr/bin/env bash
# Run examples/gpt/train.py for real on a GPU machine, in the configurations that
# docs/validation.md compares against `phantora run --scenario scenarios/h100x1.yaml`.
# Usage: examples/gpt/real_runs.sh [OUT_DIR]   (logs go to OUT_DIR, default ./real_runs)
set -o pipefail
out="${1:-${OUT:-real_runs}}"
mkdir -p "$out"
here="$(cd "$(dirname "$0")" && pwd)"
export PYTHONUNBUFFERED=1
{
  nvidia-smi || true
  python3 -c "import torch; p = torch.cuda.get_device_properties(0); print('torch', torch.__version__, 'cuda', torch.version.cuda); print(p); print('name', p.name, 'total_memory', p.total_memory, 'L2', getattr(p, 'L2_cache_size', None), 'sms', p.multi_processor_count)"
} 2>&1 | tee "$out/device.txt"

run() {  # name, args...
  local name="$1"; shift
  echo "=== $name: $*" | tee "$out/$name.log"
  python3 "$here/train.py" "$@" 2>&1 | tee -a "$out/$name.log"
}
run bf16_b8 --steps 10
run fp32_b8 --steps 10 --dtype fp32
run bf16_b4 --steps 10 --batch-size 4
run bf16_b16 --steps 10 --batch-size 16
