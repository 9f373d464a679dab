"""The package READMEs' "add a variant" examples run as written: each is one registration plus the
scenario lines that pick it (issue 16's acceptance). Each README runs in a fresh interpreter, so its
registrations never reach this process's registries."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap

from netsim.config import NetworkConfig

_NETSIM = r'''
import json, re, sys, yaml
from netsim.backend import build_network
from netsim.config import cluster_from_dict

text = open("netsim/README.md").read()
section = text.split("## Adding a variant")[1]
code = re.findall(r"```python\n(.*?)```", section, re.S)
configs = re.findall(r"```yaml\n(.*?)```", section, re.S)
out = {}
for py, y in zip(code, configs, strict=True):
    exec(compile(py, "netsim/README.md", "exec"), {})
    cluster = cluster_from_dict({"hosts": 2, "gpus_per_host": 2, **yaml.safe_load(y)})
    net = build_network(cluster)
    h = net.submit_collective("all_reduce", [0, 1, 2, 3], 1 << 20, 0)
    net.run()
    out[re.search(r'register\("(\w+)"\)', py).group(1)] = max(net.result(h).values())
json.dump(out, sys.stdout)
'''

_PROFILES = r'''
import json, re, sys
from dataclasses import replace
import torch
from profiles import COMPUTE_MODELS, ComputeModel, OpSignature, OpTiming, build_compute_model, get_gpu
from profiles.gpus import GpuSpec, H100, _add
from profiles.roofline import is_kernel_free

section = open("profiles/README.md").read().split("## Adding a compute-time model or a GPU")[1]
for py in re.findall(r"```python\n(.*?)```", section, re.S):
    exec(compile(py, "profiles/README.md", "exec"), globals())
gpu = get_gpu("h100-fastmem")
model = build_compute_model("constant", gpu, kernel_us=7.0)
a = torch.ones(4, 4)
t = model.time_op(torch.ops.aten.mm.default, (a, a), {}, a @ a)
json.dump({"gpu": gpu.memory_bandwidth_gbps, "us": t.dur_us, "source": t.source}, sys.stdout)
'''


def _run(repo_root, script: str) -> dict:
    p = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], cwd=repo_root, capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_netsim_readme_adds_each_variant_by_one_registration(repo_root):
    ends = _run(repo_root, _NETSIM)
    assert set(ends) == {"two_paths", "one_ring", "one_switch", "fixed_latency"}
    assert all(t > 0 for t in ends.values())
    launch_ns = round(NetworkConfig().collectives.launch_latency_us * 1e3)
    assert ends["fixed_latency"] == launch_ns, "the scenario's launch latency, whatever the size"


def test_profiles_readme_adds_a_compute_model_and_a_gpu(repo_root):
    got = _run(repo_root, _PROFILES)
    assert got == {"gpu": 6700.0, "us": 7.0, "source": "constant"}


def test_readmes_point_to_where_variants_go(repo_root):
    """The top-level README names the sections a newcomer reads to add each kind of variant."""
    top = (repo_root / "README.md").read_text()
    for where in ("netsim/README.md", "profiles/README.md"):
        assert where in top
    assert re.search(r"transport.*collective algorithm.*topology.*network backend", top, re.S)
