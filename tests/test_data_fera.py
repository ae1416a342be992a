"""FERA 2017 layout: per-view frame folders + occurrence CSVs, made here, loaded with the right labels."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from aunets.core.au import FERA2017_AUS
from aunets.models.data import detect_layout, load_dataset


def _occ(frame: int, au: int) -> int:
    if frame == 3 and au == 10:
        return 9  # unknown
    return int((frame * au) % 4 == 1)


def make_fera(root: Path) -> Path:
    img = np.full((32, 32, 3), 100, np.uint8)
    for split, sessions in (("Train", ["F001_T1", "M003_T2"]), ("Valid", ["F007_T1"])):
        (root / split / "occ").mkdir(parents=True)
        for session in sessions:
            rows = ["Frame," + ",".join(str(a) for a in FERA2017_AUS)]
            for f in range(1, 5):
                rows.append(f"{f}," + ",".join(str(_occ(f, a)) for a in FERA2017_AUS))
            (root / split / "occ" / f"FERA17_TR_{session}.csv").write_text("\n".join(rows) + "\n")
            for view in (1, 6, 9):
                d = root / split / "frames" / f"{session}_{view}"
                d.mkdir(parents=True)
                for f in range(1, 5):
                    cv2.imwrite(str(d / f"{f:05d}.jpg"), img)
    return root


def test_fera_layout_labels_views(tmp_path: Path) -> None:
    root = make_fera(tmp_path / "FERA17")
    assert detect_layout(root) == "fera"
    frames = load_dataset(root)
    assert frames.aus == FERA2017_AUS
    train = frames.filter(split="train")
    assert len(train) == 2 * 3 * 4 and len(frames.filter(split="val")) == 3 * 4
    assert sorted({-1 if r.view is None else r.view for r in train}) == [0, 5, 8]
    assert train.subjects() == ["F001", "M003"]
    for r in frames:
        expected = tuple(-1 if _occ(r.frame, a) == 9 else _occ(r.frame, a) for a in FERA2017_AUS)
        assert r.labels == expected
        assert (r.prev_image is None) == (r.frame == 1)
        if r.prev_image is not None:
            assert r.prev_image.name == f"{r.frame - 1:05d}.jpg" and r.prev_image.parent == r.image.parent
    labels = frames.labels()
    assert (labels == -1).sum() == 3 * 3  # frame 3, AU10, in 3 sessions x 3 views
    assert len(frames.sequences()) == 9
