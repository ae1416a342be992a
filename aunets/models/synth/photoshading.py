"""What a warp of a neutral photo cannot show: the furrows, wrinkles and bulges AUs make in the skin.

Drawn per frame from the *moved* landmarks (so they follow the face) as soft multiplicative shading:
AU1/AU2 horizontal forehead lines (centre / sides), AU4 vertical glabella lines and a nose-root fold, AU6 crow's
feet, the infraorbital furrow and a lit cheek bulge, AU10 (and AU12, AU6 a little) a deeper nasolabial fold,
AU14 dimples beside the mouth corners, AU15 folds below the corners, AU17 the mentolabial crease and a lit chin
boss, AU23/AU24 a darker lip line. Strength = AU intensity x the person's ``crease`` factor (age, skin), per side
for bilateral features. Lengths are in units of the eye-corner distance ``u``; positions from landmark ids of
:mod:`aunets.models.synth.landmarks`.
"""

from __future__ import annotations

import cv2
import numpy as np

from aunets.core.au import BP4D_AUS

_AU = {au: i for i, au in enumerate(BP4D_AUS)}
# (outer eye corner, lower-lid points outer->inner, mouth corner, nose-wing point, outward x sign in the image)
_SIDES = (
    (33, (7, 163, 144, 145, 153), 61, 98, -1.0, 1),  # subject's right = image left; side column 1 (right)
    (263, (249, 390, 373, 374, 380), 291, 327, 1.0, 0),  # subject's left = image right; side column 0 (left)
)


def _curve(p0: np.ndarray, p1: np.ndarray, bend: np.ndarray, n: int = 12) -> np.ndarray:
    """Quadratic curve from p0 to p1 whose middle is pushed by ``bend`` (px), (n, 2)."""
    t = np.linspace(0.0, 1.0, n)[:, None]
    c = (p0 + p1) / 2 + 2 * bend
    return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * c + t**2 * p1


class _Canvas:
    def __init__(self, h: int, w: int, origin: np.ndarray) -> None:
        self.dark = np.zeros((h, w), np.float32)
        self.light = np.zeros((h, w), np.float32)
        self.origin = origin

    def line(self, pts: np.ndarray, strength: float, width: float, light: bool = False) -> None:
        if strength <= 0.01:
            return
        layer = self.light if light else self.dark
        p = np.round((pts - self.origin) * 16).astype(np.int32)
        cv2.polylines(layer, [p], False, float(strength), max(1, round(width)), cv2.LINE_AA, shift=4)

    def blob(self, centre: np.ndarray, axes: tuple[float, float], angle: float, strength: float,
             light: bool = False) -> None:  # fmt: skip
        if strength <= 0.01:
            return
        layer = self.light if light else self.dark
        c = np.round((centre - self.origin) * 16).astype(np.int32)
        ax = (max(1, round(axes[0] * 16)), max(1, round(axes[1] * 16)))
        cv2.ellipse(layer, (int(c[0]), int(c[1])), ax, angle, 0, 360, float(strength), -1, cv2.LINE_AA, shift=4)


