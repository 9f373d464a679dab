#!/usr/bin/env bash
# One device-tool call (one H200): each framework launcher's single-GPU config (frameworks_configs.tsv)
# host<->device copy times (h2d_bandwidth.py); a kernel profile + op trace of each (`phantora profile
# --trace`) for the simulated side and `phantora conformance`; each config for real, twice (run-to-run
# spread), through benchmarks/real/frameworks_timing.py; then one torch-profiler and one cProfile run of
# each (hostprof/), to attribute the gaps.
# The frameworks travel as wheels in .whl/frameworks (carried; installed with --no-index --no-deps).
#   bash benchmarks/real/frameworks_device.sh h200 330
# Writes $OUT/real.jsonl, $OUT/log.txt and $OUT/fw.tar.gz (profiles/, traces/, logs/, real.jsonl, pip.txt).
# Env: SKIP="name ..." leaves configs out; H2D=0 skips the copy sweep; COMPILE=1 byte-compiles the wheels
# (cProfile then shows the frameworks' own time, not their imports); CONFIGS=FILE another config list;
# PROFILES=0 skips the kernel profiles; REPS="1 2" the plain runs; KINDS="kineto cprofile" the
# attribution runs. cProfile sees the main thread only: on a GPU, backward (and the hooks it runs) is
# on autograd's device thread, so the kineto summary is where backward's host time shows.
set -uo pipefail
export PYTHONUNBUFFERED=1 DS_BUILD_OPS=0
G=$1; BUDGET=${2:-330}; T0=$(date +%s)
W=/tmp/fw; rm -rf $W; mkdir -p $W/profiles $W/traces $W/logs
. "$(dirname "$0")/budget.sh"
pack() { cp -f $OUT/real.jsonl $W/ 2>/dev/null; tar -C $W -czf $OUT/fw.tar.gz . ; }
python3 -m pip list 2>/dev/null > $W/pip.txt
grep -i -E "^(deepspeed|megatron|torchtitan|lightning|pytorch-lightning|pydantic|hjson|tyro|datasets|torch) " $W/pip.txt
NOCOMPILE=--no-compile; [ "${COMPILE:-0}" = 1 ] && NOCOMPILE=
python3 -m pip install -q --no-index --no-deps $NOCOMPILE --no-cache-dir --target /tmp/site .whl/frameworks/*.whl \
  > $W/logs/pip_install.log 2>&1 || { echo "pip install failed"; tail -5 $W/logs/pip_install.log; }
export PYTHONPATH=/tmp/site:$PWD
echo "hostbench_us $(python3 -c 'from profiles.hostbench import host_bench_us; print(round(host_bench_us(), 1))')"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 - <<'PY'
import importlib
for m in ("torch", "deepspeed", "megatron.core", "torchtitan", "lightning", "pytorch_lightning", "datasets"):
    try:
        mod = importlib.import_module(m)
        print(m, getattr(mod, "__version__", "?"))
    except Exception as e:  # keep going: log which framework cannot import
        print(m, "IMPORT FAILED", type(e).__name__, str(e)[:200])
PY
python3 benchmarks/real/frameworks_assets.py . || echo "torchtitan assets failed"
H=benchmarks/real/frameworks_timing.py
grep -v '^#' ${CONFIGS:-benchmarks/real/frameworks_configs.tsv} | grep . > $W/configs.tsv
plain() {  # name launcher args... : one real run, its JSON line into real.jsonl
  local name=$1 how=$2 rep=$3; shift 3
  if [ "$how" = torchrun ]; then set -- torchrun --standalone --nproc-per-node 1 $H --name $name "$@"
  else set -- python3 $H --name $name "$@"; fi
  timeout -k 5 $(lim 50 15) env CUDA_VISIBLE_DEVICES=0 "$@" > $W/logs/$name.$rep.out 2> $W/logs/$name.$rep.err < /dev/null
  local rc=$?
  if grep -q '^{"harness' $W/logs/$name.$rep.out; then
    grep '^{"harness' $W/logs/$name.$rep.out | tail -1 | sed "s/^{/{\"rep\": $rep, /" >> $OUT/real.jsonl
    echo "[$name #$rep] $(tail -1 $OUT/real.jsonl | grep -o '"mean_ms": [0-9.]*, "max_memory_allocated": [0-9]*')"
  else
    echo "[$name #$rep] exit $rc"; grep -v Warning $W/logs/$name.$rep.err | tail -3
  fi
}
SKIP=${SKIP:-}   # config names to leave out (e.g. SKIP="torchtitan")
SKIP_RE=$(echo "${SKIP:-@none@}" | tr ' ' '|')
grep -v -w -E "^(${SKIP_RE})" $W/configs.tsv > $W/c.tsv && mv $W/c.tsv $W/configs.tsv
mkdir -p $W/hostprof
if [ "${H2D:-1}" = 1 ]; then
  echo "== host<->device copies ($(left) s left)"
  timeout -k 5 $(lim 40 300) python3 benchmarks/real/h2d_bandwidth.py > $W/h2d.jsonl 2> $W/logs/h2d.err; echo "h2d exit $? ($(grep -c . $W/h2d.jsonl) points)"
fi
pack
# profiles first: the simulated side then replays these configs' own kernels (issue 20's "covered")
echo "== profiles ($(left) s left)"
[ "${PROFILES:-1}" = 1 ] && while IFS=$'\t' read -r name how cmd; do
  (( $(left) < 200 )) && { echo "[$name] profile skipped: budget"; continue; }
  timeout -k 5 $(lim 50 200) env CUDA_VISIBLE_DEVICES=0 python3 -m phantora profile --gpu-name $G \
    --out $W/profiles/$name.jsonl --trace $W/traces/$name.gz $H --name $name $cmd > $W/logs/$name.profile.log 2>&1 < /dev/null
  echo "[$name] profile exit $? ($(grep -c . $W/profiles/$name.jsonl 2>/dev/null) lines)"
  pack
done < $W/configs.tsv
for rep in ${REPS:-1 2}; do
  while IFS=$'\t' read -r name how cmd; do plain $name $how $rep $cmd; done < $W/configs.tsv
  pack
done
# one more run of each with the torch profiler (GPU busy, copies, blocking calls per step), then
# cProfile (the host's Python): perturbed runs, for attributing the gaps only, not for ms/iter
for kind in ${KINDS:-kineto cprofile}; do
  while IFS=$'\t' read -r name how cmd; do
    (( $(left) < 30 )) && { echo "[$name] $kind skipped: budget"; continue; }
    if [ "$how" = torchrun ]; then set -- torchrun --standalone --nproc-per-node 1 $H; else set -- python3 $H; fi
    ext=json; [ $kind = cprofile ] && ext=txt
    timeout -k 5 $(lim 60 15) env CUDA_VISIBLE_DEVICES=0 "$@" --name $name --$kind $W/hostprof/$name.$kind.$ext $cmd \
      > $W/logs/$name.$kind.out 2> $W/logs/$name.$kind.err < /dev/null
    echo "[$name] $kind exit $? $(grep -o '"median": {[^}]*}' $W/hostprof/$name.kineto.json 2>/dev/null)"
    pack
  done < $W/configs.tsv
done
pack; echo "done in $(( $(date +%s) - T0 )) s"
