"""Render a posed, expressive subject: a face-centred square crop and a full camera frame over a background.

Geometry: head pose ``R = Rz(roll) @ Ry(yaw) @ Rx(pitch)`` (degrees; yaw > 0 = subject turns to their left,
pitch > 0 = chin down), then a pinhole camera on +z at ``camera_distance_cm`` looking at the origin. Normalised
image coordinates are ``(x, -y) / depth`` (x right, y down). A per-sequence similarity (``Placement``) maps
them to full-frame pixels; the crop is the square of side ``margin * max(box_w, box_h)`` around the face box
(same rounding as :func:`aunets.core.crop.crop_square`), rendered directly at ``size`` (optionally supersampled).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from aunets.core.face import Box
from aunets.models.synth.facemodel import FaceModel
from aunets.models.synth.rasterizer import add_sensor_noise, rasterize_occluded, shade, shade_composite
from aunets.models.synth.subject import PreparedSubject
from aunets.models.synth.vertices import near_points, vertex_stage


@dataclass(frozen=True)
class Pose:
    """Head pose: angles in degrees, translation in cm (x right, y up, z toward the camera)."""

    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0
    tx: float = 0.0
    ty: float = 0.0
    tz: float = 0.0

    def rotation(self) -> np.ndarray:
        """(3, 3) float32 ``Rz(roll) @ Ry(yaw) @ Rx(pitch)``."""
        y, p, r = np.deg2rad([self.yaw, self.pitch, self.roll])
        rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
        ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
        rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
        return (rz @ ry @ rx).astype(np.float32)


@dataclass(frozen=True)
class Lighting:
    """Directional key light + ambient, in camera space. ``direction`` points from the face toward the light."""

    direction: tuple[float, float, float] = (0.3, 0.4, 1.0)
    colour: tuple[float, float, float] = (1.0, 1.0, 1.0)
    intensity: float = 0.75
    ambient: tuple[float, float, float] = (0.35, 0.35, 0.35)
    specular: float = 1.0  # multiplies the subject's skin specular strength
    crease: float = 1.4  # strength of fold shading from surface compression (AU wrinkles)


def sample_lighting(rng: np.random.Generator) -> Lighting:
    """Random key light from the front hemisphere (mostly above), random colour temperature and ambient."""
    d = np.array([rng.uniform(-0.8, 0.8), rng.uniform(-0.2, 0.8), rng.uniform(0.6, 1.2)])
    temp = rng.uniform(-1.0, 1.0)
    colour = np.array([1.0 + 0.12 * temp, 1.0, 1.0 - 0.15 * temp])
    amb_level = rng.uniform(0.25, 0.5)
    amb = amb_level * np.array([1.0, 1.0, 1.0]) * rng.uniform(0.92, 1.08, 3)
    return Lighting(
        direction=(float(d[0]), float(d[1]), float(d[2])),
        colour=(float(colour[0]), float(colour[1]), float(colour[2])),
        intensity=float(rng.uniform(0.55, 0.95)),
        ambient=(float(amb[0]), float(amb[1]), float(amb[2])),
        specular=float(rng.uniform(0.6, 1.4)),
    )


@dataclass(frozen=True)
class Placement:
    """Per-sequence similarity, normalised image coordinates -> full-frame pixels: ``px = scale * xy + (ox, oy)``."""

    scale: float
    ox: float
    oy: float


def pose_vertices(verts: np.ndarray, pose: Pose) -> np.ndarray:
    """Rotate (V, 3) cm vertices by the pose and translate; returns camera-aligned head coordinates (V, 3)."""
    r = pose.rotation()
    return verts @ r.T + np.array([pose.tx, pose.ty, pose.tz], np.float32)


def project(posed: np.ndarray, camera_distance_cm: float) -> tuple[np.ndarray, np.ndarray]:
    """Pinhole projection of posed (V, 3) vertices: normalised (V, 2) coordinates (x right, y down), depth (V,) cm."""
    depth = (camera_distance_cm - posed[:, 2]).astype(np.float32)
    xy = np.stack([posed[:, 0] / depth, -posed[:, 1] / depth], axis=1).astype(np.float32)
    return xy, depth


def face_box(landmarks: np.ndarray) -> Box:
    """YuNet-like face box (x, y, w, h) from 68 projected landmarks (68, 2): cheek to cheek, forehead to chin."""
    x0, x1 = float(landmarks[:, 0].min()), float(landmarks[:, 0].max())
    brow_top = float(landmarks[17:27, 1].min())
    chin = float(landmarks[:, 1].max())
    top = brow_top - 0.18 * (chin - brow_top)
    return x0, top, x1 - x0, chin - top


def crop_window(box: Box, margin: float = 1.3) -> tuple[int, int, int]:
    """(x0, y0, side) in integer pixels of the square crop around ``box``: the formula of
    :func:`aunets.core.crop.crop_square`."""
    x, y, w, h = box
    side = max(2.0, margin * max(w, h))
    cx, cy = x + w / 2.0, y + h / 2.0
    return round(cx - side / 2.0), round(cy - side / 2.0), round(side)


@dataclass
class FaceRender:
    """One rendered frame. ``crop`` (S, S, 3) uint8 RGB (face over background), ``alpha`` (S, S) float32 face
    coverage, ``box`` face box in full-frame pixels, ``window`` (x0, y0, side) crop square in full-frame pixels,
    ``landmarks`` (68, 2) in full-frame pixels; ``context`` (C, C, 3) uint8 and ``context_alpha`` (C, C): the
    larger rendered square (C >= S) that contains the crop at its centre."""

    crop: np.ndarray
    alpha: np.ndarray
    box: Box
    window: tuple[int, int, int]
    landmarks: np.ndarray
    context: np.ndarray
    context_alpha: np.ndarray
    context_origin: tuple[float, float, float]  # (x, y, side) of ``context`` in full-frame pixels


def render_face(
    model: FaceModel,
    subject: PreparedSubject,
    expr_weights: np.ndarray,
    pose: Pose,
    lighting: Lighting,
    placement: Placement,
    background: np.ndarray,
    size: int = 224,
    supersample: int = 1,
    camera_distance_cm: float = 70.0,
    margin: float = 1.3,
    eye_rotation: tuple[float, float] = (0.0, 0.0),
    context: float = 1.0,
) -> FaceRender:
    """Render the face crop of one frame.

    expr_weights (K,) blendshape weights in [0, 1]; background (H, W, 3) uint8 RGB full frame (the crop's
    background is cut from it). ``eye_rotation`` = (horizontal, vertical) gaze in degrees. ``context`` >= 1: also
    render a square ``context`` times the crop side around it (for pasting into the full frame without cutting
    the head at the crop border).
    """
    verts = model.deform(subject.base, expr_weights)
    if eye_rotation != (0.0, 0.0):
        _rotate_eyes(model, subject, verts, eye_rotation)
    # face box from the neutral-expression landmarks: the box follows the head, not the expression
    lm_neutral = pose_vertices(subject.base[model.landmarks68], pose)
    lm_xy, _ = project(lm_neutral, camera_distance_cm)
    lm_full = lm_xy * placement.scale + np.array([placement.ox, placement.oy], np.float32)
    box = face_box(lm_full)
    x0, y0, side = crop_window(box, margin)
    k = size * supersample / side  # render pixels per full-frame pixel
    pad = int(np.ceil(size * (context - 1.0) / 2.0)) * supersample
    res = size * supersample + 2 * pad
    # normalised image coordinates -> render pixels: px = s * xy + (ox, oy)
    to_px = np.array([placement.scale * k, (placement.ox - x0) * k + pad, (placement.oy - y0) * k + pad], np.float32)
    ldir = np.asarray(lighting.direction, np.float32)
    ldir = ldir / np.linalg.norm(ldir)
    half = ldir + np.array([0.0, 0.0, 1.0], np.float32)
    half /= np.linalg.norm(half)
    px, depth, light, spec = vertex_stage(
        verts, model.faces, pose.rotation(), np.array([pose.tx, pose.ty, pose.tz], np.float32),
        float(camera_distance_cm), to_px, subject.rest_area, ldir, half.astype(np.float32),
        np.asarray(lighting.ambient, np.float32), np.asarray(lighting.colour, np.float32), float(lighting.intensity),
        float(lighting.crease), subject.specular, float(lighting.specular * lighting.intensity),
    )  # fmt: skip
    outer, inner, rim = _mouth_split(model)
    tri, b1, b2 = rasterize_occluded(px, depth, model.faces, outer, inner, rim, res, res)
    out_res = res // supersample
    pad //= supersample
    s = size / side
    m = np.array([[s, 0, (pad / s - x0) * s], [0, s, (pad / s - y0) * s]], np.float32)
    bg = cv2.warpAffine(background, m, (out_res, out_res), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if supersample > 1:
        img, cov = shade(
            tri, b1, b2, model.faces, model.face_uv, model.uv, subject.albedo, light, spec, _textured(model),
            subject.texture,
        )  # fmt: skip
        img = cv2.resize(img, (out_res, out_res), interpolation=cv2.INTER_AREA)
        cov = cv2.resize(cov, (out_res, out_res), interpolation=cv2.INTER_AREA)
        out = bg.astype(np.float32) * (1.0 - cov[..., None]) + np.clip(img, 0.0, 1.0) * 255.0 * cov[..., None]
        out8 = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    else:
        cov = cv2.GaussianBlur((tri >= 0).astype(np.float32), (3, 3), 0.5)  # soften the silhouette a little
        out8 = shade_composite(
            tri, b1, b2, cov, bg, model.faces, model.face_uv, model.uv, subject.albedo, light, spec,
            _textured(model), subject.texture,
        )  # fmt: skip
    return FaceRender(
        crop=out8[pad : pad + size, pad : pad + size],
        alpha=cov[pad : pad + size, pad : pad + size],
        box=box,
        window=(x0, y0, side),
        landmarks=lm_full,
        context=out8,
        context_alpha=cov,
        context_origin=(x0 - pad / s, y0 - pad / s, out_res / s),
    )


_TEXTURED_CACHE: dict[int, np.ndarray] = {}
_MOUTH_CACHE: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
MOUTH_REGIONS = ("mouth_socket", "gums_tongue", "teeth_upper", "teeth_lower")
MOUTH_RIM_CM = 1.0  # skin triangles this close (neutral mesh) to the inside of the mouth may show it behind them


def _mouth_split(model: FaceModel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(outer ids, inside-of-the-mouth ids, rim mask (F,)) for :func:`rasterize_occluded`: the inside of the mouth
    (40 % of the triangles) is drawn only where the lips leave a gap."""
    key = id(model)
    if key not in _MOUTH_CACHE:
        inside_v = np.isin(model.vertex_region, [model.region_id(n) for n in MOUTH_REGIONS])
        inside_f = np.isin(model.face_region, [model.region_id(n) for n in MOUTH_REGIONS])
        near_v = np.zeros(model.n_vertices, np.bool_)
        outside = np.flatnonzero(~inside_v)
        near_v[outside] = near_points(model.neutral[outside], model.neutral[inside_v], MOUTH_RIM_CM)
        rim = near_v[model.faces].any(axis=1) & ~inside_f
        _MOUTH_CACHE[key] = (
            np.flatnonzero(~inside_f).astype(np.int32), np.flatnonzero(inside_f).astype(np.int32), rim
        )  # fmt: skip
    return _MOUTH_CACHE[key]


