"""One synthetic frame of a frontal face holding chosen AUs at given intensities (explanation figures, tests)."""

from __future__ import annotations

from collections.abc import Mapping

import cv2
import numpy as np

from aunets.core.au import BP4D_AUS
from aunets.models.synth.facemodel import load_face_model
from aunets.models.synth.renderer import (
    Lighting,
    Placement,
    Pose,
    composite_full,
    face_box,
    pose_vertices,
    project,
    render_face,
)
from aunets.models.synth.subject import prepare_subject, sample_subject, subject_seed


def render_apex_frame(aus: Mapping[int, float], subject: int = 0, seed: int = 0, width: int = 640,
                      height: int = 480, face_px: float = 220.0) -> np.ndarray:
    """A ``uint8`` (height, width, 3) **BGR** frame (as OpenCV reads video): subject ``subject`` of data-set seed
    ``seed``, frontal, evenly lit, over mid grey, its face box about ``face_px`` px high, showing each AU of
    ``aus`` (BP4D AU number -> intensity 0..1, 1 = apex) and no other. Deterministic."""
    unknown = [a for a in aus if a not in BP4D_AUS]
    if unknown:
        raise ValueError(f"AU {unknown} not among the synthetic face's {BP4D_AUS}")
    model = load_face_model()
    prepared = prepare_subject(model, sample_subject(subject_seed(seed, subject), subject))
    lighting = Lighting(direction=(0.35, 0.45, 1.0), intensity=0.75, ambient=(0.38, 0.38, 0.38))
    background = np.full((height, width, 3), 128, np.uint8)
    pose = Pose()
    xy, _ = project(pose_vertices(prepared.base[model.landmarks68], pose), 70.0)
    bx, by, bw, bh = face_box(xy)
    scale = face_px / max(bw, bh)
    placement = Placement(scale, width / 2 - scale * (bx + bw / 2), height / 2 - scale * (by + bh / 2))
    inten = np.zeros(len(BP4D_AUS), np.float32)
    for au, value in aus.items():
        inten[BP4D_AUS.index(au)] = value
    render = render_face(model, prepared, model.expression_weights(inten), pose, lighting, placement, background,
                         size=224, supersample=2, context=1.6)  # fmt: skip
    return cv2.cvtColor(composite_full(background, render), cv2.COLOR_RGB2BGR)
