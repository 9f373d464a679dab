"""torch.save / torch.load under the shim: a simulation's own checkpoint loads back as fake GPU tensors
(it used to come back as meta tensors), and a checkpoint written on a GPU (storages tagged cuda:0) loads
(the CPU build raised "Storage device not recognized: cuda")."""

from __future__ import annotations

import pytest
import torch
from torch._subclasses.fake_tensor import FakeTensor

from interpose import interposed
from profiles.host_link import ASSUMED_GBPS as HOST_LINK_GBPS


@pytest.fixture
def gpu_saved(tmp_path):
    """A file as a GPU host writes it: every storage tagged ``cuda:0`` (a tagger ahead of torch's own)."""
    reg = torch.serialization._package_registry
    entry = (-1, lambda storage: "cuda:0", lambda storage, location: None)
    reg.insert(0, entry)
    path = tmp_path / "gpu.pt"
    try:
        torch.save({"w": torch.arange(12, dtype=torch.float32).reshape(3, 4), "step": torch.tensor(7)}, path)
    finally:
        reg.remove(entry)
    return path


def test_own_checkpoint_round_trip_is_fake_and_costs_the_copies(cfg, tmp_path):
    path = tmp_path / "ckpt.pt"
    with interposed(cfg) as rt:
        m = torch.nn.Linear(256, 512).cuda()
        opt = torch.optim.AdamW(m.parameters())
        m(torch.randn(4, 256, device="cuda")).sum().backward()
        opt.step()
        nbytes = 3 * (256 * 512 + 512) * 4  # weights + two Adam states
        t0 = rt.clock.host_us
        torch.save({"model": m.state_dict(), "opt": opt.state_dict(), "it": 3}, path)
        assert rt.clock.host_us - t0 >= nbytes / (HOST_LINK_GBPS * 1e3)  # blocking device-to-host copies
        before = torch.cuda.memory_allocated()
        sd = torch.load(path, map_location="cuda")
        w = sd["model"]["weight"]
        assert isinstance(w, FakeTensor) and w.device.type == "cuda" and w.shape == (512, 256)
        assert sd["it"] == 3 and sd["opt"]["state"][0]["exp_avg"].shape == (512, 256)
        assert torch.cuda.memory_allocated() - before >= 2 * 256 * 512 * 4
        m.load_state_dict(sd["model"])
        opt.load_state_dict(sd["opt"])
        whole = tmp_path / "model.pt"
        torch.save(m, whole)
        m2 = torch.load(whole, weights_only=False)
        assert m2.weight.requires_grad and isinstance(m2.weight.data, FakeTensor)
        cpu = torch.load(path, map_location="cpu")
        assert cpu["model"]["weight"].device.type == "cpu" and not isinstance(cpu["model"]["weight"], FakeTensor)


def test_checkpoint_written_on_a_gpu_loads_onto_the_simulated_gpu(cfg, gpu_saved):
    with interposed(cfg):
        sd = torch.load(gpu_saved)  # restored to its saved location, cuda:0
        assert isinstance(sd["w"], FakeTensor) and sd["w"].device.type == "cuda"
        assert sd["step"].item() == 7  # a small integer tensor keeps its value (known values)
        on_cpu = torch.load(gpu_saved, map_location="cpu")
        assert on_cpu["w"][2, 3].item() == 11.0


def test_a_simulations_checkpoint_refuses_to_load_outside_phantora(cfg, tmp_path):
    path = tmp_path / "ckpt.pt"
    with interposed(cfg):
        torch.save({"w": torch.zeros(8, device="cuda")}, path)
    with pytest.raises(RuntimeError, match="written by a phantora simulation"):
        torch.load(path, weights_only=False)
    with pytest.raises(Exception, match="rebuild_fake"):  # the weights-only unpickler names the global
        torch.load(path)