def _textured(model: FaceModel) -> np.ndarray:
    key = id(model)
    if key not in _TEXTURED_CACHE:
        _TEXTURED_CACHE[key] = model.face_region == model.region_id("face_skin")
    return _TEXTURED_CACHE[key]


def _rotate_eyes(model: FaceModel, subject: PreparedSubject, verts: np.ndarray, gaze: tuple[float, float]) -> None:
    """Rotate the eyeball vertices in place about their centres: gaze (horizontal, vertical) in degrees."""
    h, v = np.deg2rad(gaze)
    ry = np.array([[np.cos(h), 0, np.sin(h)], [0, 1, 0], [-np.sin(h), 0, np.cos(h)]], np.float32)
    rx = np.array([[1, 0, 0], [0, np.cos(v), np.sin(v)], [0, -np.sin(v), np.cos(v)]], np.float32)
    rot = ry @ rx
    for e, (a, b) in enumerate(model.eyeball_vertex_range):
        centre = model.eyeball_center_neutral[e] + (subject.base[a:b] - model.neutral[a:b]).mean(0)
        verts[a:b] = (verts[a:b] - centre) @ rot.T + centre


def composite_full(background: np.ndarray, render: FaceRender) -> np.ndarray:
    """Full frame (H, W, 3) uint8: the background with the rendered context square resized into place."""
    cx, cy, cside = render.context_origin
    x0, y0, side = round(cx), round(cy), max(2, round(cside))
    h, w = background.shape[:2]
    n = render.context.shape[0]
    interp = cv2.INTER_AREA if side < n else cv2.INTER_LINEAR
    face = cv2.resize(render.context, (side, side), interpolation=interp).astype(np.float32)
    alpha = cv2.resize(render.context_alpha, (side, side), interpolation=interp)
    ix0, iy0, ix1, iy1 = max(0, x0), max(0, y0), min(w, x0 + side), min(h, y0 + side)
    out = background.copy()
    if ix1 <= ix0 or iy1 <= iy0:
        return out
    fa = face[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0]
    aa = alpha[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0, None]
    region = out[iy0:iy1, ix0:ix1].astype(np.float32)
    out[iy0:iy1, ix0:ix1] = np.clip(region * (1 - aa) + fa * aa + 0.5, 0, 255).astype(np.uint8)
    return out


