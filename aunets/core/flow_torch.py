"""TV-L1 optical flow in PyTorch: coarse-to-fine, batched, on the CPU or a CUDA GPU.

The duality-based TV-L1 scheme of Zach, Pock and Bischof (2007) as described by Sánchez, Meinhardt-Llopis and
Facciolo (IPOL 2013, the algorithm behind OpenCV's ``DualTVL1``): a pyramid of ``scales`` levels
(``scale_step`` apart), ``warps`` warpings per level, ``iterations`` primal-dual steps per warping and an
optional median filter of the flow after each warping.

Images are handled in the range 0..1 (not 0..255), with the data weight scaled to match
(``lambda_ = 0.15 * 255``): every intermediate then stays far inside float16's range, so ``dtype`` may be
``torch.float16`` or ``torch.bfloat16`` on a GPU. The pyramid sizes depend only on the crop size, so the
whole computation has static shapes and can be captured in a CUDA graph.

:class:`TorchTVL1` computes flow for batches of tensors; :class:`TorchTVL1Flow` wraps it as a
:class:`aunets.core.flow.FlowBackend` (``uint8`` numpy in, ``float32`` HxWx2 numpy out).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np

from aunets.core.errors import ConfigError, MissingExtraError
from aunets.core.flow import FlowBackend, check_pair

if TYPE_CHECKING:
    from torch import Tensor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TVL1Config:
    """Parameters of :class:`TorchTVL1`.

    ``tau``: dual time step; ``lambda_``: data weight for images in 0..1 (0.15 for 0..255 images is 38.25);
    ``theta``: coupling of the two sub-problems; ``scales``: pyramid levels (coarsest at least
    ``min_size`` pixels); ``scale_step``: size ratio between levels; ``warps``: warpings per level;
    ``iterations``: primal-dual steps per warping (at the finest level; coarser levels use
    ``coarse_iterations``); ``median``: odd median-filter size applied to the flow after each warping
    (0 or 1 = off); ``presmooth``: Gaussian sigma in pixels applied to both images first (0 = off).
    """

    tau: float = 0.25
    lambda_: float = 0.15 * 255.0
    theta: float = 0.3
    scales: int = 5
    scale_step: float = 0.5
    min_size: int = 16
    warps: int = 5
    iterations: int = 10
    coarse_iterations: int = 10
    median: int = 5
    presmooth: float = 0.8

    def __post_init__(self) -> None:
        if not 0 < self.scale_step < 1:
            raise ConfigError(f"TV-L1 scale_step must be in (0, 1), got {self.scale_step}")
        if self.scales < 1 or self.warps < 1 or self.iterations < 1 or self.coarse_iterations < 1:
            raise ConfigError("TV-L1 scales, warps and iterations must all be >= 1")
        if self.median > 1 and self.median % 2 == 0:
            raise ConfigError(f"TV-L1 median size must be odd, got {self.median}")
        if self.tau <= 0 or self.theta <= 0 or self.lambda_ <= 0:
            raise ConfigError("TV-L1 tau, theta and lambda_ must be positive")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# Presets: "accurate" follows OpenCV's defaults; "fast" is the real-time setting used on the GPU path.
TVL1_PRESETS: dict[str, TVL1Config] = {
    "accurate": TVL1Config(scales=5, warps=5, iterations=30, coarse_iterations=30),
    "medium": TVL1Config(scales=5, warps=3, iterations=15, coarse_iterations=15),
    "fast": TVL1Config(scales=4, warps=2, iterations=10, coarse_iterations=10, median=3),
}


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise MissingExtraError("torch", "train") from exc
    return torch


class TorchTVL1:
    """Batched TV-L1 flow. ``__call__(prev, cur)`` maps two (N, 1, H, W) tensors (0..1 or 0..255, see
    ``value_range``) on one device to ``float32`` (N, 2, H, W) flow (u, v) in pixels,
    with ``cur(x + u, y + v) ~ prev(x, y)``.

    ``dtype``: the arithmetic type (``torch.float32``, or ``torch.float16``/``torch.bfloat16`` on CUDA).
    """

    def __init__(self, config: TVL1Config | None = None, dtype: Any = None, compile: bool = False) -> None:
        torch_ = _torch()
        self.config = config or TVL1Config()
        self.dtype = dtype or torch_.float32
        # compile=True fuses each primal-dual step into a few kernels with torch.compile (GPU; fewer launches)
        self._step = torch_.compile(_step, dynamic=False) if compile else _step
        self._kernels: dict[tuple[str, str], Tensor] = {}

    # --- pyramid ---------------------------------------------------------------------------------------
    def level_sizes(self, height: int, width: int) -> list[tuple[int, int]]:
        """(H, W) of each pyramid level, finest first."""
        c = self.config
        sizes = [(height, width)]
        for _ in range(1, c.scales):
            h = round(sizes[-1][0] * c.scale_step)
            w = round(sizes[-1][1] * c.scale_step)
            if min(h, w) < c.min_size:
                break
            sizes.append((h, w))
        return sizes

    def _gauss(self, sigma: float, ref: Tensor) -> Tensor:
        torch = _torch()
        key = (f"{sigma:.4f}", f"{ref.device}-{ref.dtype}")
        if key not in self._kernels:
            radius = max(1, math.ceil(2.5 * sigma))
            x = torch.arange(-radius, radius + 1, dtype=torch.float32)
            k = torch.exp(-(x**2) / (2 * sigma * sigma))
            self._kernels[key] = (k / k.sum()).to(device=ref.device, dtype=ref.dtype)
        return self._kernels[key]

    def _blur(self, img: Tensor, sigma: float) -> Tensor:
        torch = _torch()
        f = torch.nn.functional
        k = self._gauss(sigma, img)
        r = (k.numel() - 1) // 2
        img = f.conv2d(f.pad(img, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
        return f.conv2d(f.pad(img, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))

    def _down(self, img: Tensor, size: tuple[int, int]) -> Tensor:
        f = _torch().nn.functional
        ratio = img.shape[-1] / size[1]
        sigma = 0.6 * math.sqrt(max(ratio * ratio - 1.0, 0.0))  # anti-aliasing as in the IPOL implementation
        if sigma > 0.1:
            img = self._blur(img, sigma)
        return f.interpolate(img, size=size, mode="bilinear", align_corners=False)

    # --- the solver -----------------------------------------------------------------------------------
    def __call__(self, prev: Tensor, cur: Tensor, value_range: float = 1.0) -> Tensor:
        torch = _torch()
        f = torch.nn.functional
        if prev.shape != cur.shape or prev.dim() != 4 or prev.shape[1] != 1:
            raise ValueError(f"TV-L1 needs two (N, 1, H, W) tensors of equal shape, got {prev.shape} and {cur.shape}")
        c = self.config
        scale = 1.0 / value_range
        i0 = prev.to(self.dtype) * scale
        i1 = cur.to(self.dtype) * scale
        if c.presmooth > 0:
            i0 = self._blur(i0, c.presmooth)
            i1 = self._blur(i1, c.presmooth)
        sizes = self.level_sizes(prev.shape[2], prev.shape[3])
        pyr0, pyr1 = [i0], [i1]
        for size in sizes[1:]:
            pyr0.append(self._down(pyr0[-1], size))
            pyr1.append(self._down(pyr1[-1], size))
        n = prev.shape[0]
        flow = torch.zeros((n, 2, *sizes[-1]), dtype=self.dtype, device=prev.device)
        for level in range(len(sizes) - 1, -1, -1):
            h, w = sizes[level]
            if flow.shape[-2:] != (h, w):
                sy, sx = h / flow.shape[2], w / flow.shape[3]
                flow = f.interpolate(flow, size=(h, w), mode="bilinear", align_corners=False)
                flow = torch.cat([flow[:, 0:1] * sx, flow[:, 1:2] * sy], dim=1)  # no host tensor: graph-safe
            iters = c.iterations if level == 0 else c.coarse_iterations
            flow = self._level(pyr0[level], pyr1[level], flow, iters)
        return flow.float()

    def _level(self, i0: Tensor, i1: Tensor, flow: Tensor, iterations: int) -> Tensor:
        torch = _torch()
        c = self.config
        n, _, h, w = i0.shape
        # central-difference gradient of I1 (warped with it)
        i1p = torch.nn.functional.pad(i1, (1, 1, 1, 1), mode="replicate")
        i1x = 0.5 * (i1p[:, :, 1:-1, 2:] - i1p[:, :, 1:-1, :-2])
        i1y = 0.5 * (i1p[:, :, 2:, 1:-1] - i1p[:, :, :-2, 1:-1])
        stack = torch.cat([i1, i1x, i1y], dim=1)
        base = _base_grid(n, h, w, flow)
        p = torch.zeros((n, 4, h, w), dtype=flow.dtype, device=flow.device)  # p11 p12 p21 p22
        lt = c.lambda_ * c.theta
        taut = c.tau / c.theta
        eps = 1e-6 if flow.dtype == torch.float32 else 1e-4
        for _ in range(c.warps):
            warped = _warp(stack, flow, base)
            i1w, gx, gy = warped[:, 0:1], warped[:, 1:2], warped[:, 2:3]
            grad = gx * gx + gy * gy
            rho_c = i1w - gx * flow[:, 0:1] - gy * flow[:, 1:2] - i0
            g = torch.cat([gx, gy], dim=1)
            lt_grad = lt * grad
            small = grad <= eps
            safe_grad = torch.where(small, torch.ones_like(grad), grad)
            for _ in range(iterations):
                flow, p = self._step(flow, p, g, lt_grad, safe_grad, small, rho_c, lt, taut, c.theta)
            if c.median > 1:
                flow = _median(flow, c.median)
        return flow


def _base_grid(n: int, h: int, w: int, ref: Tensor) -> Tensor:
    """Pixel-centre coordinates (N, H, W, 2) in grid_sample's normalised units (align_corners=False)."""
    torch = _torch()
    ys = (2.0 * torch.arange(h, device=ref.device, dtype=torch.float32) + 1.0) / h - 1.0
    xs = (2.0 * torch.arange(w, device=ref.device, dtype=torch.float32) + 1.0) / w - 1.0
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([gx, gy], dim=-1).unsqueeze(0).expand(n, h, w, 2).contiguous()


