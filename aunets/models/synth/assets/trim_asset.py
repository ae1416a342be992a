"""Make ``ict_facekit_synth.npz`` (the trimmed asset the generator loads) from the full ICT-FaceKit npz.

Run once by a maintainer: ``python aunets/models/synth/assets/trim_asset.py /path/to/ict_facekit.npz``.
Kept: the neutral mesh, the first ``N_IDENTITY`` identity modes (norm >= 2.9 of 61 for mode 0), the expression
blendshapes in ``EXPRESSIONS`` (float16, as in the source), triangles without the eyelash strips (the eyelash
vertices are the last ones, so the other vertex ids are unchanged), region labels, UVs, landmarks and eye centres.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

N_IDENTITY = 40
EXPRESSIONS = (
    "browDown_L", "browDown_R", "browInnerUp_L", "browInnerUp_R", "browOuterUp_L", "browOuterUp_R",
    "cheekSquint_L", "cheekSquint_R", "eyeBlink_L", "eyeBlink_R", "eyeLookDown_L", "eyeLookDown_R",
    "eyeLookIn_L", "eyeLookIn_R", "eyeLookOut_L", "eyeLookOut_R", "eyeLookUp_L", "eyeLookUp_R", "eyeSquint_L",
    "eyeSquint_R", "eyeWide_L", "eyeWide_R", "jawOpen", "mouthClose", "mouthDimple_L", "mouthDimple_R",
    "mouthFrown_L", "mouthFrown_R", "mouthFunnel", "mouthLowerDown_L", "mouthLowerDown_R", "mouthPress_L",
    "mouthPress_R", "mouthPucker", "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper",
    "mouthSmile_L", "mouthSmile_R", "mouthStretch_L", "mouthStretch_R", "mouthUpperUp_L", "mouthUpperUp_R",
    "noseSneer_L", "noseSneer_R",
)


def trim(src: Path, dst: Path) -> None:
    z = np.load(src)
    names = [str(n) for n in z["expr_names"]]
    region_names = [str(n) for n in z["region_names"]]
    lash = [region_names.index("eyelashes_L"), region_names.index("eyelashes_R")]
    keep_f = ~np.isin(z["face_region"], lash)
    n_v = int(z["faces"][keep_f].max()) + 1
    expr = np.stack([z["expr_deltas"][names.index(n)][:n_v] for n in EXPRESSIONS])
    extra_names = [str(n) for n in z["extra_expr_names"]]
    expr = np.concatenate([expr, z["extra_expr_deltas"][:, :n_v]])
    all_names = [*EXPRESSIONS, *extra_names]
    np.savez_compressed(
        dst,
        neutral=z["neutral"][:n_v],
        id_deltas=z["id_deltas"][:N_IDENTITY, :n_v],
        expr_deltas=expr.astype(np.float16),
        expr_names=np.array(all_names),
        faces=z["faces"][keep_f],
        face_region=z["face_region"][keep_f],
        vertex_region=z["vertex_region"][:n_v],
        region_names=z["region_names"],
        uv=z["uv"],
        face_uv=z["face_uv"][keep_f],
        landmarks68=z["landmarks68"],
        eyeball_vertex_range=z["eyeball_vertex_range"],
        eyeball_center_neutral=z["eyeball_center_neutral"],
        eyeball_radius_neutral=z["eyeball_radius_neutral"],
        paint_lips=z["paint_lips"][:n_v],
        paint_brows=z["paint_brows"][:n_v],
    )


if __name__ == "__main__":
    trim(Path(sys.argv[1]), Path(__file__).with_name("ict_facekit_synth.npz"))
