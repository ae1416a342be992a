"""Contact sheet of the photo-real generator: for 3 train people, the neutral photo and each AU at apex."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from aunets.models.synth.correspondence import load_correspondence
from aunets.models.synth.facemodel import load_face_model
from aunets.models.synth.landmarks import FACE_OVAL
from aunets.models.synth.photoface import PhotoFace
from aunets.models.synth.preview import apex_columns, with_au_header

TILE = 168


def render_photo_grid(photos: str, seed: int = 0, people: int = 3, intensity: float = 1.0) -> np.ndarray:
    """RGB uint8 sheet: rows = people (train split, seeded order), columns = neutral, then each AU at ``intensity``."""
    from aunets.models.synth.photoreal import PhotoSynthConfig, fit_people, select_people

    chosen = select_people(PhotoSynthConfig(photos=photos, seed=seed, people=people, val_fraction=0.0))
    fits = fit_people(chosen)
    model = load_face_model()
    corr = load_correspondence()
    rows = []
    for person in chosen:
        if person.subject not in fits:
            continue
        bgr = cv2.imread(person.photo)
        if bgr is None:
            continue
        photo = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        lm = fits[person.subject]
        face = PhotoFace.fit(photo, lm, model, corr)
        oval = lm[list(FACE_OVAL), :2]
        cx, cy = oval.mean(0)
        side = 1.2 * float(max(np.ptp(oval[:, 0]), np.ptp(oval[:, 1])))
        x0, y0 = int(cx - side / 2), int(cy - side / 2 + 0.03 * side)
        tiles = []
        for inten in apex_columns(intensity):
            img, _ = face.render(model.expression_weights(inten), intensity=inten)
            pad = cv2.copyMakeBorder(img, 200, 200, 200, 200, cv2.BORDER_REPLICATE)
            crop = pad[y0 + 200 : y0 + 200 + int(side), x0 + 200 : x0 + 200 + int(side)]
            tiles.append(cv2.resize(crop, (TILE, TILE), interpolation=cv2.INTER_AREA))
        rows.append(np.concatenate(tiles, axis=1))
    return with_au_header(rows, TILE)


def make_photo_preview(out: Path, photos: str, seed: int = 0) -> Path:
    """Write the contact sheet (PNG, or JPEG at quality 88 for a .jpg name) to ``out``; returns its path."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    bgr = cv2.cvtColor(render_photo_grid(photos, seed), cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(out), bgr, [cv2.IMWRITE_JPEG_QUALITY, 88] if out.suffix.lower() in (".jpg", ".jpeg") else [])
    return out
