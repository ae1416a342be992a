"""A real person's neutral photo, fitted with 478 landmarks, made to show AUs and small head rotations.

Each ICT blendshape's landmark displacement (:class:`aunets.models.synth.correspondence.Correspondence`, cm) is carried
onto the photo by the similarity that best maps the mean ICT face's landmarks onto the person's (scale in px/cm
and the photo's head rotation). A frame's landmarks are ``neutral + sum_k w_k * basis_k`` (px), rotated about a
head pivot by the pose change and projected orthographically; the photo is warped piecewise-affinely
(:mod:`aunets.models.synth.photowarp`) with anchor rings outside the face (hair, ears, neck follow part of the head
motion) and fixed window-border anchors. The eyeballs move rigidly (the lids slide over them, nothing smears) and
a dark mouth with teeth is drawn where the lips part further than in the photo. Wrinkle shading:
:mod:`aunets.models.synth.photoshading`.

Image axes: x right, y down, z away from the camera, pixel units (MediaPipe's); ICT axes are flipped in y and z.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from aunets.models.synth.correspondence import Correspondence
from aunets.models.synth.facemodel import FaceModel
from aunets.models.synth.landmarks import (
    FACE_OVAL,
    LEFT_EYE,
    LIPS_INNER_LOWER,
    LIPS_INNER_UPPER,
    MOUTH_CORNERS,
    RIGHT_EYE,
    similarity_fit,
)
from aunets.models.synth.photoshading import shading
from aunets.models.synth.photowarp import backward_maps, triangulate
from aunets.models.synth.renderer import Pose

FLIP = np.array([1.0, -1.0, -1.0])  # ICT axes (y up, z forward) <-> image axes (y down, z away)
HEAD_PIVOT_CM = np.array([0.0, -2.0, 5.0])  # ICT coordinates of the point the head turns about
IRIS_CENTRES: tuple[int, int] = (468, 473)
# anchor rings around the face oval: (radius factor from the face centre, share of the head motion they follow)
RINGS: tuple[tuple[float, float], ...] = ((1.3, 0.85), (1.75, 0.35))
N_BORDER = 8  # anchors per window side
# depth relief kept when turning the head: a 2D warp cannot hide what turns out of view, so the full parallax of
# the nose against the cheeks would fold the far cheek over itself; 0.6 keeps most of the perspective cue
DEPTH_RELIEF = 0.6


def pose_angles(rotation_ict: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) degrees of ``Rz(roll) @ Ry(yaw) @ Rx(pitch)`` (:class:`aunets.models.synth.renderer.Pose`)."""
    r = rotation_ict
    yaw = float(np.degrees(-np.arcsin(np.clip(r[2, 0], -1.0, 1.0))))
    pitch = float(np.degrees(np.arctan2(r[2, 1], r[2, 2])))
    roll = float(np.degrees(np.arctan2(r[1, 0], r[0, 0])))
    return yaw, pitch, roll


