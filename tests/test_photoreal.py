"""Photo-real AU synthesis: the applied AU deformation is what MediaPipe measures on the warped photo, the data set
is deterministic, loads with the synthetic reader and never uses the collection's test people."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from aunets.core.au import BP4D_AUS
from aunets.models.synth.correspondence import load_correspondence
from aunets.models.synth.episodes import plan_episodes
from aunets.models.synth.facemodel import load_face_model

pytest.importorskip("mediapipe", reason="photo-real synthesis needs mediapipe: pip install -e '.[teacher]'")


@pytest.fixture(scope="module")
def neutral_face() -> tuple[np.ndarray, np.ndarray]:
    """The bundled clip's first frame (a near-neutral face, mouth closed), RGB, and its landmarks (478, 3) px."""
    from aunets.models.synth.landmarks import FaceLandmarkFitter
    from tests.conftest import clip_frames

    rgb = cv2.cvtColor(clip_frames(1)[0], cv2.COLOR_BGR2RGB)
    with FaceLandmarkFitter() as fit:
        lm = fit(rgb)
    assert lm is not None
    return rgb, lm


def _applied_and_measured(neutral_face: tuple[np.ndarray, np.ndarray], au: int) -> tuple[np.ndarray, np.ndarray]:
    """(applied, measured) landmark displacements (478, 2) px of ``au`` at apex: the applied one is the warp's
    target, the measured one MediaPipe's landmarks on the warped image minus those on the unwarped one."""
    from aunets.models.synth.landmarks import FaceLandmarkFitter
    from aunets.models.synth.photoface import PhotoFace

    rgb, lm = neutral_face
    model = load_face_model()
    face = PhotoFace.fit(rgb, lm, model, load_correspondence())
    intensity = np.zeros(len(BP4D_AUS), np.float32)
    intensity[BP4D_AUS.index(au)] = 1.0
    image, moved = face.render(model.expression_weights(intensity))
    with FaceLandmarkFitter() as fit:
        after = fit(image)
        before = fit(face.render(np.zeros(len(model.expr_names), np.float32))[0])
    assert after is not None and before is not None
    return (moved - lm)[:, :2], (after - before)[:, :2]


def test_au12_moves_the_mouth_corners_up_and_out_by_the_applied_amount(neutral_face) -> None:
    applied, measured = _applied_and_measured(neutral_face, 12)
    right, left = 61, 291  # the subject's right corner is on the image left
    for corner, out_sign in ((right, -1.0), (left, 1.0)):
        dx, dy = applied[corner]
        assert dy < -3.0 and dx * out_sign > 1.0, f"AU12 should move corner {corner} up and out, applied {dx, dy}"
        mx, my = measured[corner]
        assert my < 0 and mx * out_sign > 0
        assert 0.5 * abs(dy) < abs(my) < 1.6 * abs(dy), (corner, applied[corner], measured[corner])
        assert np.hypot(mx - dx, my - dy) < 0.5 * np.hypot(dx, dy), (corner, applied[corner], measured[corner])


def test_au4_lowers_the_inner_brows(neutral_face) -> None:
    applied, measured = _applied_and_measured(neutral_face, 4)
    for brow in (55, 285):
        assert applied[brow, 1] > 2.0, f"AU4 should lower inner brow {brow}, applied {applied[brow]}"
        assert measured[brow, 1] > 0.4 * applied[brow, 1], (brow, applied[brow], measured[brow])
    # and the mouth stays where it was
    assert np.abs(measured[[61, 291, 13, 14]]).max() < 1.5


