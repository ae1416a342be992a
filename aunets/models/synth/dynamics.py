"""AU dynamics of a sequence at ``fps``: episodes with onset, apex and offset, co-occurrence, blinks, talking
jaw motion (a distractor, not labelled) and smooth head-motion jitter.

Intensity is in [0, 1] (FACS A..E, see :data:`INTENSITY_LEVELS`); an AU is present in a frame when its intensity
is >= :data:`PRESENCE_THRESHOLD` (the start of level B). Base rates follow BP4D (:data:`BASE_RATES`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from aunets.core.au import BP4D_AUS
from aunets.core.errors import ConfigError

PRESENCE_THRESHOLD = 0.3
INTENSITY_LEVELS: dict[str, tuple[float, float]] = {
    "A": (0.1, 0.3), "B": (0.3, 0.5), "C": (0.5, 0.7), "D": (0.7, 0.9), "E": (0.9, 1.0),
}  # fmt: skip

# Fraction of frames where each AU is present, approximately BP4D's (frame-level, all 41 subjects).
BASE_RATES: dict[int, float] = {
    1: 0.21, 2: 0.17, 4: 0.20, 6: 0.46, 7: 0.55, 10: 0.59, 12: 0.56, 14: 0.47, 15: 0.17, 17: 0.34, 23: 0.17, 24: 0.15,
}  # fmt: skip

# Co-occurrence: each episode of a child AU is aligned with an episode of one of its parents with probability
# COUPLING[child] (same onset +-0.2 s, similar apex duration); otherwise it starts at a random free time.
PARENTS: dict[int, tuple[int, ...]] = {6: (12,), 2: (1,), 7: (6, 4), 10: (12, 4), 14: (12, 17), 15: (17,), 23: (17,),
                                       24: (17,)}  # fmt: skip
COUPLING: dict[int, float] = {6: 0.9, 2: 0.9, 7: 0.7, 10: 0.6, 14: 0.5, 15: 0.7, 23: 0.6, 24: 0.6}
FILL_ORDER: tuple[int, ...] = (12, 1, 4, 17, 6, 2, 7, 10, 14, 15, 23, 24)


@dataclass(frozen=True)
class Episode:
    """One AU episode; times in seconds, ``apex`` intensity in [0, 1]; side weights (left, right) in [0, 1]."""

    au: int
    start: float
    onset: float
    apex_duration: float
    offset: float
    apex: float
    left: float = 1.0
    right: float = 1.0

    @property
    def end(self) -> float:
        return self.start + self.onset + self.apex_duration + self.offset


@dataclass
class Timeline:
    """Per-frame signals of one sequence (T frames).

    intensity (T, 12) AU intensities in BP4D order; side (T, 12, 2) left/right scale; blink (T,) eyeBlink weight;
    jaw (T,) jawOpen weight and lip (T,) mouthLowerDown weight for talking; pose (T, 6) jitter
    (yaw, pitch, roll deg, tx, ty, tz cm); gaze (T, 2) degrees.
    """

    intensity: np.ndarray
    side: np.ndarray
    blink: np.ndarray
    jaw: np.ndarray
    lip: np.ndarray
    pose: np.ndarray
    gaze: np.ndarray

    @property
    def presence(self) -> np.ndarray:
        return (self.intensity >= PRESENCE_THRESHOLD).astype(np.uint8)


def parse_script(text: str) -> list[Episode]:
    """Parse ``"12:1.0-2.5"`` (AU 12 at apex from 1.0 s to 2.5 s), comma-separated, optional ``@intensity``.

    Onset and offset ramps of 0.3 s lie outside the apex interval.
    """
    episodes = []
    for part in [p.strip() for p in text.split(",") if p.strip()]:
        m = re.fullmatch(r"(?:AU)?(\d+):([\d.]+)-([\d.]+)(?:@([\d.]+))?", part, flags=re.IGNORECASE)
        if not m:
            raise ConfigError(f"bad --script item {part!r}; use AU:START-END[@INTENSITY], e.g. '12:1.0-2.5@0.8'")
        au, t0, t1 = int(m.group(1)), float(m.group(2)), float(m.group(3))
        if au not in BP4D_AUS:
            raise ConfigError(f"--script AU {au} is not one of the generated AUs {list(BP4D_AUS)}")
        if t1 <= t0:
            raise ConfigError(f"--script item {part!r}: the apex end must be after its start")
        apex = float(m.group(4)) if m.group(4) else 1.0
        ramp = 0.3
        episodes.append(Episode(au, max(0.0, t0 - ramp), min(ramp, t0), t1 - t0, ramp, min(1.0, apex)))
    return episodes


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def episode_curve(ep: Episode, t: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
    """Intensity (T,) of one episode at times ``t`` (s): smooth rise, apex with slow wobble, smooth fall."""
    rise = _smoothstep((t - ep.start) / max(ep.onset, 1e-3))
    fall = 1.0 - _smoothstep((t - ep.start - ep.onset - ep.apex_duration) / max(ep.offset, 1e-3))
    curve = np.minimum(rise, fall) * ep.apex
    if rng is not None:
        f, ph = rng.uniform(0.3, 1.0), rng.uniform(0, 2 * np.pi)
        curve = curve * (1.0 + 0.06 * np.sin(2 * np.pi * f * t + ph))
    return np.clip(curve, 0.0, 1.0)


def _random_episode(au: int, start: float, rng: np.random.Generator, asymmetry: float) -> Episode:
    apex = rng.uniform(0.35, 1.0) if rng.uniform() < 0.85 else rng.uniform(0.12, 0.3)
    left = right = 1.0
    if rng.uniform() < asymmetry:
        weaker = rng.uniform(0.4, 0.85)
        if rng.uniform() < 0.5:
            left = weaker
        else:
            right = weaker
    return Episode(
        au, start, onset=rng.uniform(0.15, 0.6), apex_duration=rng.uniform(0.3, 3.0), offset=rng.uniform(0.2, 0.8),
        apex=apex, left=left, right=right,
    )  # fmt: skip


def sample_episodes(
    seconds: float, rng: np.random.Generator, fps: float = 25.0, asymmetry: float = 0.2
) -> list[Episode]:
    """Random AU episodes whose present-frame fraction per AU is drawn around :data:`BASE_RATES`.

    Parents are filled first; each episode of a child AU starts inside one of its parents' episodes with
    probability :data:`COUPLING` (AU6 with AU12, AU2 with AU1, AU7 with AU4, AU15/23/24 with AU17, ...).
    """
    n = max(1, round(seconds * fps))
    t = np.arange(n) / fps
    episodes: list[Episode] = []
    by_au: dict[int, list[Episode]] = {au: [] for au in BP4D_AUS}
    occupancy: dict[int, float] = {}
    for au in FILL_ORDER:
        p = BASE_RATES[au]
        k = 3.0
        target = rng.beta(p * k, (1 - p) * k)
        if au in PARENTS:  # a child's amount follows its main parent's in this sequence (keeps them together)
            pa = PARENTS[au][0]
            target = 0.3 * target + 0.7 * min(1.0, occupancy[pa] * p / BASE_RATES[pa])
        curve = np.zeros(n)
        slack = min(0.05, 0.9 / seconds)  # about half an episode: stopping early offsets the last one's overshoot
        for _ in range(60):
            if (curve >= PRESENCE_THRESHOLD).mean() >= target - slack:
                break
            parent_eps = [e for pa in PARENTS.get(au, ()) for e in by_au[pa]]
            if parent_eps and rng.uniform() < COUPLING.get(au, 0.0):
                pe = parent_eps[rng.integers(len(parent_eps))]
                ep = _random_episode(au, pe.start + rng.uniform(-0.1, 0.2), rng, asymmetry)
                ep = Episode(au, ep.start, pe.onset * rng.uniform(0.9, 1.3), pe.apex_duration * rng.uniform(0.8, 1.0),
                             pe.offset, ep.apex, ep.left, ep.right)  # fmt: skip
            else:
                free = np.flatnonzero(curve < 0.05)
                if len(free) == 0:
                    break
                ep = _random_episode(au, t[free[rng.integers(len(free))]] - rng.uniform(0, 0.5), rng, asymmetry)
            curve = np.maximum(curve, episode_curve(ep, t))
            by_au[au].append(ep)
            episodes.append(ep)
        occupancy[au] = float((curve >= PRESENCE_THRESHOLD).mean())
    return episodes


def sample_isolated_episodes(
    seconds: float, rng: np.random.Generator, fps: float = 25.0, asymmetry: float = 0.2
) -> list[Episode]:
    """AU episodes one at a time: each episode a single AU (uniform over the 12), none overlapping another, with
    rests between them. Sequences of these teach each AU apart from the ones it co-occurs with in BP4D (AU12
    without AU6/10/14, AU17 without AU15/23/24, ...)."""
    episodes: list[Episode] = []
    t = float(rng.uniform(0.0, 0.6))
    while t < seconds - 0.5:
        au = int(BP4D_AUS[rng.integers(len(BP4D_AUS))])
        ep = _random_episode(au, t, rng, asymmetry)
        episodes.append(ep)
        t = ep.end + float(rng.uniform(0.2, 1.0))
    return episodes


def _smooth_jitter(rng: np.random.Generator, t: np.ndarray, amplitude: float) -> np.ndarray:
    """Sum of three random sinusoids (0.05..0.6 Hz) with RMS about ``amplitude``."""
    out = np.zeros_like(t)
    for _ in range(3):
        out += np.sin(2 * np.pi * rng.uniform(0.05, 0.6) * t + rng.uniform(0, 2 * np.pi))
    return out * amplitude / np.sqrt(1.5)


def build_timeline(
    episodes: list[Episode],
    seconds: float,
    rng: np.random.Generator,
    fps: float = 25.0,
    blinks: bool = True,
    talking: bool = True,
    jitter: bool = True,
) -> Timeline:
    """Per-frame signals from episodes plus blinks, talking and head jitter (each optional)."""
    n = max(1, round(seconds * fps))
    t = np.arange(n) / fps
    au_index = {au: i for i, au in enumerate(BP4D_AUS)}
    intensity = np.zeros((n, len(BP4D_AUS)), np.float32)
    side_num = np.zeros((n, len(BP4D_AUS), 2), np.float32)
    for ep in episodes:
        c = episode_curve(ep, t, rng)
        a = au_index[ep.au]
        intensity[:, a] = np.maximum(intensity[:, a], c)
        side_num[:, a, 0] = np.where(c > 0, np.maximum(side_num[:, a, 0], ep.left * (c > 0)), side_num[:, a, 0])
        side_num[:, a, 1] = np.where(c > 0, np.maximum(side_num[:, a, 1], ep.right * (c > 0)), side_num[:, a, 1])
    side = np.where(side_num > 0, side_num, 1.0).astype(np.float32)
    blink = np.zeros(n, np.float32)
    if blinks:
        s = rng.uniform(0.2, 3.0)
        while s < seconds:
            dur = rng.uniform(0.15, 0.3)
            x = (t - s) / dur
            blink = np.maximum(blink, np.clip(1.0 - np.abs(2 * x - 1.0) * 1.0, 0, 1) ** 0.7 * (x >= 0) * (x <= 1))
            s += rng.exponential(3.5) + 0.4
    jaw = np.zeros(n, np.float32)
    lip = np.zeros(n, np.float32)
    if talking:
        s = rng.uniform(0.0, 4.0)
        while s < seconds:
            dur = rng.uniform(1.0, 4.0)
            inside = ((t >= s) & (t < s + dur)).astype(np.float32)
            env = inside * np.clip(np.minimum(t - s, s + dur - t) / 0.2, 0, 1)
            rate = rng.uniform(3.0, 5.0)
            phase = rng.uniform(0, 6.3)
            syll = np.clip(np.sin(2 * np.pi * rate * t + phase) + 0.3 * np.sin(2 * np.pi * 1.3 * t), 0, None)
            amp = rng.uniform(0.08, 0.22)
            jaw = np.maximum(jaw, env * syll * amp)
            lip = np.maximum(lip, env * syll * amp * rng.uniform(0.3, 1.0))
            s += dur + rng.exponential(5.0)
    pose = np.zeros((n, 6), np.float32)
    gaze = np.zeros((n, 2), np.float32)
    if jitter:
        for j, amp in enumerate((3.0, 2.5, 1.5, 0.5, 0.4, 0.8)):
            pose[:, j] = _smooth_jitter(rng, t, amp)
        for j, amp in enumerate((6.0, 3.0)):
            target, out = 0.0, np.zeros(n, np.float32)
            for i in range(n):
                if rng.uniform() < 0.6 / fps:  # saccade about every 1.7 s
                    target = rng.normal(0.0, amp)
                out[i] = target
            gaze[:, j] = out
    return Timeline(intensity, side, blink, jaw, lip, pose, gaze)


def measured_base_rates(timelines: list[Timeline]) -> dict[int, float]:
    """Fraction of present frames per AU over timelines."""
    pres = np.concatenate([tl.presence for tl in timelines])
    return {au: float(pres[:, i].mean()) for i, au in enumerate(BP4D_AUS)}
