"""Temporal smoothing of AU probabilities: the sliding median, offline and online.

The median of frame ``t`` covers frames ``[t - (w - 1) + k, t + k]`` (clipped to the sequence), where ``w`` is
the odd window and ``k`` the look-ahead. ``k = 0`` is causal (no added latency); ``k = (w - 1) // 2`` is the
paper's centred median, which delays every result by ``k`` frames (``k / fps`` seconds).
"""

from __future__ import annotations

from collections import deque

import numpy as np

from aunets.core.errors import ConfigError


def check_window(window: int, lookahead: int) -> None:
    if window < 1 or window % 2 == 0:
        raise ConfigError(f"median window must be odd and >= 1, got {window}")
    if not 0 <= lookahead <= (window - 1) // 2:
        raise ConfigError(f"look-ahead must be in 0..{(window - 1) // 2} for window {window}, got {lookahead}")


def median_filter(probs: np.ndarray, window: int, lookahead: int = 0) -> np.ndarray:
    """Offline reference: ``probs`` (T, K) -> (T, K), each frame the median of its (clipped) window."""
    check_window(window, lookahead)
    T = probs.shape[0]
    out = np.empty_like(probs, dtype=np.float64 if probs.dtype == np.float64 else np.float32)
    for t in range(T):
        lo = max(0, t - (window - 1) + lookahead)
        hi = min(T, t + lookahead + 1)
        out[t] = np.median(probs[lo:hi], axis=0)
    return out


class SlidingMedian:
    """Online version of :func:`median_filter`, one value vector per frame.

    :meth:`push` takes frame ``j``'s (K,) vector and returns ``(t, median)`` for frame ``t = j - lookahead``
    once it is final (``None`` for the first ``lookahead`` frames); :meth:`flush` returns the last
    ``lookahead`` frames at the end of the sequence. The results equal :func:`median_filter` exactly.
    """

    def __init__(self, window: int, lookahead: int = 0) -> None:
        check_window(window, lookahead)
        self.window = window
        self.lookahead = lookahead
        self._buf: deque[tuple[int, np.ndarray]] = deque(maxlen=window)
        self._next = 0

    def push(self, values: np.ndarray) -> tuple[int, np.ndarray] | None:
        j = self._next
        self._next += 1
        self._buf.append((j, np.asarray(values)))
        t = j - self.lookahead
        if t < 0:
            return None
        return t, self._median(t, j)

    def flush(self) -> list[tuple[int, np.ndarray]]:
        last = self._next - 1
        out = [(t, self._median(t, last)) for t in range(max(0, self._next - self.lookahead), self._next)]
        self._buf.clear()
        self._next = 0
        return out

    def _median(self, t: int, last: int) -> np.ndarray:
        lo = t - (self.window - 1) + self.lookahead
        rows = [v for i, v in self._buf if lo <= i <= min(last, t + self.lookahead)]
        return np.median(np.stack(rows), axis=0)
