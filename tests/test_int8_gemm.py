"""Int8 implicit-GEMM convolutions and linear layers (aunets.engines.int8_gemm): the arithmetic, on the CPU."""

from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")

from aunets.core.au import BP4D_AUS  # noqa: E402
from aunets.engines.int8_gemm import Int8Conv2d, Int8Linear, quantize_module, quantize_rows  # noqa: E402
from aunets.engines.registry import create_model  # noqa: E402


def test_int8_conv_is_the_convolution_of_the_quantised_operands() -> None:
    """Int8Conv2d equals float conv2d of its dequantised weights and per-patch dequantised activations, exactly
    up to float rounding: the im2col layout, the integer GEMM and the scales are right."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(5, 7, 3, stride=2, padding=1)
    x = torch.randn(2, 5, 9, 11)
    q = Int8Conv2d(conv)
    got = q(x)
    cols = torch.nn.functional.unfold(x, 3, padding=1, stride=2).transpose(1, 2).reshape(-1, 45)
    xq, xs = quantize_rows(cols)
    w = q.wq.float() * q.w_scale.view(-1, 1)
    ref = (xq.float() * xs) @ w.t() + conv.bias.detach()
    ho, wo = got.shape[2:]
    assert got.shape == (2, 7, 5, 6)
    torch.testing.assert_close(got, ref.view(2, ho * wo, 7).transpose(1, 2).reshape(2, 7, ho, wo), atol=1e-4, rtol=1e-5)
    rel = float((got - conv(x)).norm() / conv(x).norm())
    assert 0 < rel < 2e-2  # int8 is not float32, but close


def test_quantised_vgg16_ensemble_stays_close_to_float32() -> None:
    torch.manual_seed(0)
    model = create_model("aunet_vgg16_horizontal", len(BP4D_AUS), tiny=True, independent=True).eval()
    q, counts = quantize_module(copy.deepcopy(model))
    assert counts["conv"] == 13 * 12 and counts["linear"] > 0 and counts["kept"] == 0
    assert not any(isinstance(m, torch.nn.Conv2d | torch.nn.Linear) for m in q.modules())
    x = torch.randn(3, 3, 32, 64)
    with torch.inference_mode():
        ref, got = model(x), q(x)
    assert float((got - ref).norm() / ref.norm()) < 1e-2
    assert not torch.equal(got, ref)


def test_int8_linear_keeps_leading_dims_and_refuses_grouped_convs() -> None:
    lin = torch.nn.Linear(6, 4)
    x = torch.randn(2, 3, 6)
    assert Int8Linear(lin)(x).shape == (2, 3, 4)
    with pytest.raises(ValueError, match="groups=1"):
        Int8Conv2d(torch.nn.Conv2d(4, 4, 3, groups=2))
