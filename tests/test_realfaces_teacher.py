"""Which AUs the MediaPipe teacher may label in the real-face training set: only where it follows OpenFace and its
scores reach the label scale (a teacher stuck near 0 would label every frame "off")."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aunets.models.data.realfaces import TRUST_P95, TRUST_R, trusted_aus

AUS = (1, 6, 12)


def test_a_teacher_au_needs_both_agreement_and_range() -> None:
    rng = np.random.default_rng(0)
    n = 200
    scores: dict[Path, list[float] | None] = {
        Path(f"{i}.jpg"): [float(rng.uniform(0, 0.9)),  # AU1: spans the scale
                           float(rng.uniform(0, 1e-3)),  # AU6: never leaves 0 (MediaPipe's cheekSquint)
                           float(rng.uniform(0, 0.9))]  # AU12: spans the scale
        for i in range(n)
    }
    scores[Path("noface.jpg")] = None
    trust = {1: TRUST_R - 0.3, 6: TRUST_R + 0.1, 12: TRUST_R + 0.4}
    ok, p95 = trusted_aus(trust, scores, AUS)
    assert ok == [12]  # AU1 does not follow OpenFace; AU6 does, but its scores are all below the label scale
    assert p95[6] is not None and p95[6] < 1e-3 < TRUST_P95
    assert p95[1] is not None and p95[1] > TRUST_P95 and p95[12] is not None and p95[12] > TRUST_P95
    trust[6] = None  # r undefined (OpenFace has no such AU, or a constant score)
    assert trusted_aus(trust, scores, AUS)[0] == [12]


def test_no_scores_trust_nothing() -> None:
    ok, p95 = trusted_aus({1: 0.9, 6: 0.9, 12: 0.9}, {Path("a.jpg"): None}, AUS)
    assert ok == [] and p95 == {1: None, 6: None, 12: None}
