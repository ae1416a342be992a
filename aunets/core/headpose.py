"""Head pose from the face detector's 5 landmarks: ``cv2.solvePnP`` against a generic 3D face.

The landmarks are YuNet's, in its order: the eye on the image's left, the eye on the image's right, the nose tip,
the mouth corner on the image's left, the one on the image's right, (5, 2) frame pixels. :data:`GENERIC_FACE`
places the same 5 points on an average adult face (millimetres, nose tip at the origin; x to the image's right, y
down, z away from the camera, the face looking at the camera). The camera is a pinhole with its focal length
``focal_scale`` times the frame width (about 53 degrees of horizontal view: a webcam) and its centre in the middle
of the frame; five points and an assumed focal length leave the angles a few degrees off (measured on synthetic
faces by ``benchmarks/head_pose.py``).

Angles follow OpenFace 2.2's ``pose_Rx``, ``pose_Ry``, ``pose_Rz``: radians, the rotation of the head in the
camera's frame as ``R = Rx @ Ry @ Rz``; ``Rx`` is pitch (positive: chin down), ``Ry`` yaw (positive: the face
turns towards the image's left, the subject's right), ``Rz`` roll (positive: the top of the head tilts towards the
image's right).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

GENERIC_FACE = np.array(
    [
        [-31.5, -36.0, 31.0],  # eye, image left
        [31.5, -36.0, 31.0],  # eye, image right
        [0.0, 0.0, 0.0],  # nose tip
        [-25.0, 33.0, 24.0],  # mouth corner, image left
        [25.0, 33.0, 24.0],  # mouth corner, image right
    ],
    dtype=np.float64,
)
"""The 5 landmarks on an average adult face, (5, 3) mm (interocular 63 mm, mouth 50 mm wide; approximate)."""


@dataclass(frozen=True)
class HeadPose:
    """``rx``, ``ry``, ``rz``: pitch, yaw and roll in radians (OpenFace's ``pose_Rx/Ry/Rz``, see the module)."""

    rx: float
    ry: float
    rz: float

    def degrees(self) -> tuple[float, float, float]:
        """(pitch, yaw, roll) in degrees."""
        return math.degrees(self.rx), math.degrees(self.ry), math.degrees(self.rz)


def camera_matrix(width: int, height: int, focal_scale: float = 1.0) -> np.ndarray:
    """The assumed pinhole camera (3, 3) of a ``width`` x ``height`` frame."""
    f = focal_scale * width
    return np.array([[f, 0.0, width / 2.0], [0.0, f, height / 2.0], [0.0, 0.0, 1.0]])


def euler_xyz(rotation: np.ndarray) -> HeadPose:
    """(rx, ry, rz) radians with ``rotation == Rx(rx) @ Ry(ry) @ Rz(rz)`` (3, 3)."""
    r = rotation
    ry = math.asin(max(-1.0, min(1.0, float(r[0, 2]))))
    return HeadPose(math.atan2(-float(r[1, 2]), float(r[2, 2])), ry, math.atan2(-float(r[0, 1]), float(r[0, 0])))


def rotation_xyz(pose: HeadPose) -> np.ndarray:
    """The (3, 3) rotation ``Rx(rx) @ Ry(ry) @ Rz(rz)``."""
    cx, sx, cy, sy, cz, sz = (math.cos(pose.rx), math.sin(pose.rx), math.cos(pose.ry), math.sin(pose.ry),
                              math.cos(pose.rz), math.sin(pose.rz))  # fmt: skip
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rx @ ry @ rz


def estimate_head_pose(landmarks: np.ndarray, width: int, height: int, focal_scale: float = 1.0) -> HeadPose | None:
    """The head pose from the detector's 5 landmarks (5, 2) px in a ``width`` x ``height`` frame; None when they
    are missing (NaN), too close together, or the solver fails."""
    points = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    if not np.isfinite(points).all():
        return None
    try:  # SQPnP refuses points too close together (a face a few pixels wide)
        ok, rvec, _ = cv2.solvePnP(GENERIC_FACE, points, camera_matrix(width, height, focal_scale), None,
                                   flags=cv2.SOLVEPNP_SQPNP)  # fmt: skip
    except cv2.error:
        return None
    if not ok:
        return None
    rotation, _ = cv2.Rodrigues(rvec)
    return euler_xyz(rotation)
