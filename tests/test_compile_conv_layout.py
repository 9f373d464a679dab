"""Conv output layouts under the shim are cuDNN's (interpose/conv_layout.py): eager and compiled."""

from __future__ import annotations

import torch

from interpose import interposed

CL = torch.channels_last


def test_eager_conv_of_channels_last_input_is_channels_last_forward_and_backward(cfg):
    with interposed(cfg):
        x = torch.randn(4, 3, 16, 16, device="cuda").to(memory_format=CL).requires_grad_()
        w = torch.randn(8, 3, 3, 3, device="cuda", requires_grad=True)
        y = torch.nn.functional.conv2d(x, w)
        y.sum().backward()
        plain = torch.nn.functional.conv2d(torch.randn(4, 3, 16, 16, device="cuda"), w)
        f64 = torch.nn.functional.conv2d(x.detach().double(), w.detach().double())
    assert y.is_contiguous(memory_format=CL) and not y.is_contiguous()
    assert x.grad.is_contiguous(memory_format=CL)  # cuDNN grad_input follows the input
    assert plain.is_contiguous()  # neither input nor weight channels_last: cuDNN keeps NCHW
    assert f64.is_contiguous()  # cuDNN's rule excludes float64


def test_compiled_conv_has_no_layout_copy_after_the_extern_conv(cfg):
    """A contiguous fake conv output makes Inductor copy it into the channels_last layout its graph
    expects (a ``triton_poi_fused_convolution`` kernel and one more buffer); cuDNN's layout needs none."""

    def f(x, w):
        return torch.nn.functional.conv2d(x, w).relu()

    with interposed(cfg) as rt:
        x = torch.randn(8, 16, 32, 32, device="cuda").to(memory_format=CL)
        w = torch.randn(16, 16, 3, 3, device="cuda").to(memory_format=CL)
        cf = torch.compile(f)
        cf(x, w)
        n0 = len(rt._op_rows)
        out = cf(x, w)
        names = [r[1] for r in rt._op_rows[n0:]]
    triton = [n for n in names if n.startswith("triton_")]
    assert triton == ["triton_poi_fused_convolution_relu"] or (len(triton) == 1 and "relu" in triton[0]), names
    assert out.is_contiguous(memory_format=CL)
