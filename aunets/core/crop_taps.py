""":func:`aunets.core.crop.crop_square` as separable resampling taps, so a device (the GPU frame path) can cut
the same crops as the CPU path with two gathers and two weighted sums.

``crop_square`` cuts a square window (border replicated), halves it with OpenCV's 2x2 area average while it is
at least twice the target size (dropping an odd last row/column), then resizes it with ``INTER_AREA``
(shrinking) or ``INTER_LINEAR`` (enlarging). Every step is linear along each axis, so the whole crop is, per
axis, ``size`` output samples each a weighted sum of a few frame pixels: :func:`axis_taps` gives those
indices and weights. The only difference from OpenCV is the rounding to ``uint8`` between halvings (and
OpenCV's 11-bit fixed-point bilinear weights): within two grey levels, 0.15 on average. Each halving rounds
its 2x2 means half up, which adds 1/8 grey level on average; :func:`rounding_bias` is that offset, added
before the final rounding so that the crops are not darker on average.

The number of taps per output sample ``T`` grows with the crop side; :func:`tap_count` rounds it up to a
class (3 x 2^n), so a stream's tap arrays have one of a few shapes (one CUDA graph each).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from aunets.core.face import Box


def crop_window(box: Box, margin: float, frame_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """The integer square window (x0, y0, side) px that :func:`aunets.core.crop.crop_square` cuts for ``box``."""
    x, y, w, h = box
    side = max(2.0, margin * max(w, h))
    cx, cy = x + w / 2.0, y + h / 2.0
    x0, y0 = round(cx - side / 2.0), round(cy - side / 2.0)
    s = round(side)
    height, width = frame_shape[:2]
    if min(width, x0 + s) <= max(0, x0) or min(height, y0 + s) <= max(0, y0):
        raise ValueError(f"face box {box} lies outside the {width}x{height} frame")
    return x0, y0, s


def _halvings(side: int, size: int) -> tuple[int, int]:
    """(number of 2x halvings, side after them), as :func:`aunets.core.crop.shrink` does."""
    n = 0
    while side >= 2 * size:
        side //= 2
        n += 1
    return n, side


def tap_count(side: int, size: int) -> int:
    """The tap class (3 x 2^n, n = halvings) that a window of ``side`` px resized to ``size`` needs."""
    return 3 * 2 ** _halvings(side, size)[0]


def rounding_bias(side: int, size: int) -> float:
    """Mean grey-level offset that the halvings' half-up rounding adds to a crop of a ``side`` px window."""
    return 0.125 * _halvings(side, size)[0]


def axis_taps(start: int, side: int, length: int, size: int, taps: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``int64`` (size, T) into an axis of ``length`` px and weights ``float32`` (size, T) (rows sum to 1)
    of the window ``[start, start + side)`` resized to ``size`` as ``crop_square`` does; pixels outside the
    axis replicate its border. ``taps``: pad to this T (>= :func:`tap_count`; padding has weight 0)."""
    n, cur = _halvings(side, size)
    f = 2**n
    i = np.arange(size, dtype=np.float64)
    if cur == size:
        j, w = i[:, None].astype(np.int64), np.ones((size, 1))
    elif cur > size:  # INTER_AREA: the overlap of each source pixel with the output pixel's interval
        scale = cur / size
        a, b = i * scale, (i + 1) * scale
        j = np.floor(a).astype(np.int64)[:, None] + np.arange(math.ceil(scale) + 1)[None, :]
        w = np.clip(np.minimum(b[:, None], j + 1) - np.maximum(a[:, None], j), 0.0, None) / scale
        j = np.minimum(j, cur - 1)
    else:  # INTER_LINEAR, half-pixel centres, clamped at the edges as OpenCV does
        fx = (i + 0.5) * cur / size - 0.5
        sx = np.floor(fx)
        frac = fx - sx
        low = sx < 0
        sx[low], frac[low] = 0, 0.0
        high = sx >= cur - 1
        sx[high], frac[high] = cur - 1, 0.0
        sx = sx.astype(np.int64)
        j = np.stack([sx, np.minimum(sx + 1, cur - 1)], axis=1)
        w = np.stack([1.0 - frac, frac], axis=1)
    # each tap of the halved image is the mean of f consecutive window pixels
    j = (j[:, :, None] * f + np.arange(f)[None, None, :]).reshape(size, -1)
    w = np.repeat(w / f, f, axis=1)
    idx = np.clip(start + j, 0, length - 1)
    t = taps if taps is not None else tap_count(side, size)
    if idx.shape[1] > t:
        raise ValueError(f"a {side} px window needs {idx.shape[1]} taps, more than {t}")
    pad = t - idx.shape[1]
    idx = np.pad(idx, ((0, 0), (0, pad)))
    w = np.pad(w, ((0, 0), (0, pad)))
    return idx.astype(np.int64), w.astype(np.float32)


def crop_taps(boxes: list[Box], margin: float, frame_shape: tuple[int, ...], size: int
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Taps of every face: (row indices, row weights, column indices, column weights), each (N, size, T) with
    one T for all faces (the largest tap class among them), and each face's :func:`rounding_bias` (N,)."""
    height, width = frame_shape[:2]
    windows = [crop_window(b, margin, frame_shape) for b in boxes]
    t = max(tap_count(s, size) for *_, s in windows)
    ys = [axis_taps(y0, s, height, size, t) for _, y0, s in windows]
    xs = [axis_taps(x0, s, width, size, t) for x0, _, s in windows]
    bias = np.array([rounding_bias(s, size) for *_, s in windows], dtype=np.float32)
    return (np.stack([a for a, _ in ys]), np.stack([b for _, b in ys]), np.stack([a for a, _ in xs]),
            np.stack([b for _, b in xs]), bias)


def apply_taps(image: np.ndarray, iy: np.ndarray, wy: np.ndarray, ix: np.ndarray, wx: np.ndarray) -> np.ndarray:
    """Reference (numpy) application of one face's taps (size, T) to an (H, W[, C]) image -> float (size, size[, C])."""
    rows = np.einsum("st,st...->s...", wy, image[iy].astype(np.float64))
    return np.einsum("st,ast...->as...", wx, rows[:, ix])


def apply_taps_tensor(image: Any, taps: tuple[Any, ...]) -> Any:
    """Torch twin of :func:`apply_taps` for N faces: ``image`` (1, C, H, W) float, ``taps`` = (row indices, row
    weights, column indices, column weights) each (N, S, T) and rounding offsets (N,), all on the image's device
    -> (N, C, S, S) rounded as ``uint8`` (no host round trip: CUDA-graph capturable)."""
    import torch

    iy, wy, ix, wx, bias = taps
    n, size, t = iy.shape
    img = image[0]
    c, width = img.shape[0], img.shape[2]
    rows = img[:, iy.reshape(-1)].view(c, n, size, t, width)  # (C, N, S, T, W)
    rows = (rows * wy.view(1, n, size, t, 1)).sum(dim=3).permute(1, 0, 2, 3)  # (N, C, S, W)
    cols = rows.gather(3, ix.view(n, 1, 1, size * t).expand(n, c, size, size * t)).view(n, c, size, size, t)
    return torch.round((cols * wx.view(n, 1, 1, size, t)).sum(dim=4) + bias.view(n, 1, 1, 1))
