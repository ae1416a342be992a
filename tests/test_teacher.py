"""The MediaPipe blendshape teacher: the AU mapping, and the teacher itself where mediapipe is installed."""

from __future__ import annotations

import numpy as np
import pytest

from aunets.core.au import BP4D_AUS
from aunets.models.teacher import AU_FROM_BLENDSHAPES, blendshapes_to_aus


def test_mapping_covers_every_au_and_averages_left_right() -> None:
    assert set(AU_FROM_BLENDSHAPES) == set(BP4D_AUS)
    names = {n for ns in AU_FROM_BLENDSHAPES.values() for n in ns}
    scores = dict.fromkeys(names, 0.0) | {"mouthSmileLeft": 1.0, "mouthSmileRight": 0.5, "browInnerUp": 0.2}
    aus = blendshapes_to_aus(scores)
    assert aus[BP4D_AUS.index(12)] == pytest.approx(0.75)
    assert aus[BP4D_AUS.index(1)] == pytest.approx(0.2)
    assert np.count_nonzero(aus) == 2
    with pytest.raises(ValueError, match="mouthPressLeft"):
        blendshapes_to_aus({k: v for k, v in scores.items() if k != "mouthPressLeft"})


def test_teacher_scores_mouth_smile_on_the_first_frames_and_no_face_on_a_blank() -> None:
    # the clip opens on a crying face whose stretched mouth MediaPipe scores as mouthSmile (AU12 > 0.5):
    # the teacher's opinion, pinned here so a change of model or mapping shows
    pytest.importorskip("mediapipe", reason="the teacher needs mediapipe: pip install -e '.[teacher]'")
    from aunets.models.teacher import BlendshapeTeacher
    from tests.conftest import clip_frames

    frames = clip_frames(5)
    with BlendshapeTeacher() as teacher:
        scores = [teacher(f, i * 40) for i, f in enumerate(frames)]
        blank = teacher(np.full_like(frames[0], 90), 1000)
    assert blank is None
    au12 = np.array([s[BP4D_AUS.index(12)] for s in scores if s is not None])
    assert len(au12) == 5 and au12.mean() > 0.5
