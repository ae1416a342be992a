"""The fixed correspondence between the ICT-FaceKit neutral mesh and MediaPipe's 478-landmark topology.

Found once by rendering the mean ICT head (frontal, neutral, :func:`aunets.models.synth.renderer.render_face`), fitting
the render with the MediaPipe FaceLandmarker and, for every landmark, taking the visible ICT surface point under
it: a triangle's three vertex ids and barycentric weights. Stored in ``assets/ict_mediapipe_correspondence.npz``;
regenerate it with ``python -m aunets.models.synth.correspondence`` (needs the ``teacher`` extra).

With it any ICT blendshape becomes a displacement of the 478 landmarks (cm, ICT axes: +x the subject's left,
+y up, +z forward), which :mod:`aunets.models.synth.photoreal` carries onto a fitted photo.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from aunets.core.errors import ConfigError
from aunets.models.synth.facemodel import ASSETS, FaceModel, load_face_model
from aunets.models.synth.landmarks import N_LANDMARKS

log = logging.getLogger(__name__)

ASSET_NAME = "ict_mediapipe_correspondence.npz"
RENDER_SIZE = 512  # px of the square render that is landmarked


def default_asset_path() -> Path:
    return ASSETS / ASSET_NAME


@dataclass(frozen=True)
class Correspondence:
    """``vertices`` (478, 3) int32 ICT vertex ids and ``weights`` (478, 3) float32 barycentric weights (rows sum
    to 1): landmark i sits at ``sum_j weights[i, j] * mesh[vertices[i, j]]``. ``reference`` (478, 3) float32: the
    MediaPipe landmarks (px) of the frontal render, i.e. what a head at pose (0, 0, 0) looks like to MediaPipe."""

    vertices: np.ndarray
    weights: np.ndarray
    reference: np.ndarray

    def points(self, mesh: np.ndarray) -> np.ndarray:
        """Landmark positions (478, 3) on a mesh (V, 3) (or displacements from vertex displacements)."""
        return np.einsum("nj,njc->nc", self.weights, mesh[self.vertices]).astype(np.float32)


def _render_mean_head(model: FaceModel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frontal neutral render (S, S, 3) uint8 RGB of the mean ICT head, its vertex pixel positions (V, 2) and depths
    (V,) cm in the render."""
    from aunets.models.synth.appearance import sample_appearance
    from aunets.models.synth.renderer import Lighting, Placement, Pose, face_box, pose_vertices, project, render_face
    from aunets.models.synth.subject import Subject, prepare_subject

    rng = np.random.default_rng(0)
    subject = Subject(0, 0, np.zeros(model.n_identity, np.float32), sample_appearance(rng))
    prepared = prepare_subject(model, subject)
    pose = Pose()
    xy, _ = project(pose_vertices(prepared.base[model.landmarks68], pose), 70.0)
    bx, by, bw, bh = face_box(xy)
    scale = 300.0 / max(bw, bh)
    placement = Placement(scale, 320 - scale * (bx + bw / 2), 240 - scale * (by + bh / 2))
    background = np.full((480, 640, 3), 200, np.uint8)
    lighting = Lighting(direction=(0.0, 0.3, 1.0), intensity=0.7, ambient=(0.4, 0.4, 0.4))
    weights = np.zeros(len(model.expr_names), np.float32)
    r = render_face(model, prepared, weights, pose, lighting, placement, background, size=RENDER_SIZE, supersample=2)
    x0, y0, side = r.window
    vxy, depth = project(pose_vertices(prepared.base, pose), 70.0)
    px = (vxy * placement.scale + np.array([placement.ox - x0, placement.oy - y0], np.float32)) * (RENDER_SIZE / side)
    return r.crop, px.astype(np.float32), depth


def _candidates(model: FaceModel, faces_all: np.ndarray) -> dict[str, np.ndarray]:
    """Triangle masks (F,) that landmark groups may land on: the skin, the eyeballs, the lower lip (moves down with
    jawOpen), the upper lids (move down with eyeBlink); closed lips and lids are ambiguous in a render."""
    from aunets.models.synth.renderer import MOUTH_REGIONS

    def region(names: tuple[str, ...]) -> np.ndarray:
        return np.isin(model.face_region, [model.region_id(n) for n in names])

    eyeball = region(("sclera_L", "iris_L", "pupil_L", "sclera_R", "iris_R", "pupil_R"))
    skin = ~region((*MOUTH_REGIONS, "eye_socket_L", "eye_socket_R", "eyelashes_L", "eyelashes_R")) & ~eyeball

    def moves_down(names: tuple[str, ...]) -> np.ndarray:
        dy = sum(model.expr_deltas[model.shape_index(n)].reshape(-1, 3)[:, 1] for n in names)
        return np.asarray(dy, np.float32)[faces_all].mean(1)

    jaw = moves_down(("jawOpen",))
    blink = moves_down(("eyeBlink_L", "eyeBlink_R"))
    return {
        "skin": skin,
        "eyeball": eyeball,
        "lower_lip": skin & (jaw < 0.1 * jaw.min()),
        "upper_lip": skin & (jaw > 0.08 * jaw.min()),
        "upper_lid": skin & (blink < 0.4 * blink.min()),
        "lower_lid": skin & (blink > 0.15 * blink.min()),
    }