def test_parted_lips_show_a_dark_mouth_with_teeth(neutral_face) -> None:
    from aunets.models.synth.landmarks import LIPS_INNER_LOWER, LIPS_INNER_UPPER
    from aunets.models.synth.photoface import PhotoFace

    rgb, lm = neutral_face
    model = load_face_model()
    face = PhotoFace.fit(rgb, lm, model, load_correspondence())
    weights = np.zeros(len(model.expr_names), np.float32)
    weights[model.expr_index["jawOpen"]] = 0.35
    image, moved = face.render(weights)
    opening = np.concatenate([moved[list(LIPS_INNER_UPPER), :2], moved[list(LIPS_INNER_LOWER)[::-1][1:-1], :2]])
    mask = np.zeros(rgb.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(opening - 0.5).astype(np.int32)], 1)
    cv2.erode(mask, np.ones((3, 3), np.uint8), dst=mask)
    lum = image.astype(np.float32).mean(2)
    lips = rgb.astype(np.float32).mean(2)[cv2.dilate(mask, np.ones((9, 9), np.uint8)) > 0].mean()
    inside = lum[mask > 0]
    assert mask.sum() > 30, "the jaw should open the lips"
    assert np.percentile(inside, 10) < 0.5 * lips, "a dark mouth inside"
    assert np.percentile(inside, 95) > lips, "teeth brighter than the lips"


def test_eyeballs_stay_rigid_while_the_lids_move(neutral_face) -> None:
    """On a textured image (so any resampling shows) the widened lids move but the iris pixels are untouched."""
    from aunets.models.synth.photoface import PhotoFace

    rgb, lm = neutral_face
    texture = np.random.default_rng(0).integers(0, 256, rgb.shape, dtype=np.uint8)
    model = load_face_model()
    face = PhotoFace.fit(texture, lm, model, load_correspondence())
    weights = np.zeros(len(model.expr_names), np.float32)
    weights[model.expr_index["eyeWide_L"]] = weights[model.expr_index["eyeWide_R"]] = 1.0
    image, moved = face.render(weights)
    assert np.abs(moved[[159, 386], 1] - lm[[159, 386], 1]).min() > 1.0, "the upper lids should rise"
    for iris in (468, 473):
        x, y = np.round(lm[iris, :2] - 0.5).astype(int)
        np.testing.assert_array_equal(image[y - 1 : y + 2, x - 1 : x + 2], texture[y - 1 : y + 2, x - 1 : x + 2])


def test_episode_plans_show_aus_alone_and_do_not_tie_au12_to_10_14_17() -> None:
    rng = np.random.default_rng(0)
    events = [ev for _ in range(400) for ev in plan_episodes(4.0, rng)[1]]
    single = np.mean([len(ev) == 1 for ev in events])
    assert 0.4 <= single <= 0.6
    assert {ev[0] for ev in events if len(ev) == 1} == set(BP4D_AUS)
    with12 = [set(ev) for ev in events if 12 in ev]
    for other in (10, 14, 17):
        assert np.mean([other in ev for ev in with12]) < 0.3, other


def test_correspondence_asset_is_a_valid_barycentric_map() -> None:
    corr = load_correspondence()
    model = load_face_model()
    assert corr.vertices.shape == (478, 3) and corr.weights.shape == (478, 3) and corr.reference.shape == (478, 3)
    assert corr.vertices.min() >= 0 and corr.vertices.max() < model.n_vertices
    np.testing.assert_allclose(corr.weights.sum(1), 1.0, atol=1e-5)
    # the mean head's mouth corners lie at the ICT mouth corners' height, left/right of the midline
    pts = corr.points(model.neutral)
    assert pts[61, 0] < -1.5 < 1.5 < pts[291, 0] and abs(pts[61, 1] - pts[291, 1]) < 0.3


def _collection(root: Path) -> Path:
    """A real-face collection layout made from the bundled clip: London people 000 (its test split) and 001."""
    from tests.conftest import clip_frames

    frames = clip_frames(1)
    for kind in ("neutral", "smiling"):
        (root / "london" / kind).mkdir(parents=True, exist_ok=True)
        for name in ("000", "001"):
            cv2.imwrite(str(root / "london" / kind / f"{name}.jpg"), frames[0][:, 80:560])
    return root


