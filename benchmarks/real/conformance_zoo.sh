#!/usr/bin/env bash
# One device-tool call: the real side of `phantora conformance` for every zoo program
# (examples/zoo/programs.tsv). For each program, on the GPU:
#   1. `phantora profile --trace` (its own process): the op signature key of every kernel-launching op
#      in call order (traces/NAME.gz) and each key's median GPU time (profiles/NAME.jsonl);
#   2. a plain run (`python3 SCRIPT ARGS`, its own process): per-step ms and max_memory_allocated,
#      one JSON line each in $OUT/real.jsonl.
#   bash benchmarks/real/conformance_zoo.sh h200 560 [NAME ...] 2>&1 | tee $OUT/log.txt
#   (GPU key, wall budget s, optionally only these programs, in this order)
# Writes $OUT/real.jsonl and $OUT/zoo.tar.gz (programs.tsv, profiles/, traces/, real.jsonl, logs/);
# locally: tar -xzf zoo.tar.gz -C DIR && python benchmarks/real/conformance_zoo_report.py DIR
# PROGRAMS=examples/zoo/heldout.tsv PROFILE=0 REPS="1 2": other programs, no recording (held-out configs,
# issue 17: never profiled), each plain run REPS times in its own process (the real run-to-run spread)
set -uo pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH}
G=$1; BUDGET=${2:-560}; T0=$(date +%s); shift $(( $# < 2 ? $# : 2 )); ONLY=("$@")
W=/tmp/zoo; rm -rf $W; mkdir -p $W/traces $W/profiles $W/logs
. "$(dirname "$0")/budget.sh"
pack() { cp -f $OUT/real.jsonl $W/ 2>/dev/null; tar -C $W -czf $OUT/zoo.tar.gz . ; }
grep -v '^#' ${PROGRAMS:-examples/zoo/programs.tsv} | grep . > $W/all.tsv
if (( ${#ONLY[@]} )); then
  for n in "${ONLY[@]}"; do grep -P "^$n\t" $W/all.tsv; done > $W/programs.tsv
  rm -f $W/all.tsv
else
  mv $W/all.tsv $W/programs.tsv
fi
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
python3 - <<'EOF'
import importlib, torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(), torch.cuda.get_device_name())
for m in ("transformers", "accelerate", "torchvision", "timm", "diffusers"):
    try:
        print(m, importlib.import_module(m).__version__)
    except Exception as e:
        print(m, "MISSING", type(e).__name__, e)
EOF
echo "== per program: record (phantora profile --trace), then a plain run (python3), each its own process"
while IFS=$'\t' read -r name cmd; do
  if [ "${PROFILE:-1}" != 0 ]; then
    timeout -k 10 $(lim 60 20) python3 -m phantora profile --gpu-name $G --out $W/profiles/$name.jsonl \
      --trace $W/traces/$name.gz $cmd > $W/logs/$name.profile.log 2>&1 < /dev/null
    prc=$?
    echo "[$name] profile exit $prc ($(grep -c . $W/profiles/$name.jsonl 2>/dev/null) lines), $(zcat $W/traces/$name.gz 2>/dev/null | wc -l) ops traced"
    grep -E 'not profiled|Error|error' $W/logs/$name.profile.log | head -3
  fi
  for rep in ${REPS:-1}; do
    (( $(left) < 25 )) && { echo "[$name] run $rep skipped: budget"; continue; }
    timeout -k 10 $(lim 60 20) python3 $cmd > $W/logs/$name.$rep.out 2> $W/logs/$name.$rep.err < /dev/null
    rc=$?
    if grep -q '^{"program' $W/logs/$name.$rep.out; then
      grep '^{"program' $W/logs/$name.$rep.out | tail -1 | sed "s/^{/{\"name\": \"$name\", \"rep\": $rep, /" >> $OUT/real.jsonl
      echo "[$name] real $rep: $(tail -1 $OUT/real.jsonl | grep -o '"step_ms": \[[^]]*\], "max_memory_allocated": [0-9]*')"
    else
      echo "[$name] real $rep exit $rc"; tail -4 $W/logs/$name.$rep.err
    fi
  done
  pack
done < $W/programs.tsv
pack
ls -la $W $OUT
echo "done in $(( $(date +%s) - T0 )) s"
