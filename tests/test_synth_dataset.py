"""Synthetic data set writer: layout, one label row per written frame, determinism, scripted clips, CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("numba")

from aunets.cli import main
from aunets.core.au import BP4D_AUS, au_key
from aunets.models.synth.dataset import LABEL_COLUMNS, SynthConfig, generate


def _read(path: Path) -> np.ndarray:
    import cv2

    img = cv2.imread(str(path))
    assert img is not None, f"cannot read {path}"
    return np.asarray(img)


def _rows(out: Path) -> list[dict[str, str]]:
    with open(out / "labels.csv") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_layout_and_one_row_per_written_frame(tmp_path: Path) -> None:
    cfg = SynthConfig(subjects=3, views=2, seconds=0.2, seed=3, workers=2, val_fraction=0.34, test_fraction=0.34)
    out = generate(cfg, tmp_path / "ds", progress=False)
    rows = _rows(out)
    with open(out / "labels.csv") as f:
        assert next(csv.reader(f)) == LABEL_COLUMNS
    jpgs = sorted(p.relative_to(out).as_posix() for p in out.glob("sequences/*/*/*.jpg"))
    assert len(rows) == 3 * 2 * 5
    assert sorted([r["crop"] for r in rows] + [r["full"] for r in rows]) == jpgs
    man = json.loads((out / "manifest.json").read_text())
    assert man["generator"] == "aunets-synth" and man["aus"] == list(BP4D_AUS) and man["fps"] == 25
    assert sorted(s for ids in man["splits"].values() for s in ids) == [0, 1, 2]
    assert all(len(v) == 1 for v in man["splits"].values())
    assert SynthConfig.from_json(man["config"]) == cfg
    split_of = {s: k for k, ids in man["splits"].items() for s in ids}

    for r in rows:
        assert r["split"] == split_of[int(r["subject"])]
        assert r["sequence"] == f"s{int(r['subject']):03d}_v{r['view']}_q00"
        for a in BP4D_AUS:
            assert int(r[au_key(a)]) == int(float(r[f"{au_key(a)}_i"]) >= man["presence_threshold"])
        full = _read(out / r["full"])
        assert full.shape == (480, 640, 3) and _read(out / r["crop"]).shape == (224, 224, 3)
        w, h = float(r["box_w"]), float(r["box_h"])
        assert 0.8 < h / w < 1.8 and w > 60
    frontal = [r for r in rows if r["view"] == "4"]
    assert frontal and all(abs(float(r["yaw"])) < 10 and abs(float(r["pitch"])) < 10 for r in frontal)
    assert (out / "sequences" / rows[0]["sequence"] / "crop.mp4").stat().st_size > 0


def test_same_seed_same_labels_and_images(tmp_path: Path) -> None:
    cfg = SynthConfig(subjects=1, views=1, seconds=0.12, seed=11, full=False, video=False, workers=1)
    a = generate(cfg, tmp_path / "a", progress=False)
    b = generate(cfg, tmp_path / "b", progress=False)
    assert (a / "labels.csv").read_bytes() == (b / "labels.csv").read_bytes()
    files = sorted(p.relative_to(a) for p in a.glob("sequences/*/crop/*.jpg"))
    assert files and all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    c = generate(SynthConfig(subjects=1, views=1, seconds=0.12, seed=12, full=False, video=False, workers=1),
                 tmp_path / "c", progress=False)  # fmt: skip
    assert (a / files[0]).read_bytes() != (c / files[0]).read_bytes()


def test_cli_script_one_au_frontal_no_jitter(tmp_path: Path) -> None:
    out = tmp_path / "clip"
    args = ["--subjects", "1", "--views", "1", "--seconds", "1.6", "--script", "12:0.5-1.0", "--no-jitter"]
    rc = main(["synth", *args, "--no-full", "--no-video", "--workers", "1", "--no-progress", "--out", str(out)])
    assert rc == 0
    rows = _rows(out)
    assert len(rows) == 40
    assert all(float(r["yaw"]) == 0 and float(r["pitch"]) == 0 and float(r["roll"]) == 0 for r in rows)
    assert all(r["full"] == "" for r in rows)
    on = np.array([int(r["AU12"]) for r in rows])
    assert on[12:26].all() and not on[:5].any() and not on[33:].any()
    others = [au_key(a) for a in BP4D_AUS if a != 12]
    assert all(int(r[k]) == 0 and float(r[k + "_i"]) == 0 for r in rows for k in others)
    import cv2

    imgs = [cv2.GaussianBlur(_read(out / rows[i]["crop"]), (0, 0), 2.0).astype(np.float32)[120:200, 50:174]
            for i in (0, 4, 18)]  # fmt: skip
    # around the mouth nothing moves before the episode (only sensor noise); the smile changes the image
    assert np.abs(imgs[1] - imgs[0]).mean() < np.abs(imgs[2] - imgs[0]).mean() / 3


@pytest.mark.slow
def test_cli_preview(tmp_path: Path) -> None:

    png = tmp_path / "p.png"
    assert main(["synth", "--preview", str(png)]) == 0
    sheet = _read(png)
    assert sheet.shape[1] == 13 * 160 and sheet.shape[0] > 9 * 160