def test_written_set_is_deterministic_loads_and_never_uses_test_people(tmp_path: Path) -> None:
    from aunets.models.data.synthetic import load_synthetic
    from aunets.models.synth.dataset import LABEL_COLUMNS
    from aunets.models.synth.photoreal import PhotoSynthConfig, generate

    photos = _collection(tmp_path / "realfaces")
    config = PhotoSynthConfig(photos=str(photos), sets=("london",), sequences=2, seconds=0.6, seed=3, workers=1,
                              frame_size=(320, 240), script="12:0.1-0.4")  # fmt: skip
    a, b = generate(config, tmp_path / "a", progress=False), generate(config, tmp_path / "b", progress=False)
    labels = (a / "labels.csv").read_text()
    assert labels == (b / "labels.csv").read_text()
    rows = list(csv.DictReader(labels.splitlines()))
    assert list(rows[0]) == LABEL_COLUMNS
    assert len(rows) == 2 * 15
    assert {r["subject"] for r in rows} == {"london_001"}  # london_000 is a test person
    for r in rows[:3] + rows[-3:]:
        assert (a / r["full"]).read_bytes() == (b / r["full"]).read_bytes()
    apex = [r for r in rows if int(r["frame"]) in (5, 6, 7, 8)]
    assert all(r["AU12"] == "1" and float(r["AU12_i"]) > 0.9 for r in apex)
    assert all(r["AU06"] == "0" for r in rows)
    manifest = json.loads((a / "manifest.json").read_text())
    assert manifest["generator"] == "aunets-synth" and manifest["source"] == "photoreal"
    assert "DeBruine" in manifest["photo_sets"]["london"]["attribution"]
    frames = load_synthetic(a)
    assert len(frames.records) == len(rows) and frames.aus == BP4D_AUS
    rec = frames.records[1]
    assert rec.box is not None and rec.prev_image is not None and rec.image.is_file()
    w, h = rec.box[2], rec.box[3]
    assert 40 < w < 240 and 40 < h < 240


def test_cli_names_the_fix_for_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from aunets.cli import main

    assert main(["synth-photo", "--photos", str(tmp_path)]) == 1
    assert "give --out DIR" in capsys.readouterr().err
    assert main(["synth-photo", "--photos", str(tmp_path), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("aunets synth-photo: error:") and "real-face collection" in err


def test_interfaces_neutral_train_people_are_warped_and_flips_mirror_the_same_person(tmp_path: Path) -> None:
    from aunets.models.synth.photoreal import PhotoSynthConfig, select_people

    photos = _collection(tmp_path / "realfaces")
    (photos / "interfaces").mkdir()
    rows = [("001", "N"), ("002", "N"), ("004", "L"), ("005", "S"), ("006", "N")]
    (photos / "interfaces" / "labels.csv").write_text(
        "image,expression,tags\n" + "".join(f"{n}.jpg,{e},-\n" for n, e in rows))
    image = np.zeros((40, 60, 3), np.uint8)
    image[:, :20] = 255  # bright left third
    for n, _ in rows:
        cv2.imwrite(str(photos / "interfaces" / f"{n}.jpg"), image)
    config = PhotoSynthConfig(photos=str(photos), sets=("london", "interfaces"), flips=True, val_fraction=0.4)
    people = select_people(config)
    # test people (london_000, interfaces_001 and _005) and smiles (interfaces_004) are never used
    assert sorted({p.subject for p in people}) == ["interfaces_002", "interfaces_006", "london_001"]
    assert len(people) == 6 and len({p.key for p in people}) == 6
    for subject in {p.subject for p in people}:
        twins = [p for p in people if p.subject == subject]
        assert sorted(p.flip for p in twins) == [False, True] and len({p.split for p in twins}) == 1
    plain, mirrored = (next(p for p in people if p.subject == "interfaces_002" and p.flip is f) for f in (False, True))
    assert plain.read()[:, :10].mean() > 200 and mirrored.read()[:, -10:].mean() > 200
    assert mirrored.read()[:, :10].mean() < 50
    assert all(not p.flip for p in select_people(PhotoSynthConfig(photos=str(photos), sets=("london",))))
