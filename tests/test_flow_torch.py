"""The torch TV-L1 flow (aunets.core.flow_torch) on the CPU: accuracy on synthetic motion, batching, operators."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from aunets.core.errors import ConfigError  # noqa: E402
from aunets.core.flow import DISFlow  # noqa: E402
from aunets.core.flow_registry import create_flow_backend  # noqa: E402
from aunets.core.flow_torch import TorchTVL1, TorchTVL1Flow, TVL1Config, _divergence, _forward_grad  # noqa: E402

SIZE = 96


def _texture(rng: np.random.Generator, size: int) -> np.ndarray:
    img = np.zeros((size, size), np.float32)
    for s in (2, 4, 8):
        n = rng.standard_normal((size // s + 2, size // s + 2)).astype(np.float32)
        img += cv2.resize(n, (size, size), interpolation=cv2.INTER_CUBIC)[:size, :size] * s**0.5
    return np.clip(128 + 40 * (img - img.mean()) / img.std(), 0, 255)


def _pair(seed: int, shift: tuple[float, float], angle: float = 0.02) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """prev(x) = cur(x + flow(x)) for a rotation plus translation (px)."""
    rng = np.random.default_rng(seed)
    cur = _texture(rng, SIZE)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    c = SIZE / 2
    u = shift[0] + (np.cos(angle) - 1) * (xx - c) - np.sin(angle) * (yy - c)
    v = shift[1] + np.sin(angle) * (xx - c) + (np.cos(angle) - 1) * (yy - c)
    prev = cv2.remap(cur, (xx + u).astype(np.float32), (yy + v).astype(np.float32), cv2.INTER_CUBIC,
                     borderMode=cv2.BORDER_REFLECT)
    return prev.round().astype(np.uint8), cur.round().astype(np.uint8), np.stack([u, v], -1).astype(np.float32)


def _epe(est: np.ndarray, truth: np.ndarray) -> float:
    return float(np.linalg.norm(est - truth, axis=-1)[8:-8, 8:-8].mean())


def test_recovers_known_motion_as_well_as_dis_medium() -> None:
    torch.manual_seed(0)
    tvl1 = TorchTVL1Flow("fast", "cpu")
    dis = DISFlow("medium")
    ours, theirs, zero = [], [], []
    for seed, shift in ((0, (2.5, -1.5)), (1, (-3.0, 2.0))):
        prev, cur, truth = _pair(seed, shift)
        ours.append(_epe(tvl1.compute(prev, cur), truth))
        theirs.append(_epe(dis.compute(prev, cur), truth))
        zero.append(_epe(np.zeros_like(truth), truth))
    assert np.mean(ours) < 0.25, ours
    assert np.mean(ours) < 0.1 * np.mean(zero)
    assert np.mean(ours) <= 1.1 * np.mean(theirs), (ours, theirs)  # the accuracy target


def test_no_motion_gives_near_zero_flow() -> None:
    prev, _, _ = _pair(3, (0.0, 0.0), angle=0.0)
    flow = TorchTVL1Flow("fast", "cpu").compute(prev, prev)
    assert flow.shape == (SIZE, SIZE, 2) and flow.dtype == np.float32
    assert np.abs(flow).max() < 1e-3


def test_batch_equals_single_pairs() -> None:
    solver = TorchTVL1(TVL1Config(scales=3, warps=2, iterations=5, coarse_iterations=5, median=3))
    pairs = [_pair(s, (1.5 * s, -1.0)) for s in (4, 5)]
    a = torch.stack([torch.from_numpy(p).float()[None] for p, _, _ in pairs])
    b = torch.stack([torch.from_numpy(c).float()[None] for _, c, _ in pairs])
    batched = solver(a, b, value_range=255.0)
    assert batched.shape == (2, 2, SIZE, SIZE)
    for i in range(2):
        single = solver(a[i : i + 1], b[i : i + 1], value_range=255.0)
        torch.testing.assert_close(batched[i : i + 1], single, atol=1e-4, rtol=1e-4)


def test_divergence_is_minus_adjoint_of_gradient() -> None:
    g = torch.Generator().manual_seed(0)
    u = torch.randn((2, 2, 13, 17), generator=g, dtype=torch.float64)
    p = torch.randn((2, 4, 13, 17), generator=g, dtype=torch.float64)
    lhs = (_forward_grad(u) * p).sum()
    rhs = -(u * _divergence(p)).sum()
    assert abs(float(lhs - rhs)) < 1e-9


def test_registered_as_flow_backend_and_validates_config() -> None:
    backend = create_flow_backend("torch-tvl1")
    assert backend.name == "torch-tvl1-fast"
    with pytest.raises(ConfigError, match="preset"):
        TorchTVL1Flow("nope")
    with pytest.raises(ConfigError, match="scale_step"):
        TVL1Config(scale_step=1.5)
    with pytest.raises(ValueError, match="uint8"):
        backend.compute(np.zeros((8, 8), np.float32), np.zeros((8, 8), np.float32))