def make_background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Random background (H, W, 3) uint8 RGB: a colour gradient, low-frequency noise and random shapes."""
    c0, c1 = rng.uniform(20, 235, 3), rng.uniform(20, 235, 3)
    angle = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    t = (np.cos(angle) * xx / width + np.sin(angle) * yy / height + 1.0) / 2.0
    img = c0[None, None, :] * (1 - t[..., None]) + c1[None, None, :] * t[..., None]
    small = rng.standard_normal((max(2, height // 40), max(2, width // 40), 3)).astype(np.float32)
    img += cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC) * rng.uniform(3, 20)
    img = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(3, 14))):
        colour = tuple(int(c) for c in rng.uniform(0, 255, 3))
        kind = rng.integers(3)
        p = (int(rng.uniform(0, width)), int(rng.uniform(0, height)))
        if kind == 0:
            q = (int(rng.uniform(0, width)), int(rng.uniform(0, height)))
            cv2.rectangle(img, p, q, colour, -1)
        elif kind == 1:
            cv2.circle(img, p, int(rng.uniform(10, height / 3)), colour, -1)
        else:
            q = (int(rng.uniform(0, width)), int(rng.uniform(0, height)))
            cv2.line(img, p, q, colour, int(rng.integers(2, 12)))
    return cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 3.0))


def degrade(img: np.ndarray, rng: np.random.Generator, noise_sigma: float, blur_sigma: float) -> np.ndarray:
    """Camera effects on a uint8 image: Gaussian blur (sigma px) then near-Gaussian sensor noise (sigma in 0..255;
    see :func:`aunets.models.synth.rasterizer.add_sensor_noise`), drawn from ``rng``."""
    out = img
    if blur_sigma > 0.05:
        out = cv2.GaussianBlur(out, (0, 0), blur_sigma)
    if noise_sigma > 0:  # near-Gaussian noise from raw random bits (5x cheaper than rng.standard_normal)
        raw = rng.bit_generator.random_raw((out.size + 1) // 2)
        out = add_sensor_noise(np.ascontiguousarray(out), raw, float(noise_sigma))
    return out
