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


def test_a_smile_labels_only_the_brows_that_stay_at_rest_for_that_person() -> None:
    from aunets.models.data.realfaces import REST_RISE, RealFrame, cross_talk_negatives

    aus = (1, 2, 4, 12)
    frames = [RealFrame(Path(f"{p}_{k}.jpg"), k, f"{p}_{k[0]}", 0, p, "train")
              for p in ("london_001", "london_002", "london_003") for k in ("neutral", "smiling")]  # fmt: skip
    scores: dict[Path, list[float] | None] = {
        Path("london_001_neutral.jpg"): [0.20, 0.05, 0.10, 0.0],
        Path("london_001_smiling.jpg"): [0.20 + REST_RISE / 2, 0.02, 0.10 + 3 * REST_RISE, 0.9],  # brows lowered
        Path("london_002_neutral.jpg"): [0.05, 0.05, 0.05, 0.0],
        Path("london_002_smiling.jpg"): [0.60, 0.40, 0.0, 0.8],  # raised brows while smiling: AU1/2 not at rest
        Path("london_003_neutral.jpg"): None,  # no face found: no evidence, no label
        Path("london_003_smiling.jpg"): [0.0, 0.0, 0.0, 0.9],
    }
    rest = cross_talk_negatives(frames, scores, aus, (1, 2, 4))
    assert sorted(rest) == ["london_001", "london_002"]
    assert rest["london_001"]["rest"] == [1, 2] and rest["london_002"]["rest"] == [4]
    assert rest["london_002"]["smiling"] == {"1": 0.6, "2": 0.4, "4": 0.0}  # the evidence is kept


def test_interfaces_train_people_join_the_training_set_by_expression(tmp_path: Path) -> None:
    import cv2

    from aunets.models.data.realfaces import training_frames

    root = tmp_path / "realfaces"
    image = np.full((64, 64, 3), 128, np.uint8)
    for kind in ("neutral", "smiling"):
        (root / "london" / kind).mkdir(parents=True)
        cv2.imwrite(str(root / "london" / kind / "000.jpg"), image)
    (root / "interfaces").mkdir()
    rows = [("001", "N"), ("002", "N"), ("003", "X"), ("004", "L"), ("005", "S"), ("006", "N"), ("007", "O")]
    lines = ["image,expression,tags"] + [f"{n}.jpg,{e},-" for n, e in rows]
    (root / "interfaces" / "labels.csv").write_text("\n".join(lines) + "\n")
    for n, _ in rows:
        cv2.imwrite(str(root / "interfaces" / f"{n}.jpg"), image)
    without = training_frames(root, tmp_path / "frames")
    assert not any(f.subject.startswith("interfaces") for f in without)
    got = {f.subject: f.kind for f in training_frames(root, tmp_path / "frames", interfaces=True)
           if f.subject.startswith("interfaces")}  # fmt: skip
    # usable people 001, 002, 004, 005, 006: every 3rd (001, 005) is a test person and never trained on
    assert got == {"interfaces_002": "neutral", "interfaces_004": "smiling", "interfaces_006": "neutral"}