def _warp(img: Tensor, flow: Tensor, base: Tensor) -> Tensor:
    """Sample ``img`` at ``x + flow`` (bilinear, border replicated). Done in float32 (grid precision)."""
    torch = _torch()
    h, w = img.shape[-2:]
    offset = torch.stack([flow[:, 0].float() * (2.0 / w), flow[:, 1].float() * (2.0 / h)], dim=-1)
    out = torch.nn.functional.grid_sample(
        img.float(), base + offset, mode="bilinear", padding_mode="border", align_corners=False
    )
    return out.to(img.dtype)


def _step(
    flow: Any,
    p: Any,
    g: Any,
    lt_grad: Any,
    safe_grad: Any,
    small: Any,
    rho_c: Any,
    lt: float,
    taut: float,
    theta: float,
) -> tuple[Any, Any]:
    """One primal-dual step of TV-L1 (thresholding, primal update, dual projection).

    ``flow`` (N, 2, H, W), ``p`` (N, 4, H, W) dual, ``g`` (N, 2, H, W) warped image gradient, ``lt_grad``,
    ``safe_grad`` and ``small`` (N, 1, H, W) precomputed per warping, ``rho_c`` the constant residual part.
    """
    torch = _torch()
    rho = rho_c + g[:, 0:1] * flow[:, 0:1] + g[:, 1:2] * flow[:, 1:2]
    step = torch.where(
        rho < -lt_grad,
        lt * g,
        torch.where(rho > lt_grad, -lt * g, torch.where(small, torch.zeros_like(g), -rho * g / safe_grad)),
    )
    flow = flow + step + theta * _divergence(p)
    du = _forward_grad(flow)  # (N, 4, H, W): u1x u1y u2x u2y
    n1 = 1.0 + taut * torch.sqrt(du[:, 0:1] ** 2 + du[:, 1:2] ** 2)
    n2 = 1.0 + taut * torch.sqrt(du[:, 2:3] ** 2 + du[:, 3:4] ** 2)
    p = (p + taut * du) / torch.cat([n1, n1, n2, n2], dim=1)
    return flow, p


