"""Int8 matrix multiplies for the faithful AUNets ensemble: convolutions as implicit GEMMs on ``torch._int_mm``.

The 12 x VGG16 engine is bound by its convolutions and fc6 (see ``docs/gpu.md``); int8 tensor cores do twice the
fp16 rate on Hopper. :func:`quantize_module` swaps every ``nn.Linear`` and every plain ``nn.Conv2d`` (groups 1,
dilation 1) of a float module for :class:`Int8Linear` / :class:`Int8Conv2d`:

* weights: symmetric int8 with one scale per output channel (``max |w| / 127``);
* activations: symmetric int8 with one scale per GEMM row (per pixel's receptive patch for a convolution,
  per sample for a linear layer), computed on the fly (``max |x| / 127``);
* ``int8 x int8 -> int32`` with ``torch._int_mm``, then ``* (row scale x channel scale) + bias`` in float32.

A convolution becomes ``unfold`` (im2col) -> one GEMM -> fold back to (N, C_out, H', W'). This module checks the
arithmetic (on the CPU, ``torch._int_mm`` runs too) and measures the accuracy cost against float32
(``benchmarks/int8_gemm.py``); whether it is faster on a GPU is **unmeasured** (no GPU lent to issue 26), and
on a GPU ``torch._int_mm`` needs more than 16 rows and K, N multiples of 8 (rows are padded here).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

QMAX = 127.0


def quantize_rows(x: Tensor) -> tuple[Tensor, Tensor]:
    """``float`` (M, K) -> (``int8`` (M, K), ``float32`` (M, 1) scales): symmetric, one scale per row."""
    scale = x.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / QMAX
    return torch.clamp(torch.round(x / scale), -QMAX, QMAX).to(torch.int8), scale.float()


def int8_matmul(x: Tensor, wq: Tensor, w_scale: Tensor) -> Tensor:
    """``float`` (M, K) activations x int8 weights (N, K) with scales (N,) -> ``float32`` (M, N)."""
    xq, x_scale = quantize_rows(x)
    m = xq.shape[0]
    if xq.is_cuda and m <= 16:  # cuBLASLt's int8 GEMM wants more than 16 rows
        xq = torch.cat([xq, xq.new_zeros((17 - m, xq.shape[1]))])
    acc = torch._int_mm(xq, wq.t())[:m]
    return acc.float() * x_scale * w_scale.view(1, -1)


class Int8Linear(nn.Module):
    """``nn.Linear`` with int8 weights and activations (see the module docstring). Input (..., in) float."""

    wq: Tensor
    w_scale: Tensor
    bias: Tensor | None

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        wq, scale = quantize_rows(linear.weight.detach())
        self.register_buffer("wq", wq)
        self.register_buffer("w_scale", scale.view(-1))
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().float().clone())

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        out = int8_matmul(x.reshape(-1, shape[-1]).float(), self.wq, self.w_scale)
        if self.bias is not None:
            out = out + self.bias
        return out.reshape(*shape[:-1], -1)


class Int8Conv2d(nn.Module):
    """``nn.Conv2d`` (groups 1, dilation 1) as an implicit int8 GEMM: (N, C, H, W) -> (N, O, H', W') float32."""

    wq: Tensor
    w_scale: Tensor
    bias: Tensor | None

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        if conv.groups != 1 or conv.dilation != (1, 1) or not isinstance(conv.padding, tuple):
            raise ValueError(f"Int8Conv2d needs groups=1, dilation=1 and numeric padding, got {conv}")
        if conv.padding_mode != "zeros":
            raise ValueError(f"Int8Conv2d pads with zeros, {conv} pads with {conv.padding_mode}")
        w = conv.weight.detach()
        wq, scale = quantize_rows(w.reshape(w.shape[0], -1))
        self.register_buffer("wq", wq)
        self.register_buffer("w_scale", scale.view(-1))
        self.register_buffer("bias", None if conv.bias is None else conv.bias.detach().float().clone())
        self.kernel_size = conv.kernel_size
        self.stride = conv.stride
        self.padding = conv.padding
        self.out_channels = conv.out_channels

    def forward(self, x: Tensor) -> Tensor:
        n, _, h, w = x.shape
        kh, kw = self.kernel_size
        (sh, sw), (ph, pw) = self.stride, self.padding
        ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
        cols = F.unfold(x.float(), self.kernel_size, padding=self.padding, stride=self.stride)  # (N, C*k*k, L)
        out = int8_matmul(cols.transpose(1, 2).reshape(n * ho * wo, -1), self.wq, self.w_scale)
        if self.bias is not None:
            out = out + self.bias
        return out.view(n, ho * wo, self.out_channels).transpose(1, 2).reshape(n, self.out_channels, ho, wo)


def quantize_module(module: nn.Module) -> tuple[nn.Module, dict[str, int]]:
    """Swap, in place, every ``nn.Linear`` and every plain ``nn.Conv2d`` for its int8 twin; returns the module
    and how many of each were swapped (``{"linear": n, "conv": m, "kept": k}``; kept: convolutions left float)."""
    counts = {"linear": 0, "conv": 0, "kept": 0}

    def swap(parent: nn.Module) -> None:
        for name, child in parent.named_children():
            new: Any = None
            if isinstance(child, nn.Linear):
                new, counts["linear"] = Int8Linear(child), counts["linear"] + 1
            elif isinstance(child, nn.Conv2d):
                try:
                    new, counts["conv"] = Int8Conv2d(child), counts["conv"] + 1
                except ValueError:
                    counts["kept"] += 1
            if new is not None:
                setattr(parent, name, new)
            else:
                swap(child)

    swap(module)
    return module, counts
