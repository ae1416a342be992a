"""The ICT-FaceKit head model (trimmed copy in ``assets/``) and the FACS AU -> blendshape mapping.

Units are centimetres; +x is the subject's left, +y up, +z forward (out of the face). See ``assets/README.md``.
"""

from __future__ import annotations

import json
import logging
from functools import lru_cache
from pathlib import Path

import numpy as np

from aunets.core.au import BP4D_AUS
from aunets.core.errors import ConfigError
from aunets.models.synth.vertices import blend_shapes

log = logging.getLogger(__name__)

ASSETS = Path(__file__).with_name("assets")  # the synth package's data files (installed as package data)
ASSET_NAME = "ict_facekit_synth.npz"
MAX_SHAPE_WEIGHT = 2.0  # blendshape weights are extrapolated up to this (see AU_BLENDSHAPES)

# AU -> {blendshape: weight at intensity 1}. From assets/au_blendshapes.json (ICT README table), with the changes
# below chosen by looking at the preview contact sheet (aunets/models/synth/README.md explains each):
#  AU6: derived shape au6Cheek = cheekSquint + 0.6 cheekRaiser, faded out below the nose (both source shapes
#       also lift the lip corners, which made AU6 look like a weak AU12);
#  AU10: mouthUpperUp (ARKit convention: raises the upper lip, deepens the nasolabial fold) plus a little
#        mouthShrugUpper; the README's mouthShrugUpper alone barely moves the upper lip;
#  AU23: lip roll in + pucker (narrow, thin lips), only a little press, so that it differs from AU24;
#  generator v2: AU1, AU4, AU15, AU23 and AU24 scaled up (weights above 1 extrapolate the shape) because ICT's
#  shapes for them move the skin at most 0.4-0.6 cm at weight 1, under a pixel at level B in a 112 px crop, where
#  an apex (level E) AU4 lowers the brows by about a centimetre.
AU_BLENDSHAPES: dict[int, dict[str, float]] = {
    1: {"browInnerUp_L": 1.3, "browInnerUp_R": 1.3},
    2: {"browOuterUp_L": 1.0, "browOuterUp_R": 1.0},
    4: {"browDown_L": 1.7, "browDown_R": 1.7},
    6: {"au6Cheek_L": 1.0, "au6Cheek_R": 1.0},
    7: {"eyeSquint_L": 1.0, "eyeSquint_R": 1.0},
    10: {"mouthUpperUp_L": 0.9, "mouthUpperUp_R": 0.9, "mouthShrugUpper": 0.3},
    12: {"mouthSmile_L": 1.0, "mouthSmile_R": 1.0},
    14: {"mouthDimple_L": 1.0, "mouthDimple_R": 1.0},
    15: {"mouthFrown_L": 1.7, "mouthFrown_R": 1.7},
    17: {"mouthShrugLower": 1.0},
    23: {"mouthRollUpper": 0.8, "mouthRollLower": 0.8, "mouthPucker": 0.6, "mouthPress_L": 0.35, "mouthPress_R": 0.35},
    24: {"mouthPress_L": 1.8, "mouthPress_R": 1.8},
}


def default_asset_path() -> Path:
    return ASSETS / ASSET_NAME