def _landmark_groups() -> dict[int, str]:
    from aunets.models.synth.landmarks import LEFT_EYE, LIPS_INNER_LOWER, LIPS_INNER_UPPER, RIGHT_EYE

    group = {i: "skin" for i in range(N_LANDMARKS)}
    for i in range(468, N_LANDMARKS):
        group[i] = "eyeball"
    for i in LIPS_INNER_LOWER[1:-1]:
        group[i] = "lower_lip"
    for i in LIPS_INNER_UPPER[1:-1]:
        group[i] = "upper_lip"
    for eye in (RIGHT_EYE, LEFT_EYE):
        for i in eye[1:8]:
            group[i] = "upper_lid"
        for i in eye[9:]:
            group[i] = "lower_lid"
    return group


def surface_points(
    model: FaceModel, px: np.ndarray, depth: np.ndarray, landmarks: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For each 2D point (N, 2) in render px, the front-most triangle of its group (:func:`_candidates`) that
    contains it (or else the one with the closest centroid): (N, 3) vertex ids and (N, 3) barycentric weights."""
    faces = model.faces
    masks = _candidates(model, faces)
    groups = _landmark_groups()
    a, b, c = px[faces[:, 0]], px[faces[:, 1]], px[faces[:, 2]]
    area = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])
    # front-facing: triangles wind CCW seen from outside, i.e. clockwise (negative area) in image axes (y down);
    # take the sign the skin around the nose tip has, to be independent of the convention
    nose = np.linalg.norm((a + b + c) / 3 - landmarks[1, :2], axis=1) < 10
    sign = np.sign(np.median(area[nose & masks["skin"]])) or -1.0
    front = area * sign > 1e-9
    safe = np.where(front, area, 1)
    zf = depth[faces].mean(1)
    centroid = (a + b + c) / 3
    verts = np.zeros((len(landmarks), 3), np.int32)
    weights = np.zeros((len(landmarks), 3), np.float32)
    for i, p in enumerate(landmarks[:, :2]):
        ok = front & masks[groups[i]]
        w1 = ((p[0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (p[1] - a[:, 1]) * (c[:, 0] - a[:, 0])) / safe
        w2 = ((b[:, 0] - a[:, 0]) * (p[1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (p[0] - a[:, 0])) / safe
        w0 = 1 - w1 - w2
        hit = ok & (w0 >= -1e-6) & (w1 >= -1e-6) & (w2 >= -1e-6)
        if hit.any():
            cand = np.flatnonzero(hit)
            f = int(cand[np.argmin(zf[cand])])  # nearest to the camera
            verts[i] = faces[f]
            weights[i] = np.clip([w0[f], w1[f], w2[f]], 0, 1)
            weights[i] /= weights[i].sum()
        else:
            cand = np.flatnonzero(ok)
            f = int(cand[np.argmin(np.linalg.norm(centroid[cand] - p, axis=1) + 1e-3 * zf[cand])])
            verts[i] = faces[f]
            weights[i] = 1.0 / 3.0
    return verts, weights


def build_correspondence(model: FaceModel | None = None) -> tuple[Correspondence, np.ndarray, np.ndarray]:
    """Render, landmark and match; returns the correspondence, the render (S, S, 3) RGB and its landmarks (478, 3)."""
    from aunets.models.synth.landmarks import FaceLandmarkFitter

    model = model or load_face_model()
    image, px, depth = _render_mean_head(model)
    with FaceLandmarkFitter() as fit:
        lm = fit(image)
    if lm is None:
        raise ConfigError("MediaPipe found no face in the ICT render; check aunets/models/synth/renderer.py")
    verts, weights = surface_points(model, px, depth, lm)
    return Correspondence(verts, weights, lm.astype(np.float32)), image, lm


def save_correspondence(corr: Correspondence, path: Path) -> Path:
    np.savez_compressed(path, vertices=corr.vertices.astype(np.int32), weights=corr.weights.astype(np.float32),
                        reference=corr.reference.astype(np.float32))  # fmt: skip
    return path


@lru_cache(maxsize=1)
def load_correspondence(path: str | None = None) -> Correspondence:
    """The bundled correspondence (cached per process)."""
    p = Path(path) if path else default_asset_path()
    if not p.is_file():
        raise ConfigError(
            f"correspondence asset {p} is missing; regenerate it: python -m aunets.models.synth.correspondence"
        )
    z = np.load(p)
    return Correspondence(z["vertices"].astype(np.int32), z["weights"].astype(np.float32),
                          z["reference"].astype(np.float32))  # fmt: skip


def main() -> None:  # pragma: no cover - asset regeneration
    import cv2

    logging.basicConfig(level=logging.INFO)
    corr, image, lm = build_correspondence()
    out = save_correspondence(corr, default_asset_path())
    model = load_face_model()
    _, px, _ = _render_mean_head(model)
    err = np.linalg.norm(corr.points(np.concatenate([px, np.zeros((len(px), 1), np.float32)], 1))[:, :2] - lm[:, :2],
                         axis=1)  # fmt: skip
    log.info("wrote %s; landmark reprojection error median %.2f px, max %.2f px (render %d px)", out,
             float(np.median(err)), float(err.max()), RENDER_SIZE)  # fmt: skip
    vis = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    for x, y, _ in lm:
        cv2.circle(vis, (int(x), int(y)), 1, (0, 255, 0), -1)
    cv2.imwrite("/tmp/ict_mediapipe_landmarks.png", vis)


if __name__ == "__main__":  # pragma: no cover
    main()