@dataclass
class PhotoFace:
    """A fitted neutral face in one image (the frame geometry the warp works in).

    ``image`` (H, W, 3) uint8 RGB; ``landmarks`` (478, 3) float32 px (image axes); ``scale`` px per cm;
    ``rotation`` (3, 3) ICT->image rotation of the fit; ``frontal`` (3, 3) the same fit on the frontal render of
    the ICT head (MediaPipe's own tilt, :attr:`Correspondence.reference`); ``pivot`` (3,) px the head's turning
    point; ``basis`` (K, 478, 3) px landmark displacement per unit blendshape weight for ``model.expr_names``;
    ``anchors`` (A, 3) px, ``follow`` (A,) share of head motion; ``tris`` (T, 3) triangulation of landmarks +
    anchors; ``roi`` (x0, y0, w, h) the warped window.
    """

    image: np.ndarray
    landmarks: np.ndarray
    scale: float
    rotation: np.ndarray
    frontal: np.ndarray
    pivot: np.ndarray
    basis: np.ndarray
    anchors: np.ndarray
    follow: np.ndarray
    tris: np.ndarray
    roi: tuple[int, int, int, int]

    @classmethod
    def fit(cls, image: np.ndarray, landmarks: np.ndarray, model: FaceModel, corr: Correspondence) -> PhotoFace:
        lm = np.asarray(landmarks, np.float64)
        ict = corr.points(model.neutral).astype(np.float64) * FLIP
        s, r, t = similarity_fit(ict, lm)
        _, frontal, _ = similarity_fit(ict, corr.reference.astype(np.float64))
        d = model.expr_deltas.reshape(len(model.expr_names), -1, 3)
        basis = np.einsum("nj,knjc->knc", corr.weights, d[:, corr.vertices]) * FLIP
        basis = (s * basis @ r.T).astype(np.float32)
        pivot = s * (HEAD_PIVOT_CM * FLIP) @ r.T + t
        h, w = image.shape[:2]
        oval = lm[list(FACE_OVAL)]
        centre = oval[:, :2].mean(0)
        rings, follow = [], []
        for factor, share in RINGS:
            ring = oval.copy()
            ring[:, :2] = centre + factor * (oval[:, :2] - centre)
            rings.append(ring)
            follow.append(np.full(len(ring), share))
        outer = rings[-1][:, :2]
        pad = 0.08 * (outer[:, 1].max() - outer[:, 1].min())
        x0, y0 = max(0, int(outer[:, 0].min() - pad)), max(0, int(outer[:, 1].min() - pad))
        x1, y1 = min(w, int(np.ceil(outer[:, 0].max() + pad))), min(h, int(np.ceil(outer[:, 1].max() + pad)))
        for ring in rings:
            ring[:, 0] = np.clip(ring[:, 0], x0 + 2, x1 - 2)
            ring[:, 1] = np.clip(ring[:, 1], y0 + 2, y1 - 2)
        u = np.linspace(0.0, 1.0, N_BORDER + 1)[:-1]
        bx = np.concatenate([x0 + u * (x1 - x0), np.full_like(u, x1), x1 - u * (x1 - x0), np.full_like(u, x0)])
        by = np.concatenate([np.full_like(u, y0), y0 + u * (y1 - y0), np.full_like(u, y1), y1 - u * (y1 - y0)])
        border = np.stack([bx, by, np.full_like(bx, pivot[2])], 1)
        anchors = np.concatenate([*rings, border]).astype(np.float32)
        follow_all = np.concatenate([*follow, np.zeros(len(border))]).astype(np.float32)
        tris = triangulate(np.concatenate([lm[:, :2], anchors[:, :2]]), w, h)
        return cls(image, lm.astype(np.float32), s, r, frontal, pivot.astype(np.float32), basis, anchors, follow_all,
                   tris, (x0, y0, x1 - x0, y1 - y0))  # fmt: skip

    @property
    def photo_rotation(self) -> np.ndarray:
        """(3, 3) head rotation in the photo, ICT axes (:class:`Pose` convention), relative to the frontal render."""
        return np.diag(FLIP) @ self.rotation @ self.frontal.T @ np.diag(FLIP)

    @property
    def photo_pose(self) -> tuple[float, float, float]:
        """(yaw, pitch, roll) degrees of the head in the photo."""
        return pose_angles(self.photo_rotation)

    def head_rotation(self, yaw: float, pitch: float, roll: float) -> np.ndarray:
        """(3, 3) image-axes rotation of a head-pose change (degrees, :class:`Pose` convention)."""
        return np.diag(FLIP) @ Pose(yaw, pitch, roll).rotation().astype(np.float64) @ np.diag(FLIP)

    def moved_landmarks(
        self, weights: np.ndarray, rotation: tuple[float, float, float] = (0.0, 0.0, 0.0)
    ) -> np.ndarray:
        """Landmarks (478, 3) float32 px for blendshape weights (K,) and a head-pose change (yaw, pitch, roll) deg."""
        active = np.flatnonzero(weights)
        pts = self.landmarks.astype(np.float64).copy()
        if len(active):
            pts += np.einsum("k,knc->nc", weights[active], self.basis[active])
        # the inner lip contours never cross (near the corners the ICT correspondence is only approximate)
        up, lo = list(LIPS_INNER_UPPER[1:-1]), list(LIPS_INNER_LOWER[1:-1])
        crossed = pts[up, 1] > pts[lo, 1]
        if crossed.any():
            mid = (pts[up, 1] + pts[lo, 1]) / 2
            pts[np.array(up)[crossed], 1] = mid[crossed]
            pts[np.array(lo)[crossed], 1] = mid[crossed]
        if rotation != (0.0, 0.0, 0.0):
            pts = self._turn(pts, rotation)
        return pts.astype(np.float32)

    def _turn(self, pts: np.ndarray, rotation: tuple[float, float, float]) -> np.ndarray:
        """Points (N, 3) px turned about the head pivot (depth relief scaled by :data:`DEPTH_RELIEF`)."""
        rel = (pts - self.pivot) * np.array([1.0, 1.0, DEPTH_RELIEF])
        out = rel @ self.head_rotation(*rotation).T
        out[:, 2] /= DEPTH_RELIEF
        return out + self.pivot

    def moved_anchors(self, moved: np.ndarray) -> np.ndarray:
        """Anchors (A, 3) px for moved landmarks (478, 3): each ring point follows its face-oval point by its share
        of the motion (so rings never cross the face), the window border stays."""
        oval = list(FACE_OVAL)
        motion = np.tile(moved[oval] - self.landmarks[oval], (len(RINGS), 1))
        out = self.anchors.copy()
        out[: len(motion)] += self.follow[: len(motion), None] * motion
        return out

    def render(
        self,
        weights: np.ndarray,
        rotation: tuple[float, float, float] = (0.0, 0.0, 0.0),
        intensity: np.ndarray | None = None,
        side: np.ndarray | None = None,
        crease: float = 1.0,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The warped image (H, W, 3) uint8 RGB and its landmarks (478, 3) px.

        ``weights`` (K,) blendshape weights; ``rotation`` head-pose change (yaw, pitch, roll) degrees; with AU
        ``intensity`` (12,) (and ``side`` (12, 2) left/right scale) the AUs' wrinkles are shaded
        (:func:`aunets.models.synth.photoshading.shading`, strength x ``crease``)."""
        dst_lm = self.moved_landmarks(weights, rotation)
        dst = np.concatenate([dst_lm[:, :2], self.moved_anchors(dst_lm)[:, :2]])
        src = np.concatenate([self.landmarks[:, :2], self.anchors[:, :2]])
        x0, y0, w, h = self.roi
        mx, my = backward_maps(dst, src, self.tris, self.roi)
        out = self.image.copy()
        win = cv2.remap(self.image, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        self._eyeballs(win, dst_lm)
        win = self._mouth(win, dst_lm)
        if intensity is not None:
            sides = np.ones((len(intensity), 2), np.float32) if side is None else side
            mult = shading(win.shape[:2], (x0, y0), dst_lm, intensity, sides, crease)
            if mult is not None:
                win = np.clip(win * mult + 0.5, 0, 255).astype(np.uint8)
        out[y0 : y0 + h, x0 : x0 + w] = win
        return out, dst_lm

    def _eyeballs(self, win: np.ndarray, dst: np.ndarray) -> None:
        """Inside the moved eye openings paste the photo's eye shifted rigidly with the iris (in place on ``win``,
        the warped window); the edge is feathered over about a pixel in colour, so the lid margin neither cuts the
        lashes nor drags the iris."""
        x0, y0 = self.roi[0], self.roi[1]
        h, w = win.shape[:2]
        for eye, iris in ((RIGHT_EYE, IRIS_CENTRES[0]), (LEFT_EYE, IRIS_CENTRES[1])):
            poly = dst[list(eye), :2] - np.array([x0, y0]) - 0.5
            bx0, by0 = max(0, int(poly[:, 0].min()) - 3), max(0, int(poly[:, 1].min()) - 3)
            bx1, by1 = min(w, int(poly[:, 0].max()) + 4), min(h, int(poly[:, 1].max()) + 4)
            if bx1 <= bx0 or by1 <= by0:
                continue
            mask = np.zeros((by1 - by0, bx1 - bx0), np.float32)
            cv2.fillPoly(mask, [np.round((poly - [bx0, by0]) * 16).astype(np.int32)], 1.0, cv2.LINE_AA, shift=4)
            mask = cv2.GaussianBlur(mask, (0, 0), 0.6)[..., None]
            shift = dst[iris, :2] - self.landmarks[iris, :2]
            m = np.array([[1.0, 0.0, bx0 + x0 - shift[0]], [0.0, 1.0, by0 + y0 - shift[1]]], np.float32)
            flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
            eyeball = cv2.warpAffine(self.image, m, (bx1 - bx0, by1 - by0), flags=flags, borderMode=cv2.BORDER_REFLECT)
            sub = win[by0:by1, bx0:bx1].astype(np.float32)
            win[by0:by1, bx0:bx1] = np.clip(sub + mask * (eyeball - sub) + 0.5, 0, 255).astype(np.uint8)

    def _mouth(self, win: np.ndarray, dst: np.ndarray) -> np.ndarray:
        """Dark mouth and teeth where the moved inner lip contour is open wider than in the photo (in place on the
        mouth's bounding box of ``win``; returns ``win``)."""
        up, lo = list(LIPS_INNER_UPPER), list(LIPS_INNER_LOWER)
        gap_src = float(np.mean(self.landmarks[lo[3:8], 1] - self.landmarks[up[3:8], 1]))
        gap_dst = float(np.mean(dst[lo[3:8], 1] - dst[up[3:8], 1]))
        width = float(np.linalg.norm(dst[MOUTH_CORNERS[0], :2] - dst[MOUTH_CORNERS[1], :2]))
        strength = float(np.clip((gap_dst - max(gap_src, 0.0) - 1.0) / 2.5, 0.0, 1.0))
        if strength <= 0.0 or width < 4:
            return win
        upper = dst[up, :2] - np.array([self.roi[0] + 0.5, self.roi[1] + 0.5])
        lower = dst[lo, :2] - np.array([self.roi[0] + 0.5, self.roi[1] + 0.5])
        poly = np.concatenate([upper, lower[::-1][1:-1]])
        h, w = win.shape[:2]
        bx0, by0 = max(0, int(poly[:, 0].min()) - 3), max(0, int(poly[:, 1].min()) - 3)
        bx1, by1 = min(w, int(poly[:, 0].max()) + 4), min(h, int(poly[:, 1].max()) + 4)
        if bx1 <= bx0 or by1 <= by0:
            return win
        o = np.array([bx0, by0], np.float64)
        upper, lower, poly = upper - o, lower - o, poly - o
        bh, bw = by1 - by0, bx1 - bx0

        def fill(pts: np.ndarray, value: float, into: np.ndarray) -> None:
            cv2.fillPoly(into, [np.round(pts * 16).astype(np.int32)], float(value), cv2.LINE_AA, shift=4)

        mask = np.zeros((bh, bw), np.float32)
        fill(poly, 1.0, mask)
        nose = self.image[int(dst[1, 1]) - 2 : int(dst[1, 1]) + 3, int(dst[1, 0]) - 2 : int(dst[1, 0]) + 3]
        lum = float(np.clip(nose.reshape(-1, 3).mean() / 170.0, 0.5, 1.3)) if nose.size else 1.0
        cx = float(np.mean(upper[:, 0]))
        xs = np.arange(bw, dtype=np.float32)
        rel = (xs - cx) / (0.5 * width)
        layer = np.empty((bh, bw, 3), np.float32)
        layer[:] = np.array([58.0, 22.0, 24.0]) * lum
        layer *= np.clip(1.0 - 0.5 * rel**2, 0.4, 1.0)[None, :, None]  # darker toward the corners
        teeth_h = 0.13 * width
        tmask = np.zeros((bh, bw), np.float32)
        fill(np.concatenate([upper, (upper + np.array([0.0, teeth_h]))[::-1]]), 1.0, tmask)
        if gap_dst > 0.22 * width:
            fill(np.concatenate([lower, (lower - np.array([0.0, 0.6 * teeth_h]))[::-1]]), 0.8, tmask)
        # tooth separations (incisors, laterals, canines, premolars), a shadow under the upper lip
        sep = np.zeros((bh, bw), np.float32)
        top_y = np.interp(xs, upper[:, 0], upper[:, 1])
        for frac in (0.0, 0.11, 0.195, 0.275, 0.345, 0.41):
            for sign in (-1.0, 1.0) if frac else (1.0,):
                x = cx + sign * frac * width
                y0 = float(np.interp(x, upper[:, 0], upper[:, 1]))
                cv2.line(sep, (round(x * 16), round(y0 * 16)), (round(x * 16), round((y0 + teeth_h) * 16)), 0.45,
                         max(1, round(0.01 * width)), cv2.LINE_AA, shift=4)  # fmt: skip
        yy = np.arange(bh, dtype=np.float32)[:, None]
        shade = np.clip(0.72 + 0.28 * (yy - top_y[None, :]) / max(1.0, 0.35 * teeth_h), 0.72, 1.0)
        fall = np.clip(1.0 - 0.8 * rel**2, 0.2, 1.0)[None, :]
        tooth = (np.array([236.0, 228.0, 212.0]) * float(np.clip(lum, 0.85, 1.05)))[None, None, :] * (
            (shade * fall * (1.0 - sep))[..., None]
        )
        layer = layer * (1 - tmask[..., None]) + tooth * tmask[..., None]
        layer = cv2.GaussianBlur(layer, (0, 0), max(0.5, 0.01 * width))
        alpha = cv2.GaussianBlur(mask, (0, 0), 0.7)[..., None] * strength
        sub = win[by0:by1, bx0:bx1].astype(np.float32)
        win[by0:by1, bx0:bx1] = np.clip(sub * (1 - alpha) + layer * alpha + 0.5, 0, 255).astype(np.uint8)
        return win
