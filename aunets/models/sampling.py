"""What a training epoch draws: input batches from the frame cache, class-balanced and per-source sampling
weights, and the seeded draw order (every draw is seeded from (seed, unit, epoch), so resuming continues exactly)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from aunets.engines.manifest import InputSpec
from aunets.engines.preprocess import compose_input, normalise
from aunets.models.data.cache import FrameCache


class SampleSource:
    """Builds input batches from a :class:`FrameCache` (RGB + flow crops) with :func:`compose_input`."""

    def __init__(self, cache: FrameCache, spec: InputSpec, shift: float, scale: float) -> None:
        self.cache = cache
        self.spec = spec
        self.shift = shift
        self.scale = scale
        self.rgb_spec = replace(spec, fusion="rgb")

    def batch(self, indices: Sequence[int] | np.ndarray, rngs: Sequence[np.random.Generator] | None,
              rgb_only: bool = False) -> np.ndarray:
        """``float32`` (B, C, H, W): jittered when ``rngs`` (one per sample) are given, else centre crops."""
        out = []
        for j, i in enumerate(indices):
            rgb, flow = (self.cache.jittered(int(i), rngs[j], self.shift, self.scale) if rngs is not None
                         else self.cache.centre(int(i)))
            if rgb_only:
                out.append(normalise(rgb, self.rgb_spec))
            else:
                out.append(compose_input(rgb, flow, self.spec))
        return np.stack(out)


def balanced_weights(labels: np.ndarray) -> np.ndarray:
    """Sampling weight per frame so that, for every AU, positives and negatives are drawn equally often on
    average: mean over annotated AUs of ``0.5 / p`` (positive) or ``0.5 / (1 - p)`` (negative), ``p`` the AU's
    positive rate. ``labels`` int (N, K) 1/0/-1 -> float64 (N,), normalised to sum 1."""
    lab = np.asarray(labels)
    valid = lab >= 0
    pos = (lab == 1) & valid
    p = np.clip(pos.sum(0) / np.maximum(valid.sum(0), 1), 1e-3, 1 - 1e-3)
    w = np.where(pos, 0.5 / p, 0.5 / (1 - p))
    w = np.where(valid, w, 0.0).sum(1) / np.maximum(valid.sum(1), 1)
    w = np.where(w > 0, w, 1.0)
    return np.asarray(w / w.sum())


def unit_seed(seed: int, name: str) -> int:
    return int(hashlib.sha256(f"{seed}:{name}".encode()).hexdigest()[:8], 16)


def epoch_order(n_draws: int, pool: np.ndarray, weights: np.ndarray | None, seed: int, epoch: int) -> np.ndarray:
    """Frame indices drawn for one epoch (deterministic in ``seed`` and ``epoch``)."""
    rng = np.random.default_rng([seed, epoch])
    if weights is None:
        reps = -(-n_draws // len(pool))
        return np.concatenate([rng.permutation(pool) for _ in range(reps)])[:n_draws]
    return np.asarray(rng.choice(pool, size=n_draws, replace=True, p=weights))


def group_shares(groups: np.ndarray, shares: Sequence[float], weights: np.ndarray | None) -> np.ndarray:
    """Sampling weights (sum 1) that give source ``g >= 1`` the share ``shares[g - 1]`` of the draws and source 0
    the rest, keeping ``weights`` (or uniform) within each source. ``groups`` int (N,) -> float64 (N,)."""
    w = np.ones(len(groups)) if weights is None else np.asarray(weights, dtype=np.float64)
    out = np.zeros_like(w)
    targets = [1.0 - float(sum(shares)), *shares]
    for g, share in enumerate(targets):
        sel = groups == g
        if sel.any() and w[sel].sum() > 0:
            out[sel] = share * w[sel] / w[sel].sum()
    return out / out.sum()
