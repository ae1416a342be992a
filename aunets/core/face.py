"""Faces in a frame: boxes, detections and tracks (the types every layer shares).

Boxes are ``(x, y, w, h)`` in frame pixels (floats).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Detection:
    """One detected face: ``box`` (x, y, w, h) px, ``score`` in [0, 1], ``landmarks`` (5, 2) px."""

    box: Box
    score: float
    landmarks: np.ndarray = field(repr=False, compare=False)


@dataclass
class Track:
    """A face followed across frames; ``box`` is the smoothed box, ``misses`` consecutive failed detections,
    ``landmarks`` the detector's 5 points (5, 2) px of its last detection (None: not known)."""

    track_id: int
    box: Box
    score: float
    misses: int = 0
    age: int = 0
    landmarks: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def area(self) -> float:
        return self.box[2] * self.box[3]


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0
