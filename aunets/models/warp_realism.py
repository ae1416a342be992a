"""Does a detector trained on real faces read the photo-real AU warps as the AU they are labelled with?

MediaPipe's FaceLandmarker (bundled, Apache-2.0; trained on real faces) scores 52 ARKit-named blendshapes. On
``aunets synth-photo`` output made with a fixed script (:func:`script_for`: each AU alone, in turn, with 0.3 s
ramps), the Pearson r per AU between the intensity the generator applied (``AUxx_i``, 0-1) and the blendshape
naming the same movement says how real the warp looks to it. A warp it does not read as the AU teaches an engine
the wrong thing; r < :data:`REALISM_R` flags it.

The mapping (:data:`BLENDSHAPES_FOR_AU`, left/right pairs averaged) is the teacher's
(:data:`aunets.models.teacher.AU_FROM_BLENDSHAPES`): AU1 ``browInnerUp``, AU2 ``browOuterUp*``, AU4
``browDown*``, AU6 ``cheekSquint*``, AU7 ``eyeSquint*``, AU10 ``mouthUpperUp*``, AU12 ``mouthSmile*``, AU14
``mouthDimple*``, AU15 ``mouthFrown*``, AU17 ``mouthShrugLower``, AU23 (lip tightener) ``mouthRoll*``, AU24 (lip
pressor) ``mouthPress*``. The lip AUs have no single counterpart, so :data:`ALTERNATIVES` (``mouthPucker``,
``mouthPress*``/``mouthRoll*`` the other way round) are reported beside them.

The score is taken relative to the same sequence's neutral frames (median over the frames with no AU applied),
so a person's resting blendshapes do not count; r is over every frame of every sequence, the frames of the other
AUs included (a blendshape that also rises for other AUs lowers it).
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from aunets.core.au import BP4D_AUS, au_key
from aunets.models.teacher import AU_FROM_BLENDSHAPES

log = logging.getLogger(__name__)

BLENDSHAPES_FOR_AU: dict[int, tuple[str, ...]] = dict(AU_FROM_BLENDSHAPES)
ALTERNATIVES: dict[int, dict[str, tuple[str, ...]]] = {
    23: {"mouthPucker": ("mouthPucker",), "mouthPress": ("mouthPressLeft", "mouthPressRight")},
    24: {"mouthPucker": ("mouthPucker",), "mouthRoll": ("mouthRollUpper", "mouthRollLower")},
}
REALISM_R = 0.6
"""The issue's floor: a warp whose r is below it is not read as its AU."""
APEX = 0.8
"""Frames with the applied intensity at or above this are the apex frames (mean rise and the contact sheet)."""


def script_for(aus: Sequence[int] = BP4D_AUS, apex_s: float = 0.4, gap_s: float = 0.2) -> tuple[str, float]:
    """A ``--script`` with each AU alone in turn (0.3 s ramps, ``apex_s`` at full intensity, ``gap_s`` apart) and
    the sequence length in seconds that holds it."""
    step = 0.6 + apex_s + gap_s
    parts = [f"{a}:{0.5 + k * step:.2f}-{0.5 + k * step + apex_s:.2f}" for k, a in enumerate(aus)]
    return ",".join(parts), round(0.5 + len(aus) * step + 0.3, 2)