class FaceModel:
    """Linear head model: ``vertices = neutral + id_w @ id_deltas + expr_w @ expr_deltas``.

    Attributes (V vertices, F triangles, K expression shapes):
      neutral (V, 3) float32 cm; id_deltas (I, V*3) float32; expr_deltas (K, V*3) float32;
      expr_names list[str] (K); faces (F, 3) int32; face_region (F,) uint8; vertex_region (V,) uint8;
      region_names list[str]; uv (T, 2) float32; face_uv (F, 3) int32; landmarks68 (68,) int32 vertex ids.
    """

    def __init__(self, path: Path | None = None) -> None:
        path = path or default_asset_path()
        if not path.exists():
            raise ConfigError(f"face model asset {path} is missing; reinstall aunets or run assets/trim_asset.py")
        z = np.load(path)
        self.neutral = z["neutral"].astype(np.float32)
        self.n_vertices = int(self.neutral.shape[0])
        self.id_deltas = z["id_deltas"].astype(np.float32).reshape(z["id_deltas"].shape[0], -1)
        self.expr_deltas = z["expr_deltas"].astype(np.float32).reshape(z["expr_deltas"].shape[0], -1)
        self.expr_names = [str(n) for n in z["expr_names"]]
        self.expr_index = {n: i for i, n in enumerate(self.expr_names)}
        self.faces = z["faces"].astype(np.int32)
        self.face_region = z["face_region"].astype(np.uint8)
        self.vertex_region = z["vertex_region"].astype(np.uint8)
        self.region_names = [str(n) for n in z["region_names"]]
        self.uv = z["uv"].astype(np.float32)
        self.face_uv = z["face_uv"].astype(np.int32)
        self.landmarks68 = z["landmarks68"].astype(np.int32)
        self.eyeball_vertex_range = z["eyeball_vertex_range"].astype(np.int64)
        self.eyeball_center_neutral = z["eyeball_center_neutral"].astype(np.float32)
        self.paint_lips = z["paint_lips"].astype(np.float32) / 255.0
        self.paint_brows = z["paint_brows"].astype(np.float32) / 255.0
        self._add_derived_shapes()
        self.au_matrix = self._au_matrix()
        self.shape_ptr, self.shape_vert, self.shape_delta = self._sparse_shapes()

    def _add_derived_shapes(self) -> None:
        """Append ``au6Cheek_L/R``: cheekSquint + 0.6 cheekRaiser, weighted to zero below the nose (y, cm)."""
        y = self.neutral[:, 1]
        y_nose = float(self.neutral[self.landmarks68[33], 1])
        fade = np.clip((y - (y_nose - 0.3)) / 1.5, 0.0, 1.0)
        fade = (fade * fade * (3 - 2 * fade))[:, None]
        new = []
        for side in ("L", "R"):
            d = self.expr_deltas[self.expr_index[f"cheekSquint_{side}"]].reshape(-1, 3)
            if f"cheekRaiser_{side}" in self.expr_index:
                d = d + 0.6 * self.expr_deltas[self.expr_index[f"cheekRaiser_{side}"]].reshape(-1, 3)
            new.append((d * fade).reshape(-1))
            self.expr_names.append(f"au6Cheek_{side}")
        self.expr_deltas = np.concatenate([self.expr_deltas, np.stack(new).astype(np.float32)])
        self.expr_index = {n: i for i, n in enumerate(self.expr_names)}

    def _sparse_shapes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Blendshapes in CSR form: shape k moves vertices ``vert[ptr[k]:ptr[k + 1]]`` by ``delta[...]`` (N, 3)
        cm; vertices a shape does not move are left out (most shapes move a few thousand of the V vertices)."""
        d = self.expr_deltas.reshape(len(self.expr_names), -1, 3)
        moved = (d != 0).any(axis=2)
        ptr = np.zeros(len(self.expr_names) + 1, np.int64)
        ptr[1:] = np.cumsum(moved.sum(axis=1))
        vert = np.concatenate([np.flatnonzero(m) for m in moved]).astype(np.int32)
        delta = np.concatenate([d[k, m] for k, m in enumerate(moved)]).astype(np.float32)
        return ptr, vert, np.ascontiguousarray(delta)

    @property
    def n_identity(self) -> int:
        return int(self.id_deltas.shape[0])

    def region_id(self, name: str) -> int:
        return self.region_names.index(name)

    def shape_index(self, name: str) -> int:
        try:
            return self.expr_index[name]
        except KeyError:
            raise ConfigError(f"blendshape {name!r} is not in the face model asset; see assets/trim_asset.py") from None

    def _au_matrix(self) -> np.ndarray:
        """(12, K, 2) weights: AU a at intensity 1 adds ``m[a, k, side]`` to shape k; side 0 = left, 1 = right.

        Shapes without an _L/_R suffix are split half/half so that asymmetric intensities stay symmetric for them.
        """
        m = np.zeros((len(BP4D_AUS), len(self.expr_names), 2), np.float32)
        for a, au in enumerate(BP4D_AUS):
            for name, w in AU_BLENDSHAPES[au].items():
                k = self.shape_index(name)
                if name.endswith("_L"):
                    m[a, k, 0] = w
                elif name.endswith("_R"):
                    m[a, k, 1] = w
                else:
                    m[a, k, :] = w / 2.0
        return m

    def expression_weights(self, intensity: np.ndarray, side_scale: np.ndarray | None = None) -> np.ndarray:
        """Blendshape weights (K,) in [0, MAX_SHAPE_WEIGHT] from AU intensities (12,) in [0, 1].

        ``side_scale`` (12, 2) multiplies each AU's left/right part (asymmetry); default symmetric.
        """
        scale = np.ones((len(BP4D_AUS), 2), np.float32) if side_scale is None else side_scale
        w = np.einsum("a,as,aks->k", intensity.astype(np.float32), scale.astype(np.float32), self.au_matrix)
        return np.clip(w, 0.0, MAX_SHAPE_WEIGHT)

    def identity_shape(self, id_weights: np.ndarray) -> np.ndarray:
        """Neutral-expression mesh (V, 3) cm for identity weights (I,) ~ N(0, 1)."""
        n = min(len(id_weights), self.n_identity)
        return self.neutral + (id_weights[:n].astype(np.float32) @ self.id_deltas[:n]).reshape(-1, 3)

    def deform(self, base: np.ndarray, expr_weights: np.ndarray) -> np.ndarray:
        """Mesh (V, 3) float32 cm: ``base`` (V, 3) plus blendshapes with weights (K,); only the shapes with a
        non-zero weight and only the vertices they move are touched (sparse, deterministic summation order)."""
        if not np.any(expr_weights):
            return np.array(base, np.float32)
        return blend_shapes(np.ascontiguousarray(base, np.float32), np.ascontiguousarray(expr_weights, np.float32),
                            self.shape_ptr, self.shape_vert, self.shape_delta)  # fmt: skip


@lru_cache(maxsize=2)
def load_face_model(path: str | None = None) -> FaceModel:
    """Cached :class:`FaceModel` (one per process)."""
    return FaceModel(Path(path) if path else None)


def au_mapping_source() -> dict[str, object]:
    """The bundled ``au_blendshapes.json`` (ICT README table plus documented approximations)."""
    p = ASSETS / "au_blendshapes.json"
    return dict(json.loads(p.read_text()))
