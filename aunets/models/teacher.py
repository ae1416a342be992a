"""MediaPipe blendshapes as a second AU detector (a teacher), for comparisons on real footage.

MediaPipe's FaceLandmarker (bundled in ``aunets/models/assets/mediapipe``, Apache-2.0) scores 52 ARKit-named
blendshapes per face. :data:`AU_FROM_BLENDSHAPES` maps them to the 12 BP4D AUs, the same correspondence the
synthetic generator uses in the other direction (``aunets.models.synth.facemodel.AU_BLENDSHAPES``). Blendshapes are
FACS-inspired, not FACS-coded: the teacher's scores are another detector's opinion, never ground truth.

Needs ``pip install -e '.[teacher]'`` (mediapipe).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import cv2
import numpy as np

from aunets.core.au import BP4D_AUS
from aunets.models.face_landmarker import open_face_landmarker

log = logging.getLogger(__name__)

# AU -> the blendshapes whose mean score stands for it (left/right pairs averaged)
AU_FROM_BLENDSHAPES: dict[int, tuple[str, ...]] = {
    1: ("browInnerUp",),
    2: ("browOuterUpLeft", "browOuterUpRight"),
    4: ("browDownLeft", "browDownRight"),
    6: ("cheekSquintLeft", "cheekSquintRight"),
    7: ("eyeSquintLeft", "eyeSquintRight"),
    10: ("mouthUpperUpLeft", "mouthUpperUpRight"),
    12: ("mouthSmileLeft", "mouthSmileRight"),
    14: ("mouthDimpleLeft", "mouthDimpleRight"),
    15: ("mouthFrownLeft", "mouthFrownRight"),
    17: ("mouthShrugLower",),
    23: ("mouthRollUpper", "mouthRollLower"),
    24: ("mouthPressLeft", "mouthPressRight"),
}


def blendshapes_to_aus(scores: Mapping[str, float], aus: tuple[int, ...] = BP4D_AUS) -> np.ndarray:
    """AU scores float32 (len(aus),) in [0, 1] from blendshape scores {name: score in [0, 1]}."""
    missing = sorted({n for au in aus for n in AU_FROM_BLENDSHAPES[au]} - set(scores))
    if missing:
        raise ValueError(f"blendshape scores lack {missing}")
    return np.array([np.mean([scores[n] for n in AU_FROM_BLENDSHAPES[au]]) for au in aus], np.float32)


class BlendshapeTeacher:
    """MediaPipe FaceLandmarker in video mode: one BGR uint8 frame (H, W, 3) and its time in ms at a time ->
    AU scores (12,) of the largest face, or None when no face is found. Call :meth:`close` when done."""

    def __init__(self, model_path: Path | str | None = None) -> None:
        self._mp, self._landmarker = open_face_landmarker(model_path, "VIDEO", output_face_blendshapes=True)
        self._last_ms = -1

    def __call__(self, frame_bgr: np.ndarray, t_ms: int) -> np.ndarray | None:
        t_ms = max(int(t_ms), self._last_ms + 1)  # video mode wants strictly increasing timestamps
        self._last_ms = t_ms
        image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB))
        result = self._landmarker.detect_for_video(image, t_ms)
        if not result.face_blendshapes:
            return None
        return blendshapes_to_aus({c.category_name: float(c.score) for c in result.face_blendshapes[0]})

    def close(self) -> None:
        self._landmarker.close()

    def __enter__(self) -> BlendshapeTeacher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