def _forward_grad(flow: Tensor) -> Tensor:
    """Forward differences with Neumann boundary: (N, 2, H, W) -> (N, 4, H, W) = u1x, u1y, u2x, u2y."""
    f = _torch().nn.functional
    dx = f.pad(flow[:, :, :, 1:] - flow[:, :, :, :-1], (0, 1, 0, 0))
    dy = f.pad(flow[:, :, 1:, :] - flow[:, :, :-1, :], (0, 0, 0, 1))
    return _torch().stack([dx[:, 0], dy[:, 0], dx[:, 1], dy[:, 1]], dim=1)


def _divergence(p: Tensor) -> Tensor:
    """Backward-difference divergence (adjoint of :func:`_forward_grad`): (N, 4, H, W) -> (N, 2, H, W)."""
    torch = _torch()
    f = torch.nn.functional
    px = p[:, 0::2]  # p11, p21: x components
    py = p[:, 1::2]
    # zero the last column/row (Neumann), then backward differences
    px = f.pad(px[:, :, :, :-1], (0, 1, 0, 0))
    py = f.pad(py[:, :, :-1, :], (0, 0, 0, 1))
    dx = px - f.pad(px[:, :, :, :-1], (1, 0, 0, 0))
    dy = py - f.pad(py[:, :, :-1, :], (0, 0, 1, 0))
    return dx + dy


