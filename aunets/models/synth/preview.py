"""Contact sheet: each AU at apex beside the neutral face, for 3 subjects x 3 views."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from aunets.core.au import AU_NAMES, BP4D_AUS
from aunets.core.view import DEFAULT_VIEW_GRID
from aunets.models.synth.facemodel import load_face_model
from aunets.models.synth.renderer import Lighting, Placement, Pose, face_box, pose_vertices, project, render_face
from aunets.models.synth.subject import prepare_subject, sample_subject, subject_seed

PREVIEW_VIEWS = (4, 5, 0)  # frontal; yaw +40; yaw -40 & pitch -20 (chin up)


def render_apex_grid(seed: int = 0, tile: int = 160, intensity: float = 1.0) -> np.ndarray:
    """RGB uint8 sheet: rows = subject x view, columns = neutral, then each BP4D AU at ``intensity``."""
    model = load_face_model()
    lighting = Lighting(direction=(0.35, 0.45, 1.0), intensity=0.75, ambient=(0.38, 0.38, 0.38))
    background = np.full((480, 640, 3), 128, np.uint8)
    rows = []
    for s in range(3):
        prepared = prepare_subject(model, sample_subject(subject_seed(seed, s), s))
        for view in PREVIEW_VIEWS:
            yaw, pitch = DEFAULT_VIEW_GRID.angles(view)
            pose = Pose(yaw, pitch)
            xy, _ = project(pose_vertices(prepared.base[model.landmarks68], pose), 70.0)
            bx, by, bw, bh = face_box(xy)
            scale = 220.0 / max(bw, bh)
            placement = Placement(scale, 320 - scale * (bx + bw / 2), 240 - scale * (by + bh / 2))
            rows.append(np.concatenate([
                render_face(model, prepared, model.expression_weights(inten), pose, lighting, placement, background,
                            size=tile, supersample=2).crop
                for inten in apex_columns(intensity)
            ], axis=1))  # fmt: skip
    return with_au_header(rows, tile)


def apex_columns(intensity: float = 1.0) -> list[np.ndarray]:
    """The AU intensities (len(BP4D_AUS),) float32 of a contact sheet's columns: neutral (all 0), then each BP4D AU
    alone at ``intensity``."""
    k = len(BP4D_AUS)
    return [np.zeros(k, np.float32), *(np.eye(k, dtype=np.float32) * np.float32(intensity))]


def with_au_header(rows: list[np.ndarray], tile: int) -> np.ndarray:
    """Stack ``rows`` (each ``1 + len(BP4D_AUS)`` tiles of ``tile`` px side, RGB uint8, in :func:`apex_columns`
    order) under a 36 px white header naming each column: the sheet (36 + rows * tile, columns * tile, 3)."""
    sheet = np.concatenate(rows, axis=0)
    header = np.full((36, sheet.shape[1], 3), 255, np.uint8)
    for a, label in enumerate(["neutral"] + [f"AU{au} {AU_NAMES[au]}" for au in BP4D_AUS]):
        words = label.split(" ", 1)
        cv2.putText(header, words[0], (a * tile + 4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        if len(words) > 1:
            cv2.putText(header, words[1][:22], (a * tile + 4, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.36, (0, 0, 0), 1,
                        cv2.LINE_AA)  # fmt: skip
    return np.concatenate([header, sheet], axis=0)


def make_preview(out_png: Path, seed: int = 0) -> Path:
    """Write the contact sheet PNG to ``out_png``; returns its path."""
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    sheet = render_apex_grid(seed)
    cv2.imwrite(str(out_png), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    return out_png
