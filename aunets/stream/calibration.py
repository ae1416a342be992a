"""Online person calibration: each track's AU probabilities re-based against that face's own neutral baseline.

OpenFace's file mode calibrates each person against their neutral face over the whole video; a live system cannot
look ahead. :class:`OnlineBaseline` estimates the baseline causally, from the track's past only: per AU, a low
running quantile (``quantile``, default the 10th percentile) of the raw probabilities seen so far, kept in a
fixed histogram per AU (constant memory per track, ``bins`` x K counts) that forgets with a time constant of
``horizon_frames`` frames. A face shows its neutral most of the time, so a low quantile of what it showed is its
neutral output; an AU that is on for most of a track is pulled towards its baseline (the cost of calibrating).

The baseline gains weight with evidence: ``b = q * min(1, n / warmup_frames)`` after ``n`` frames, so a new
track starts uncalibrated and is fully calibrated after ``warmup_frames``. The calibrated probability is
``max(0, p - b) / (1 - b)`` (the baseline maps to 0, 1 stays 1); the engine's thresholds then apply to it. A new
track id starts fresh (the pipeline keeps one :class:`OnlineBaseline` per track state).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from aunets.core.errors import ConfigError


@dataclass(frozen=True)
class CalibrationConfig:
    """``enabled``: re-base probabilities before the median and thresholds. ``quantile``: the baseline's
    quantile in (0, 0.5]. ``warmup_frames``: frames of evidence after which the baseline has its full weight.
    ``horizon_frames``: time constant of the histogram's forgetting, in frames. ``bins``: histogram bins over
    [0, 1] (the baseline's resolution is 1 / bins)."""

    enabled: bool = True
    quantile: float = 0.1
    warmup_frames: int = 10
    horizon_frames: int = 3000
    bins: int = 100

    def __post_init__(self) -> None:
        if not 0.0 < self.quantile <= 0.5:
            raise ConfigError(f"calibration quantile must be in (0, 0.5], got {self.quantile}")
        if self.warmup_frames < 0 or self.horizon_frames < 1 or self.bins < 2:
            raise ConfigError(f"calibration needs warmup_frames >= 0, horizon_frames >= 1, bins >= 2; got {self}")


class OnlineBaseline:
    """One track's baseline: :meth:`update` takes the raw probabilities (K,) of each frame in order and returns
    them calibrated (K,) float32 in [0, 1]; :attr:`baseline` (K,) is the baseline used for the last frame."""

    def __init__(self, n_aus: int, config: CalibrationConfig | None = None) -> None:
        self.config = config or CalibrationConfig()
        self._counts = np.zeros((n_aus, self.config.bins), np.float64)
        self._decay = 1.0 - 1.0 / self.config.horizon_frames
        self.frames = 0
        self.baseline = np.zeros(n_aus, np.float32)

    def update(self, probs: np.ndarray) -> np.ndarray:
        c = self.config
        p = np.clip(np.asarray(probs, np.float32), 0.0, 1.0)
        bins = np.minimum((p * c.bins).astype(np.int64), c.bins - 1)
        self._counts *= self._decay
        self._counts[np.arange(len(p)), bins] += 1.0
        self.frames += 1
        cum = np.cumsum(self._counts, axis=1)
        # lower edge of the bin that holds the quantile: a baseline never above what was seen
        q_bin = np.argmax(cum >= c.quantile * cum[:, -1:], axis=1)
        weight = min(1.0, self.frames / c.warmup_frames) if c.warmup_frames else 1.0
        self.baseline = (weight * q_bin / c.bins).astype(np.float32)
        return (np.maximum(p - self.baseline, 0.0) / (1.0 - self.baseline)).astype(np.float32)
