"""BP4D in the original AUNets layout: a fixture tree made here, loaded with the right labels and folds."""

from __future__ import annotations

from pathlib import Path

import pytest

from aunets.core.errors import ConfigError
from aunets.models.data import detect_layout, load_dataset
from aunets.models.data.bp4d import bp4d_folds, load_bp4d

# three DRML-style subject folds
FOLDS = {0: (["F001", "M001"], ["F002"], ["M002"]), 1: (["F002", "M002"], ["M001"], ["F001"]),
         2: (["F001", "M002"], ["F002"], ["M001"])}
AUS = (1, 12)


def _label(subject: str, frame: int, au: int) -> int:
    return int((frame + au + len(subject)) % 3 == 0)


def make_bp4d(root: Path) -> Path:
    faces = root / "images" / "Faces"
    for subject in ("F001", "F002", "M001", "M002"):
        for frame in range(1, 4):
            p = faces / subject / "T1" / f"{frame:04d}.jpg"
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(b"")
    lists = root / "BP4D"
    for k, (train, val, test) in FOLDS.items():
        for au in AUS:
            d = lists / "normal" / f"fold_{k}" / f"AU{au:02d}"
            d.mkdir(parents=True)
            for split, subjects in (("train", train), ("val", val), ("test", test)):
                lines = [f"/old/machine/Faces/{s}/T1/{f:04d}.jpg {_label(s, f, au)}" for s in subjects
                         for f in range(1, 4)]
                (d / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return lists


def test_bp4d_layout_labels_and_folds(tmp_path: Path) -> None:
    lists = make_bp4d(tmp_path)
    assert detect_layout(lists) == "bp4d"
    assert bp4d_folds(lists) == [0, 1, 2]
    path_map = {"/old/machine": str(tmp_path / "images")}
    for k, (train, val, test) in FOLDS.items():
        frames = load_bp4d(lists, fold=k, path_map=path_map)
        assert frames.aus == AUS
        for split, subjects in (("train", train), ("val", val), ("test", test)):
            part = frames.filter(split=split)
            assert part.subjects() == sorted(subjects)
            assert len(part) == 3 * len(subjects)
            for r in part:
                assert r.image.is_file()
                assert r.labels == tuple(_label(r.subject, r.frame, a) for a in AUS)
                assert r.view == 4 and r.box is None
                assert r.flow_image == tmp_path / "images" / "Faces_Flow" / r.subject / "T1" / f"{r.frame:04d}.jpg"
                assert r.sequence == f"{r.subject}/T1"


def test_bp4d_through_generic_loader_and_errors(tmp_path: Path) -> None:
    lists = make_bp4d(tmp_path)
    frames = load_dataset(lists, fold=1, aus=(12,))
    assert frames.aus == (12,) and frames.kind == "bp4d"
    with pytest.raises(ConfigError, match="fold 7"):
        load_bp4d(lists, fold=7)
    with pytest.raises(ConfigError, match="AU"):
        load_bp4d(lists, fold=0, aus=(4,))
