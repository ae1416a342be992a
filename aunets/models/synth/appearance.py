"""Subject appearance: skin tone, procedural skin detail and eyebrows/lips painted in UV space, eyes, hair.

Colours are RGB floats in [0, 1] (display space; the renderer does no gamma). The UV detail texture is a
multiplicative albedo map over UV tile 0 (the face), ``TEXTURE_SIZE`` square, row 0 = v 1 (top of the face).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from aunets.models.synth.facemodel import FaceModel

TEXTURE_SIZE = 512

IRIS_COLOURS = np.array(
    [[0.25, 0.14, 0.07], [0.12, 0.07, 0.04], [0.30, 0.42, 0.55], [0.30, 0.40, 0.25], [0.40, 0.30, 0.15]], np.float32
)
HAIR_COLOURS = np.array(
    [[0.05, 0.04, 0.03], [0.16, 0.10, 0.06], [0.30, 0.19, 0.10], [0.55, 0.42, 0.25], [0.45, 0.20, 0.08],
     [0.45, 0.45, 0.45]], np.float32
)  # fmt: skip


@dataclass(frozen=True)
class Appearance:
    """How one subject looks. Lengths in mm, colours RGB in [0, 1]."""

    skin: tuple[float, float, float]
    lip_factor: tuple[float, float, float]  # multiplies skin inside the lip outline
    brow_colour: tuple[float, float, float]
    brow_thickness_mm: float  # at the inner end
    brow_taper: float  # tail thickness / inner thickness
    brow_arch_mm: float  # extra height of the arch (over landmark 19/24)
    brow_offset_mm: float  # brow centre below the brow landmark line
    brow_density: float  # 0..1 strength of the brow colour
    iris: tuple[float, float, float]
    hair: bool
    hair_colour: tuple[float, float, float]
    hairline_cm: float  # forehead height (y, cm) where the hair cap starts
    stubble: float  # 0..1 beard shadow
    blush: float  # 0..1 cheek redness
    specular: float  # skin specular strength
    shininess: float  # Blinn-Phong exponent
    texture_seed: int


def sample_appearance(rng: np.random.Generator) -> Appearance:
    """Random appearance: skin tones from dark to light, brows always visibly darker than the skin."""
    tone = rng.uniform(0.0, 1.0)
    dark, light = np.array([0.30, 0.18, 0.11]), np.array([0.92, 0.74, 0.62])
    skin = dark + (light - dark) * tone
    skin = skin * rng.uniform(0.94, 1.06, 3)
    skin[0] = max(skin[0], skin[1] + 0.04)
    hair_colour = HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))]
    brow = np.minimum(hair_colour * rng.uniform(0.8, 1.1), skin * rng.uniform(0.25, 0.45))
    lip = np.array([0.95, 0.66, 0.68]) * rng.uniform(0.85, 1.02, 3)
    return Appearance(
        skin=_t3(np.clip(skin, 0, 1)),
        lip_factor=_t3(lip),
        brow_colour=_t3(np.clip(brow, 0, 1)),
        brow_thickness_mm=float(rng.uniform(7.0, 12.0)),
        brow_taper=float(rng.uniform(0.3, 0.75)),
        brow_arch_mm=float(rng.uniform(-1.0, 3.0)),
        brow_offset_mm=float(rng.uniform(2.5, 4.5)),
        brow_density=float(rng.uniform(0.75, 1.0)),
        iris=_t3(IRIS_COLOURS[rng.integers(len(IRIS_COLOURS))] * rng.uniform(0.8, 1.2)),
        hair=bool(rng.uniform() < 0.75),
        hair_colour=_t3(hair_colour),
        hairline_cm=float(rng.uniform(7.5, 10.0)),
        stubble=float(rng.uniform(0.0, 1.0) if rng.uniform() < 0.3 else 0.0),
        blush=float(rng.uniform(0.0, 1.0)),
        specular=float(rng.uniform(0.05, 0.22)),
        shininess=float(rng.uniform(12.0, 40.0)),
        texture_seed=int(rng.integers(2**31)),
    )


def _t3(a: np.ndarray) -> tuple[float, float, float]:
    return float(a[0]), float(a[1]), float(a[2])


def landmark_uv(model: FaceModel) -> np.ndarray:
    """UV (68, 2) of the 68 landmark vertices, in tile 0."""
    out = np.zeros((68, 2), np.float32)
    for i, v in enumerate(model.landmarks68):
        rows, cols = np.nonzero(model.faces == v)
        uvs = model.uv[model.face_uv[rows, cols]]
        ok = uvs[:, 0] < 1.0
        out[i] = uvs[ok][0] if ok.any() else uvs[0]
    return out


def _uv_px(uv: np.ndarray, size: int) -> np.ndarray:
    return np.stack([uv[..., 0] * size, (1.0 - uv[..., 1]) * size], axis=-1)


def _smooth_noise(rng: np.random.Generator, size: int, scale: float) -> np.ndarray:
    """Zero-mean unit-ish noise with features of about ``scale`` texels."""
    n = max(2, int(size / scale))
    small = rng.standard_normal((n, n)).astype(np.float32)
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC)


def make_texture(app: Appearance, lm_uv: np.ndarray, size: int = TEXTURE_SIZE) -> np.ndarray:
    """Multiplicative albedo detail (size, size, 3) float32 for UV tile 0: pores, blotches, blush, brows, lips."""
    rng = np.random.default_rng(app.texture_seed)
    tex = np.ones((size, size, 3), np.float32)
    # skin: low-frequency blotches, pores, fine speckle
    blotch = _smooth_noise(rng, size, 40.0) * 0.035 + _smooth_noise(rng, size, 12.0) * 0.025
    pores = rng.standard_normal((size, size)).astype(np.float32)
    pores = cv2.GaussianBlur(pores, (0, 0), 0.8) * 0.05
    tex *= (1.0 + blotch + pores)[..., None]
    px = _uv_px(lm_uv, size)
    cm_v = size * 0.0335  # texels per cm along v (measured on the neutral mesh)
    cm_u = size * 0.044  # texels per cm along u
    # cheek blush (below the eyes, beside the nose)
    blush = np.zeros((size, size), np.float32)
    for eye, mouth in ((36, 48), (45, 54)):
        c = 0.5 * (px[eye] + px[mouth]) + np.array([0.0, -0.2 * cm_v])
        cv2.circle(blush, (int(c[0]), int(c[1])), int(1.6 * cm_u), 1.0, -1)
    blush = np.asarray(cv2.GaussianBlur(blush, (0, 0), 0.9 * cm_u), np.float32)
    tex *= 1.0 - app.blush * 0.12 * blush[..., None] * np.array([0.0, 1.0, 0.8], np.float32)
    # stubble below the nose line
    if app.stubble > 0:
        beard = np.zeros((size, size), np.float32)
        jaw = px[list(range(3, 14))]
        poly = np.concatenate([jaw, px[[54, 35, 33, 31, 48]]]).astype(np.int32)
        cv2.fillPoly(beard, [poly], 1.0)
        beard = np.asarray(cv2.GaussianBlur(beard, (0, 0), 0.4 * cm_u), np.float32)
        grain = np.clip(rng.standard_normal((size, size)).astype(np.float32) * 0.5 + 0.6, 0, 1)
        tex *= 1.0 - (app.stubble * 0.35 * beard * grain)[..., None]
    # under-eye shadow
    eyes = np.zeros((size, size), np.float32)
    for i in (40, 47):
        c = px[i] + np.array([0.0, 0.35 * cm_v])
        cv2.ellipse(eyes, (int(c[0]), int(c[1])), (int(0.9 * cm_u), int(0.25 * cm_v)), 0, 0, 360, 1.0, -1)
    eyes = np.asarray(cv2.GaussianBlur(eyes, (0, 0), 0.25 * cm_u), np.float32)
    tex *= 1.0 - 0.10 * eyes[..., None]
    # lips: the outer lip outline 48..59
    lips = np.zeros((size, size), np.float32)
    cv2.fillPoly(lips, [px[48:60].astype(np.int32)], 1.0)
    lips = np.asarray(cv2.GaussianBlur(lips, (0, 0), 0.05 * cm_u), np.float32)
    lip_f = np.asarray(app.lip_factor, np.float32)
    tex *= 1.0 + lips[..., None] * (lip_f - 1.0)
    # eyebrows
    skin = np.asarray(app.skin, np.float32)
    brow_f = np.asarray(app.brow_colour, np.float32) / np.maximum(skin, 1e-3)
    mask = _brow_mask(app, px, size, cm_u, cm_v, rng)
    tex *= 1.0 + (mask * app.brow_density)[..., None] * (brow_f - 1.0)
    return tex


def _brow_mask(
    app: Appearance, px: np.ndarray, size: int, cm_u: float, cm_v: float, rng: np.random.Generator
) -> np.ndarray:
    """Soft eyebrow coverage (size, size) in [0, 1] with hair strokes, below the landmark polylines 17-21/22-26."""
    mask = np.zeros((size, size), np.float32)
    for ids in (list(range(17, 22)), list(range(26, 21, -1))):  # inner end last -> parameter t: 0 = tail
        pts = px[ids].astype(np.float64)
        # densify the polyline
        t = np.linspace(0.0, 1.0, 40)
        seg = np.linspace(0.0, 1.0, len(pts))
        xs = np.interp(t, seg, pts[:, 0])
        ys = np.interp(t, seg, pts[:, 1])
        arch = np.sin(np.pi * np.clip((t - 0.0) / 0.8, 0, 1)) * app.brow_arch_mm * 0.1 * cm_v
        thick = app.brow_thickness_mm * 0.1 * cm_v * (app.brow_taper + (1 - app.brow_taper) * t)
        centre_y = ys + app.brow_offset_mm * 0.1 * cm_v - arch
        for k in range(len(t)):
            cv2.ellipse(
                mask, (int(xs[k]), int(centre_y[k])), (int(max(1, 0.12 * cm_u)), int(max(1, thick[k] / 2))),
                0, 0, 360, 1.0, -1,
            )
        # hair strokes: short slanted lines along the brow, pointing outward
        n_hairs = 160
        for _ in range(n_hairs):
            k = int(rng.integers(len(t)))
            jy = rng.uniform(-0.5, 0.5) * thick[k]
            x0, y0 = xs[k], centre_y[k] + jy
            direction = 1.0 if pts[-1, 0] > pts[0, 0] else -1.0  # tail -> inner: hairs point toward the tail
            dx = -direction * rng.uniform(0.15, 0.35) * cm_u
            dy = -rng.uniform(0.0, 0.12) * cm_v
            cv2.line(mask, (int(x0), int(y0)), (int(x0 + dx), int(y0 + dy)), 1.0, 1)
    mask = np.asarray(cv2.GaussianBlur(mask, (0, 0), 0.7), np.float32)
    fray = np.clip(1.0 + 0.35 * rng.standard_normal((size, size)).astype(np.float32), 0.5, 1.0)
    return np.clip(mask * fray, 0.0, 1.0)


def vertex_albedo(model: FaceModel, app: Appearance, base: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-vertex albedo (V, 3) and specular strength (V,) for a subject whose neutral mesh is ``base`` (V, 3)."""
    reg = model.vertex_region
    names = model.region_names
    skin = np.asarray(app.skin, np.float32)
    alb = np.tile(skin, (model.n_vertices, 1))
    spec = np.full(model.n_vertices, app.specular, np.float32)

    def setr(name: str, colour: np.ndarray, s: float) -> None:
        m = reg == names.index(name)
        alb[m] = colour
        spec[m] = s

    for side in ("L", "R"):
        setr(f"eye_socket_{side}", skin * np.array([0.7, 0.5, 0.5], np.float32), 0.3)
        setr(f"sclera_{side}", np.array([0.86, 0.83, 0.80], np.float32), 0.6)
        setr(f"iris_{side}", np.asarray(app.iris, np.float32), 0.6)
        setr(f"pupil_{side}", np.array([0.02, 0.02, 0.02], np.float32), 0.6)
    setr("mouth_socket", np.array([0.30, 0.09, 0.09], np.float32), 0.05)
    setr("gums_tongue", np.array([0.62, 0.26, 0.28], np.float32), 0.2)
    setr("teeth_upper", np.array([0.88, 0.85, 0.76], np.float32), 0.3)
    setr("teeth_lower", np.array([0.85, 0.82, 0.73], np.float32), 0.3)
    # darken the inside of the lips toward the mouth socket a little
    if app.hair:
        y, z = base[:, 1], base[:, 2]
        head = (reg == names.index("head_neck")) | (reg == names.index("face_skin"))
        cap = head & (((y > app.hairline_cm) & (z > -12.0)) | ((z < 2.0) & (y > 1.5)))
        soft = np.clip((y - app.hairline_cm) / 0.8, 0, 1)
        soft = np.where(z < 2.0, np.clip((y - 1.5) / 2.0, 0, 1), soft)
        hc = np.asarray(app.hair_colour, np.float32)
        alb[cap] = alb[cap] * (1 - soft[cap, None]) + hc * soft[cap, None]
        spec[cap] = 0.08
    return alb, spec