def read_labels(dataset: Path) -> list[dict[str, str]]:
    """The rows of a synth-photo data set's ``labels.csv`` (one per frame)."""
    with (dataset / "labels.csv").open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def blendshape_scores(dataset: Path, rows: Sequence[dict[str, str]], fps: float = 25.0
                      ) -> tuple[list[str], np.ndarray]:  # fmt: skip
    """MediaPipe's 52 blendshape scores on every full frame of ``rows`` (a fresh landmarker per sequence, video
    mode): the names and (N, 52) float32, NaN where no face is found."""
    from aunets.models.face_landmarker import open_face_landmarker

    names: list[str] = []
    out: list[np.ndarray | None] = []
    landmarker: Any = None
    mp: Any = None
    sequence = None
    for row in rows:
        if row["sequence"] != sequence:
            if landmarker is not None:
                landmarker.close()
            mp, landmarker = open_face_landmarker(None, "VIDEO", output_face_blendshapes=True)
            sequence = row["sequence"]
        image = cv2.imread(str(dataset / row["full"]))
        if image is None:
            raise RuntimeError(f"cannot read {dataset / row['full']}")
        frame = mp.Image(image_format=mp.ImageFormat.SRGB, data=cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
        result = landmarker.detect_for_video(frame, round(int(row["frame"]) * 1000 / fps))
        if not result.face_blendshapes:
            out.append(None)
            continue
        cats = result.face_blendshapes[0]
        names = names or [c.category_name for c in cats]
        out.append(np.array([c.score for c in cats], np.float32))
    if landmarker is not None:
        landmarker.close()
    if not names:
        raise RuntimeError(f"MediaPipe found no face in any frame of {dataset}")
    return names, np.stack([np.full(len(names), np.nan, np.float32) if s is None else s for s in out])


def _pearson(x: np.ndarray, y: np.ndarray) -> float | None:
    ok = ~(np.isnan(x) | np.isnan(y))
    x, y = x[ok], y[ok]
    if len(x) < 3 or x.std() < 1e-9 or y.std() < 1e-9:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def realism(rows: Sequence[dict[str, str]], names: Sequence[str], scores: np.ndarray,
            aus: Sequence[int] = BP4D_AUS) -> dict[str, Any]:  # fmt: skip
    """Per AU: ``r`` (applied intensity vs its blendshape, relative to the sequence's neutral), ``apex_rise`` (mean
    blendshape rise on apex frames), the blendshapes used, ``alternatives`` (r of other candidates) and whether r
    reaches :data:`REALISM_R`; ``below`` lists the AUs that do not."""
    applied = np.array([[float(r[f"{au_key(a)}_i"]) for a in aus] for r in rows], np.float32)
    sequences = np.array([r["sequence"] for r in rows])
    col = {n: i for i, n in enumerate(names)}
    relative = scores.copy()
    for seq in np.unique(sequences):
        idx = sequences == seq
        rest = idx & (applied.max(axis=1) == 0)
        base = np.nanmedian(scores[rest if rest.any() else idx], axis=0)
        relative[idx] -= base

    def score_of(shapes: tuple[str, ...]) -> np.ndarray:
        return np.asarray(relative[:, [col[s] for s in shapes]].mean(axis=1))

    per_au: dict[str, Any] = {}
    for k, a in enumerate(aus):
        x, y = applied[:, k], score_of(BLENDSHAPES_FOR_AU[a])
        apex = x >= APEX
        r = _pearson(x, y)
        per_au[au_key(a)] = {
            "blendshapes": list(BLENDSHAPES_FOR_AU[a]), "r": r,
            "apex_rise": float(np.nanmean(y[apex])) if apex.any() else None, "apex_frames": int(apex.sum()),
            "alternatives": {name: _pearson(x, score_of(s)) for name, s in ALTERNATIVES.get(a, {}).items()},
            "meets": None if r is None else r >= REALISM_R,
        }  # fmt: skip
    below = [k for k, v in per_au.items() if not v["meets"]]
    return {"frames": len(rows), "faces_found": int((~np.isnan(scores).any(axis=1)).sum()), "r_min": REALISM_R,
            "per_au": per_au, "below": below}  # fmt: skip


def contact_sheet(dataset: Path, rows: Sequence[dict[str, str]], result: dict[str, Any], path: Path,
                  aus: Sequence[int] = BP4D_AUS, size: int = 128) -> None:  # fmt: skip
    """A PNG: per AU, one sequence's neutral face beside its apex frame of that AU (face box crops, ``size`` px),
    titled with the AU and r; 128 colours, so it stays small in the repository."""
    tiles = []
    first = rows[0]["sequence"]
    seq_rows = [r for r in rows if r["sequence"] == first]
    neutral_row = next((r for r in seq_rows if all(float(r[f"{au_key(a)}_i"]) == 0 for a in aus)), seq_rows[0])

    def crop(row: dict[str, str]) -> np.ndarray:
        image = cv2.imread(str(dataset / row["full"]))
        assert image is not None
        x, y, w, h = (float(row[k]) for k in ("box_x", "box_y", "box_w", "box_h"))
        side = 1.05 * max(w, h)
        cx, cy = x + w / 2, y + h / 2
        x0, y0 = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
        patch = image[y0 : int(cy + side / 2), x0 : int(cx + side / 2)]
        return cv2.resize(patch, (size, size))

    neutral = crop(neutral_row)
    for a in aus:
        key = au_key(a)
        apex_row = max(seq_rows, key=lambda r: float(r[f"{key}_i"]))
        pair = np.concatenate([neutral, crop(apex_row)], axis=1)
        band = np.full((22, pair.shape[1], 3), 255, np.uint8)
        r = result["per_au"][key]["r"]
        text = f"{key} @{float(apex_row[f'{key}_i']):.1f}  r={'n/a' if r is None else f'{r:.2f}'}"
        cv2.putText(band, text, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 160) if r is None or r < REALISM_R
                    else (0, 110, 0), 1, cv2.LINE_AA)  # fmt: skip
        tiles.append(np.concatenate([band, pair], axis=0))
    cols = 4
    while len(tiles) % cols:
        tiles.append(np.full_like(tiles[0], 255))
    grid = np.concatenate([np.concatenate(tiles[i : i + cols], axis=1) for i in range(0, len(tiles), cols)], axis=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    from PIL import Image

    Image.fromarray(cv2.cvtColor(grid, cv2.COLOR_BGR2RGB)).quantize(128).save(path, optimize=True)
