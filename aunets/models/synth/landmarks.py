"""Fitting a real face photo with the bundled MediaPipe FaceLandmarker (478 3D landmarks, image mode).

Landmarks are returned in image pixels: ``(x, y, z)`` with x right, y down (pixel centres at integer + 0.5) and z
in the same pixel scale as x (MediaPipe normalises z by the image width; negative = toward the camera).
Index groups of the 478-point topology (MediaPipe's ``FaceLandmarksConnections``) are named below; "right" and
"left" are the subject's.

Needs ``pip install -e '.[teacher]'`` (mediapipe).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from aunets.core.errors import ConfigError
from aunets.models.face_landmarker import open_face_landmarker

log = logging.getLogger(__name__)

N_LANDMARKS = 478
LIPS_OUTER: tuple[int, ...] = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91,
                               146)  # fmt: skip
LIPS_INNER_UPPER: tuple[int, ...] = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LIPS_INNER_LOWER: tuple[int, ...] = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
RIGHT_EYE: tuple[int, ...] = (33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7)
LEFT_EYE: tuple[int, ...] = (263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390, 249)
RIGHT_BROW: tuple[int, ...] = (46, 53, 52, 65, 55, 70, 63, 105, 66, 107)
LEFT_BROW: tuple[int, ...] = (276, 283, 282, 295, 285, 300, 293, 334, 296, 336)
FACE_OVAL: tuple[int, ...] = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
                              152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67,
                              109)  # fmt: skip
MOUTH_CORNERS: tuple[int, int] = (61, 291)  # subject's right, left
INNER_BROWS: tuple[int, int] = (55, 285)
EYE_OUTER_CORNERS: tuple[int, int] = (33, 263)
EYE_INNER_CORNERS: tuple[int, int] = (133, 362)
NOSE_WINGS: tuple[int, int] = (129, 358)
NOSE_TIP = 1
CHIN = 152


class FaceLandmarkFitter:
    """MediaPipe FaceLandmarker in image mode: RGB uint8 (H, W, 3) -> landmarks (478, 3) float32 px of the largest
    face, or None when no face is found. Call :meth:`close` when done (or use it as a context manager)."""

    def __init__(self, model_path: Path | str | None = None) -> None:
        self._mp, self._landmarker = open_face_landmarker(
            model_path, "IMAGE", min_face_detection_confidence=0.3, min_face_presence_confidence=0.3
        )

    def __call__(self, image_rgb: np.ndarray) -> np.ndarray | None:
        h, w = image_rgb.shape[:2]
        image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=np.ascontiguousarray(image_rgb))
        result = self._landmarker.detect(image)
        if not result.face_landmarks:
            return None
        pts = np.array([(p.x * w, p.y * h, p.z * w) for p in result.face_landmarks[0]], np.float32)
        if pts.shape[0] != N_LANDMARKS:
            raise ConfigError(f"the MediaPipe model returned {pts.shape[0]} landmarks, expected {N_LANDMARKS}")
        return pts

    def close(self) -> None:
        self._landmarker.close()

    def __enter__(self) -> FaceLandmarkFitter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def similarity_fit(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Least-squares similarity (Umeyama): ``dst ~ s * src @ R.T + t`` for point sets (N, 3); returns (s, R (3, 3),
    t (3,)). R is a proper rotation (det +1)."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    cov = b.T @ a / len(src)
    u, sig, vt = np.linalg.svd(cov)
    d = np.ones(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[2] = -1.0
    r = u @ np.diag(d) @ vt
    var = (a**2).sum() / len(src)
    s = float((sig * d).sum() / var)
    t = mu_d - s * mu_s @ r.T
    return s, r.astype(np.float64), t.astype(np.float64)
