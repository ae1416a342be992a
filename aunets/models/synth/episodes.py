"""AU episode plans with controlled co-occurrence, for the photo-real generator.

Unlike :func:`aunets.models.synth.dynamics.sample_episodes` (BP4D-like base rates, children follow parents), every
*event* here is either one AU alone (probability ``single_fraction``) or one realistic combination from
:data:`COMBINATIONS` sharing its onset, apex and offset, and events do not overlap in time. So each AU is seen
alone often, and AU12 does not imply AU10/14/17 (the CG set's P(AU10|AU12) is 0.88).
Times in seconds; intensities in [0, 1] (present at >= ``dynamics.PRESENCE_THRESHOLD``).
"""

from __future__ import annotations

import numpy as np

from aunets.core.au import BP4D_AUS
from aunets.models.synth.dynamics import Episode

# (AUs, relative frequency): prototypical combinations (EMFACS-style emotion prototypes and frequent pairs)
COMBINATIONS: tuple[tuple[tuple[int, ...], float], ...] = (
    ((6, 12), 3.0),  # Duchenne smile
    ((1, 2), 2.0),  # brow raise (surprise)
    ((4, 7), 1.5),  # frown, lids tightened (anger, concentration)
    ((17, 24), 1.0),  # chin raise, lips pressed (doubt)
    ((10, 12), 0.7),  # smile with the upper lip raised (broad smile)
    ((6, 7, 12), 1.0),  # intense smile
    ((1, 4), 0.8),  # sad brows
    ((1, 4, 15), 0.8),  # sadness
    ((15, 17), 0.8),  # pout / sadness
    ((4, 10), 0.6),  # disgust-like
    ((6, 10), 0.5),  # disgust / pain
    ((12, 14), 0.5),  # contained smile
    ((23, 24), 0.6),  # lips tight
    ((17, 23), 0.5),
    ((1, 2, 12), 0.5),  # surprised smile
    ((6, 7), 0.6),  # squint
    ((14, 17), 0.4),
    ((4, 7, 23), 0.4),  # anger
)


def _event(aus: tuple[int, ...], start: float, rng: np.random.Generator, asymmetry: float) -> list[Episode]:
    onset, apex_duration, offset = rng.uniform(0.15, 0.6), rng.uniform(0.3, 2.0), rng.uniform(0.2, 0.8)
    lead = rng.uniform(0.35, 1.0) if rng.uniform() < 0.85 else rng.uniform(0.12, 0.3)
    out = []
    for k, au in enumerate(aus):
        apex = lead if k == 0 else float(np.clip(lead + rng.uniform(-0.25, 0.15), 0.12, 1.0))
        left = right = 1.0
        if rng.uniform() < asymmetry:
            weaker = rng.uniform(0.4, 0.85)
            left, right = (weaker, 1.0) if rng.uniform() < 0.5 else (1.0, weaker)
        lag = rng.uniform(0.0, 0.12) if k else 0.0
        out.append(Episode(au, start + lag, onset, apex_duration, offset, apex, left, right))
    return out


def plan_episodes(
    seconds: float, rng: np.random.Generator, single_fraction: float = 0.5, asymmetry: float = 0.2,
    max_events: int = 2,
) -> tuple[list[Episode], list[tuple[int, ...]]]:  # fmt: skip
    """Non-overlapping events in a sequence of ``seconds``: returns the episodes and each event's AU set.

    1..``max_events`` events (as many as fit, at least one); each is one AU (uniform over the 12) with probability
    ``single_fraction``, else a combination drawn by frequency from :data:`COMBINATIONS`.
    """
    weights = np.array([w for _, w in COMBINATIONS])
    weights = weights / weights.sum()
    episodes: list[Episode] = []
    events: list[tuple[int, ...]] = []
    t = rng.uniform(0.1, 0.6)
    for _ in range(int(rng.integers(1, max_events + 1))):
        if rng.uniform() < single_fraction:
            aus: tuple[int, ...] = (int(BP4D_AUS[rng.integers(len(BP4D_AUS))]),)
        else:
            combo = COMBINATIONS[int(rng.choice(len(COMBINATIONS), p=weights))][0]
            aus = tuple(int(a) for a in rng.permutation(combo))
        ev = _event(aus, t, rng, asymmetry)
        end = max(e.end for e in ev)
        if events and end > seconds:
            break
        episodes.extend(ev)
        events.append(aus)
        t = end + rng.uniform(0.2, 0.8)
        if t >= seconds - 0.8:
            break
    return episodes, events