def shading(
    shape: tuple[int, int], origin: tuple[int, int], lm: np.ndarray, intensity: np.ndarray, side: np.ndarray,
    crease: float = 1.0,
) -> np.ndarray | None:  # fmt: skip
    """(h, w, 3) float32 RGB multiplier for a window of ``shape`` at ``origin`` (x0, y0) px, or None when no AU is on.

    ``lm`` (478, 2+) moved landmarks px; ``intensity`` (12,) in [0, 1]; ``side`` (12, 2) left/right scale."""
    if float(intensity.max()) < 0.05:
        return None
    p = lm[:, :2].astype(np.float64)
    u = float(np.linalg.norm(p[263] - p[33]))
    cv = _Canvas(shape[0], shape[1], np.array(origin, np.float64) + 0.5)
    k = float(crease)

    def amount(au: int, s: int | None = None) -> float:
        a = float(intensity[_AU[au]])
        if s is not None:
            a *= float(side[_AU[au], s])
        return k * a

    up = p[10] - p[152]
    up /= np.linalg.norm(up)  # face "up" direction in the image
    right = np.array([-up[1], up[0]])  # image-right direction of the face
    if right[0] < 0:
        right = -right
    # AU1 / AU2: horizontal forehead lines (a crease with a lit ridge above), centre for AU1, sides for AU2
    brow_mid = (p[55] + p[285]) / 2
    for j, (h, half) in enumerate(((0.2, 0.2), (0.29, 0.26), (0.38, 0.17))):
        y = brow_mid + up * h * u + right * (0.02 * (j - 1)) * u
        a1 = amount(1) * (0.14 - 0.025 * j)
        line = _curve(y - right * half * u, y + right * half * u, up * 0.025 * u)
        cv.line(line, a1, 0.018 * u)
        cv.line(line + up * 0.03 * u, 0.6 * a1, 0.03 * u, light=True)
        for s, sign in ((1, -1.0), (0, 1.0)):
            a2 = amount(2, s) * (0.13 - 0.025 * j)
            c0 = y + right * sign * 0.2 * u
            side_line = _curve(c0, c0 + right * sign * 0.26 * u - up * 0.05 * u, up * 0.02 * u)
            cv.line(side_line, a2, 0.016 * u)
            cv.line(side_line + up * 0.03 * u, 0.6 * a2, 0.03 * u, light=True)
    # AU4: short vertical glabella furrows with lit bulges beside them, a fold at the nose root
    a4 = amount(4)
    for sign in (-1.0, 1.0):
        base = brow_mid + right * sign * 0.05 * u
        furrow = _curve(base, base + up * 0.12 * u + right * sign * 0.015 * u, right * sign * 0.008 * u)
        cv.line(furrow, 0.26 * a4, 0.02 * u)
        cv.line(furrow + right * sign * 0.035 * u, 0.5 * 0.26 * a4, 0.03 * u, light=True)
    root = p[168]
    cv.line(_curve(root - right * 0.07 * u, root + right * 0.07 * u, up * 0.01 * u), 0.14 * a4, 0.02 * u)
    for corner, lower, mouth, wing, out, s in _SIDES:
        o = right * out
        # AU6: crow's feet, infraorbital furrow, lit cheek bulge
        a6 = amount(6, s)
        start = p[corner] + o * 0.06 * u
        for ang in (-28.0, -8.0, 12.0, 32.0):
            t = np.deg2rad(ang)
            d = o * np.cos(t) - up * np.sin(t)
            cv.line(np.stack([start + d * 0.02 * u, start + d * 0.14 * u]), 0.26 * a6, 0.018 * u)
        lid = p[list(lower)] - up * 0.09 * u
        cv.line(lid, 0.22 * a6 + 0.08 * amount(7, s), 0.03 * u)
        cheek = (p[corner] + p[mouth]) / 2 - up * 0.02 * u + o * 0.02 * u
        cv.blob(cheek, (0.17 * u, 0.11 * u), float(np.degrees(np.arctan2(up[1], up[0]))), 0.1 * a6, light=True)
        # AU7: a fine fold under the lower lid
        cv.line(p[list(lower)] - up * 0.04 * u, 0.14 * amount(7, s), 0.015 * u)
        # nasolabial fold: AU10 most, AU12 and AU6 some
        fold = 0.2 * amount(10, s) + 0.12 * amount(12, s) + 0.05 * a6
        top = p[wing] + o * 0.04 * u + up * 0.02 * u
        end = p[mouth] + o * 0.08 * u - up * 0.05 * u
        path = _curve(top, end, o * 0.045 * u)
        cv.line(path, fold, 0.045 * u)
        cv.line(path + o * 0.06 * u, 0.5 * fold, 0.07 * u, light=True)
        # AU14: dimple beside the corner; AU15: fold below the corner
        cv.blob(p[mouth] + o * 0.06 * u, (0.02 * u, 0.05 * u), 0.0, 0.4 * amount(14, s))
        cv.line(_curve(p[mouth] + o * 0.03 * u - up * 0.04 * u, p[mouth] + o * 0.06 * u - up * 0.14 * u,
                       o * 0.01 * u), 0.16 * amount(15, s), 0.03 * u)  # fmt: skip
    # AU17: mentolabial crease, lit chin boss
    a17 = amount(17)
    crease_c = p[17] + (p[152] - p[17]) * 0.32
    cv.line(_curve(crease_c - right * 0.14 * u, crease_c + right * 0.14 * u, up * 0.04 * u), 0.3 * a17, 0.03 * u)
    cv.blob(p[17] + (p[152] - p[17]) * 0.62, (0.13 * u, 0.08 * u), 0.0, 0.1 * a17, light=True)
    # AU23 / AU24: darker, thinner lip line
    slit = p[[78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308]]
    cv.line(slit, 0.3 * amount(24) + 0.25 * amount(23), 0.02 * u)
    sigma = max(0.7, 0.016 * u)
    dark = cv2.GaussianBlur(cv.dark, (0, 0), sigma)
    light = cv2.GaussianBlur(cv.light, (0, 0), 2.5 * sigma)
    # a fold's shadow keeps more red than green and blue (blood under thin, compressed skin)
    tint = np.array([0.8, 1.0, 1.05], np.float32)
    return (1.0 - np.clip(dark, 0, 0.8)[..., None] * tint) * (1.0 + light[..., None])
