#!/usr/bin/env bash
# One device-tool call for the host-time model (issue 19): the GPU host's CPU speed
# (profiles/hostbench.py), real runs of host-bound and GPU-bound programs with run-to-run spread,
# the eager per-op host cost seen from Python, and profiles of the fit configs (kernel times, steady
# launch costs, first-call costs, the recorder's launch offset and the host bench in the header).
#   bash benchmarks/real/host_time_real.sh h200 540
# Writes $OUT/real.jsonl (one JSON line per real run), $OUT/log.txt and $OUT/prof.tar.gz.
set -uo pipefail
export PYTHONUNBUFFERED=1 PYTHONPATH=.
G=$1; BUDGET=${2:-540}; T0=$(date +%s)
W=/tmp/hosttime; rm -rf $W; mkdir -p $W/ship
. "$(dirname "$0")/budget.sh"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
lscpu | grep -E "Model name|^CPU\(s\)|MHz" | head -4
python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)'
echo "== host bench"
for i in 1 2 3; do python3 -m profiles.hostbench | tee -a $OUT/real.jsonl; done
echo "== eager per-op host cost (us per call from Python, tiny cuda tensors)"
python3 - <<'EOF' | tee -a $OUT/real.jsonl
import json, time, torch
a = torch.randn(64, device="cuda"); b = torch.randn(64, device="cuda"); w = torch.randn(64, 64, device="cuda")
ps = [torch.randn(64, device="cuda") for _ in range(100)]
cases = {"add": lambda: torch.add(a, b), "mul_": lambda: a.mul_(1.0), "view": lambda: a.view(8, 8),
         "mm": lambda: torch.mm(w, w), "cat": lambda: torch.cat([a, b]),
         "foreach_add_100": lambda: torch._foreach_add_(ps, 1.0)}
out = {}
for name, f in cases.items():
    for _ in range(200): f()
    torch.cuda.synchronize()
    best = 1e9
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(500): f()
        best = min(best, (time.perf_counter() - t0) * 1e6 / 500)
        torch.cuda.synchronize()
    out[name] = round(best, 2)
print(json.dumps({"program": "eager_op_cost", "us_per_call": out}))
EOF
GEN=examples/generate/generate.py; MOE=examples/moe/train.py; GPT=examples/gpt/train.py; FP16=examples/zoo/gpt_fp16.py
A="--hidden 512 --layers 4 --experts 8 --top-k 2 --batch-size 8 --seq-len 512"
T1="--n-layer 4 --n-head 4 --n-embd 256 --seq-len 256 --batch-size 1"
T2="--n-layer 8 --n-head 8 --n-embd 512 --seq-len 128 --batch-size 2"
T3="--n-layer 6 --n-head 6 --n-embd 384 --seq-len 512 --batch-size 4"
F1="--n-layer 4 --n-embd 256 --batch-size 2 --seq-len 256"
F2="--n-layer 12 --n-embd 768 --batch-size 8 --seq-len 1024"
real() {  # real RUN_LABEL SCRIPT ARGS...: JSON lines go to real.jsonl, GPT step lines are wrapped into one
  local label=$1; shift
  timeout $(lim 90 150) python3 "$@" >$W/o.txt 2>$W/err.txt || tail -3 $W/err.txt
  python3 - "$label" "$*" <<'EOF' | tee -a $OUT/real.jsonl
import json, re, sys
label, args = sys.argv[1], sys.argv[2]
text = open("/tmp/hosttime/o.txt").read()
js = [json.loads(l) for l in text.splitlines() if l.startswith("{")]
steps = [float(m) for m in re.findall(r"^step \d+ .*\| ([\d.]+) ms", text, re.M)]
mem = re.search(r"max_memory_allocated: ([\d.]+) MiB", text)
row = js[-1] if js else {}
row.update({"label": label, "cmd": args})
if steps:
    row["step_ms"] = steps
if mem:
    row["max_memory_allocated_mib"] = float(mem.group(1))
print(json.dumps(row))
EOF
}
echo "== real runs"
real gen_b1 $GEN --batch-size 1
real gen_b8 $GEN --batch-size 8
real gen_b1_2nd $GEN --batch-size 1
real moe_gmm_A $MOE --experts-impl grouped_mm $A --steps 12
real moe_eager_A $MOE --experts-impl eager $A --steps 12
real gpt_T1 $GPT $T1 --steps 20
real gpt_T2 $GPT $T2 --steps 20
real gpt_T3 $GPT $T3 --steps 20
real gpt_T1_2nd $GPT $T1 --steps 20
real gpt_default $GPT --steps 12
real fp16_F1 $FP16 $F1 --steps 20
real fp16_F2 $FP16 $F2 --steps 10
real fp16_F1_2nd $FP16 $F1 --steps 20
real gpt_default_2nd $GPT --steps 12
echo "== record the fit configs (gen b8, gpt T3, fp16 F2, MoE eager stay held out)"
R=$W/runs.txt
{ echo "1 $GEN --batch-size 1 --new-tokens 16"; echo "1 $MOE --experts-impl grouped_mm $A --steps 3";
  echo "1 $GPT $T1 --steps 3"; echo "1 $GPT $T2 --steps 3"; echo "1 $FP16 $F1 --steps 3"; echo "1 $GPT --steps 3"; } > $R
timeout $(lim 260 25) python3 -m phantora profile --gpu-name $G --out $W/ship/host_time.jsonl --runs $R 2>&1 | grep -v "^{" | tail -8
echo "== host bench again"
for i in 1 2 3; do python3 -m profiles.hostbench | tee -a $OUT/real.jsonl; done
pack
echo "done in $(( $(date +%s) - T0 )) s"
