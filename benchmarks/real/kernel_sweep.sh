#!/usr/bin/env bash
# One device call: record the kernel sweep specs (benchmarks/real/kernel_sweep_specs.py, made on the CPU
# beforehand into SPEC_DIR) within BUDGET_S seconds, and tar the profiles into $OUT (issue 17).
#   bash benchmarks/real/kernel_sweep.sh build/kernel_sweep 400
#   ORDER="heldout_grouped grid_grouped" bash benchmarks/real/kernel_sweep.sh build/kernel_sweep 150   (spec files to record)
# A run the GPU kills is restarted (the recorder skips what it has and fails the key in flight).
set -u
SPEC_DIR=${1:-build/kernel_sweep}
BUDGET_S=${2:-400}
OUT=${OUT:-/tmp/kernel_sweep_out}
REC=$OUT/rec
mkdir -p "$REC"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv > "$OUT/gpu.txt" 2>&1
python3 -c "import torch; print(torch.__version__, torch.version.cuda, torch.backends.cudnn.version())" >> "$OUT/gpu.txt" 2>&1
ORDER=${ORDER:-"grid_bytes heldout_bytes grid_attention heldout_attention heldout_gemm grid_gemm heldout_conv grid_conv"}
FILES=""
for f in $ORDER; do FILES="$FILES $SPEC_DIR/$f.jsonl"; done
for attempt in 1 2 3 4; do
  left=$((BUDGET_S - SECONDS))
  [ "$left" -gt 15 ] || break
  PYTHONPATH=. timeout $((left + 10)) python3 benchmarks/real/kernel_sweep_record.py --out "$REC" --deadline-s "$((left - 5))" --flush-every 1000 $FILES \
    >> "$OUT/record.log" 2>&1 && break
  echo "attempt $attempt exited $?" >> "$OUT/record.log"
done
tar -C "$REC" -czf "$OUT/sweep_profiles.tar.gz" .
tail -20 "$OUT/record.log"
