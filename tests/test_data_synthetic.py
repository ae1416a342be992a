"""The synthetic generator's output through the dataset layer and the crop/flow cache; the CSV manifest."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from aunets.core.au import BP4D_AUS
from aunets.core.crop import crop_square
from aunets.core.flow import FlowConfig, encode_flow
from aunets.core.flow_registry import create_flow_backend
from aunets.models.data import detect_layout, load_dataset
from aunets.models.data.cache import CacheSpec, FrameCache, build_cache
from aunets.models.data.expressions import expression_labels


def make_synth(out: Path, subjects: int = 5, views: int = 2, seconds: float = 1.0, seed: int = 3,
               frame_size: tuple[int, int] = (160, 120), script: str = "") -> Path:
    """A tiny real synthetic set (the generator of aunets.models.synth), small frames for speed."""
    from aunets.models.synth import SynthConfig, generate

    generate(SynthConfig(subjects=subjects, views=views, seconds=seconds, seed=seed, frame_size=frame_size,
                         size=64, video=False, workers=1, script=script), out, progress=False)
    return out


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_synth(tmp_path_factory.mktemp("synth") / "set")


@pytest.mark.slow
def test_synthetic_records_match_labels_csv(synth: Path) -> None:
    assert detect_layout(synth) == "synthetic"
    frames = load_dataset(synth)
    assert frames.aus == BP4D_AUS
    with (synth / "labels.csv").open() as fh:
        rows = {(r["sequence"], int(r["frame"])): r for r in csv.DictReader(fh)}
    assert len(frames) == len(rows)
    splits = json.loads((synth / "manifest.json").read_text())["splits"]
    for r in frames:
        row = rows[(r.sequence, r.frame)]
        assert r.labels == tuple(int(row[f"AU{a:02d}"]) for a in BP4D_AUS)
        assert r.view == int(row["view"]) and r.split == row["split"]
        assert int(r.subject) in splits[r.split]
        assert r.box == pytest.approx(tuple(float(row[k]) for k in ("box_x", "box_y", "box_w", "box_h")))
        assert (r.prev_image is None) == (r.frame == 0)
    assert set(frames.filter(split="test").subjects()).isdisjoint(frames.filter(split="train").subjects())


@pytest.mark.slow
def test_cache_centre_is_the_runtime_crop_and_flow(synth: Path, tmp_path: Path) -> None:
    frames = load_dataset(synth).filter(split="train")
    frames = frames.subsample_sequences(30)
    spec = CacheSpec(size=48, margin=1.3, pad=1.25, flow=FlowConfig())
    cache = build_cache(frames, tmp_path / "cache", spec, progress=False)
    assert cache.rgb.shape == (len(frames), 60, 60, 3)
    backend = create_flow_backend("dis")
    neutral = np.zeros((48, 48, 3), dtype=int)
    neutral[..., :2] = 128  # the encoding of zero motion
    diffs_rgb, diffs_flow, diffs_still, magnitudes = [], [], [], []
    for i in range(1, 13):
        r = frames.records[i]
        assert r.box is not None
        if r.prev_image is None:
            continue
        full = np.asarray(cv2.imread(str(r.image)))
        crop = crop_square(full, r.box, 1.3, 48)  # what the runtime pipeline computes
        prev_full = np.asarray(cv2.imread(str(r.prev_image)))
        prev = crop_square(cv2.cvtColor(prev_full, cv2.COLOR_BGR2GRAY), r.box, 1.3, 48)
        flow = encode_flow(backend.compute(prev, cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)), "paper", 0.02).astype(int)
        rgb_c, flow_c = cache.centre(i)
        assert rgb_c.shape == (48, 48, 3) and flow_c is not None
        diffs_rgb.append(np.abs(rgb_c.astype(int) - cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)).mean())
        diffs_flow.append(np.abs(flow_c.astype(int) - flow).mean())
        diffs_still.append(np.abs(neutral - flow).mean())
        magnitudes.append((flow_c[..., 2].mean(), flow[..., 2].mean()))
    assert len(diffs_flow) >= 8
    # padded training cache: same geometry up to resampling
    assert max(diffs_rgb) < 8.0, diffs_rgb
    # ... and the same motion: DIS on the larger window differs per pixel (like the runtime's own box-to-box noise),
    # but far less than the motion itself, and with the same scale (a scale taken from the padded width would
    # shrink the magnitude channel by 1/1.25)
    assert np.mean(diffs_flow) < 0.5 * np.mean(diffs_still), (diffs_flow, diffs_still)
    cached, runtime = np.sum(magnitudes, axis=0)
    assert 0.9 < cached / runtime < 1.1, magnitudes
    # unpadded (validation) cache: exactly the runtime's crop and flow image
    exact = build_cache(frames, tmp_path / "exact", CacheSpec(size=48, margin=1.3, pad=1.0), progress=False)
    for i in (1, 5):
        r = frames.records[i]
        assert r.box is not None and r.prev_image is not None
        full = np.asarray(cv2.imread(str(r.image)))
        crop = crop_square(full, r.box, 1.3, 48)
        prev_full = np.asarray(cv2.imread(str(r.prev_image)))
        prev = crop_square(cv2.cvtColor(prev_full, cv2.COLOR_BGR2GRAY), r.box, 1.3, 48)
        flow = encode_flow(backend.compute(prev, cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)), "paper", 0.02)
        np.testing.assert_array_equal(exact.centre(i)[0], cv2.cvtColor(crop, cv2.COLOR_BGR2RGB))
        np.testing.assert_array_equal(exact.centre(i)[1], flow)
    # jitter: deterministic per generator seed, the right size, different from the centre crop
    a, fa = cache.jittered(3, np.random.default_rng(7), 0.05, 0.08)
    b, _ = cache.jittered(3, np.random.default_rng(7), 0.05, 0.08)
    assert a.shape == (48, 48, 3) and fa is not None and fa.shape == (48, 48, 3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, cache.centre(3)[0])


@pytest.mark.slow
def test_cache_resumes_and_is_reused(synth: Path, tmp_path: Path) -> None:
    frames = load_dataset(synth).filter(split="val")
    spec = CacheSpec(size=32, pad=1.1, flow=FlowConfig())
    full = build_cache(frames, tmp_path / "a", spec, progress=False)
    # interrupt a second build after the first chunk: meta says 8 done; resuming completes it identically
    partial_dir = tmp_path / "b"
    build_cache(frames, partial_dir, spec, progress=False, chunk=8)
    d = next(partial_dir.iterdir())
    meta = json.loads((d / "meta.json").read_text())
    meta["done"] = 8
    (d / "meta.json").write_text(json.dumps(meta))
    rgb = np.load(d / "rgb.npy", mmap_mode="r+")
    rgb[8:] = 0
    rgb.flush()
    del rgb
    with pytest.raises(Exception, match="incomplete"):
        FrameCache(d)
    resumed = build_cache(frames, partial_dir, spec, progress=False)
    np.testing.assert_array_equal(np.asarray(resumed.rgb), np.asarray(full.rgb))
    np.testing.assert_array_equal(resumed.labels, frames.labels())


def test_expression_labels() -> None:
    aus = BP4D_AUS
    lab = np.zeros((4, len(aus)), dtype=np.int8)
    lab[0, [aus.index(6), aus.index(12)]] = 1  # happy
    lab[1, [aus.index(1), aus.index(4), aus.index(15)]] = 1  # sad (also has 1+... no surprise: 2 absent)
    lab[3, aus.index(24)] = 1  # other
    y, names = expression_labels(lab, aus)
    assert [names[i] for i in y] == ["happy", "sad", "neutral", "other"]


def test_csv_manifest(tmp_path: Path) -> None:
    img = np.full((40, 40, 3), 128, np.uint8)
    rows = []
    for f in range(3):
        cv2.imwrite(str(tmp_path / f"f{f}.png"), img)
        rows.append(f"f{f}.png,S1,4,seqA,{f},{f % 2},,0,0,40,40")
    (tmp_path / "manifest.csv").write_text("path,subject,view,sequence,frame,AU12,AU04,box_x,box_y,box_w,box_h\n"
                                           + "\n".join(rows) + "\n")
    assert detect_layout(tmp_path) == "csv"
    frames = load_dataset(tmp_path)
    assert frames.aus == (12, 4)
    assert [r.labels for r in frames] == [(0, -1), (1, -1), (0, -1)]
    assert frames.records[2].prev_image == tmp_path / "f1.png" and frames.records[0].box == (0, 0, 40, 40)