def _median(flow: Tensor, size: int) -> Tensor:
    """Per-channel ``size`` x ``size`` median filter (border replicated)."""
    torch = _torch()
    r = size // 2
    n, c, h, w = flow.shape
    padded = torch.nn.functional.pad(flow, (r, r, r, r), mode="replicate")
    patches = padded.unfold(2, size, 1).unfold(3, size, 1)  # N, C, H, W, k, k
    return patches.reshape(n, c, h, w, size * size).median(dim=-1).values


class TorchTVL1Flow:
    """:class:`aunets.core.flow.FlowBackend` running :class:`TorchTVL1` on ``device`` (``cpu``, ``cuda``...).

    ``preset``: a key of :data:`TVL1_PRESETS` (``fast`` for real time, ``accurate`` = OpenCV's defaults).
    ``compute`` uploads the two ``uint8`` images, runs one pair and copies the flow back; the GPU frame
    path (:mod:`aunets.stream.gpu_path`) uses :class:`TorchTVL1` directly on tensors instead.
    """

    def __init__(self, preset: str = "fast", device: str = "cpu", dtype: str = "float32") -> None:
        torch = _torch()
        if preset not in TVL1_PRESETS:
            raise ConfigError(f"unknown TV-L1 preset {preset!r}; choose one of {sorted(TVL1_PRESETS)}")
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError("TV-L1 on 'cuda' needs torch with CUDA and a GPU; use device='cpu' or the dis backend")
        self.name = f"torch-tvl1-{preset}" + ("" if device == "cpu" else f"-{device}")
        self.device = torch.device(device)
        self.solver = TorchTVL1(TVL1_PRESETS[preset], getattr(torch, dtype))

    def compute(self, prev: np.ndarray, cur: np.ndarray) -> np.ndarray:
        return self.compute_batch([prev], [cur])[0]

    def compute_batch(self, prevs: Sequence[np.ndarray], curs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """All pairs (every face of a frame) in one solver call: N ``uint8`` HxW pairs -> N ``float32`` HxWx2."""
        torch = _torch()
        for prev, cur in zip(prevs, curs, strict=True):
            check_pair(prev, cur)
        with torch.inference_mode():
            a = torch.from_numpy(np.stack(prevs)).to(self.device)[:, None]
            b = torch.from_numpy(np.stack(curs)).to(self.device)[:, None]
            flow = self.solver(a.float(), b.float(), value_range=255.0)
            out = flow.permute(0, 2, 3, 1).cpu().numpy()
        return [np.ascontiguousarray(f, dtype=np.float32) for f in out]


def flow_backends() -> dict[str, Callable[[], FlowBackend]]:
    """``torch-tvl1`` (= ``-fast``), ``torch-tvl1-{fast,medium,accurate}`` and their ``-cuda`` variants, for
    :mod:`aunets.core.flow_registry` (the factories import torch only when called)."""
    table: dict[str, Callable[[], FlowBackend]] = {
        "torch-tvl1": partial(TorchTVL1Flow, "fast", "cpu"),
        "torch-tvl1-cuda": partial(TorchTVL1Flow, "fast", "cuda"),
    }
    for preset in TVL1_PRESETS:
        table[f"torch-tvl1-{preset}"] = partial(TorchTVL1Flow, preset, "cpu")
        table[f"torch-tvl1-{preset}-cuda"] = partial(TorchTVL1Flow, preset, "cuda")
    return table


def encode_flow_tensor(flow: Tensor, encoding: str, clip_fraction: float) -> Tensor:
    """(N, 2, S, S) flow in pixels -> (N, 3, S, S) float 0..255 flow image (RGB), as
    :func:`aunets.core.flow.encode_flow` (``paper`` or ``aunets_original``), on the flow's device."""
    torch = _torch()

    u, v = flow[:, 0:1], flow[:, 1:2]
    if encoding == "paper":
        scale = 1.0 / (clip_fraction * flow.shape[3])
        r = 128.0 + 127.0 * torch.clamp(u * scale, -1.0, 1.0)
        g = 128.0 + 127.0 * torch.clamp(v * scale, -1.0, 1.0)
        b = 255.0 * torch.clamp(torch.sqrt(u * u + v * v) * scale, 0.0, 1.0)
    else:  # aunets_original: each component scaled by this sample's own peak
        def channel(comp: Tensor) -> Tensor:
            peak = comp.abs().amax(dim=(1, 2, 3), keepdim=True)
            scaled = 128.0 + 127.0 * comp / torch.clamp(peak, min=1e-6)
            return torch.where(peak > 1e-6, scaled, torch.full_like(comp, 128.0))

        r, g, b = channel(u), channel(-v), torch.zeros_like(u)
    return torch.floor(torch.clamp(torch.cat([r, g, b], dim=1), 0.0, 255.0))  # uint8 assignment truncates
