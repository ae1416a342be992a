"""Synthetic face generator: determinism, AU geometry, AU pixel regions, pose labels, dynamics."""

from __future__ import annotations

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
pytest.importorskip("numba")

from aunets.core.au import BP4D_AUS  # noqa: E402
from aunets.core.errors import ConfigError  # noqa: E402
from aunets.models.synth.dynamics import (  # noqa: E402
    BASE_RATES,
    PRESENCE_THRESHOLD,
    build_timeline,
    measured_base_rates,
    parse_script,
    sample_episodes,
)
from aunets.models.synth.facemodel import load_face_model  # noqa: E402
from aunets.models.synth.renderer import (  # noqa: E402
    Lighting,
    Placement,
    Pose,
    face_box,
    pose_vertices,
    project,
    render_face,
)
from aunets.models.synth.subject import prepare_subject, sample_subject  # noqa: E402


@pytest.fixture(scope="module")
def model():  # type: ignore[no-untyped-def]
    return load_face_model()


@pytest.fixture(scope="module")
def subject(model):  # type: ignore[no-untyped-def]
    return prepare_subject(model, sample_subject(123, 0))


def _mesh(model, subject, au: int, intensity: float = 1.0) -> np.ndarray:  # type: ignore[no-untyped-def]
    inten = np.zeros(len(BP4D_AUS), np.float32)
    if au:
        inten[BP4D_AUS.index(au)] = intensity
    return model.deform(subject.base, model.expression_weights(inten))


def test_au12_moves_lip_corners_up_and_outward(model, subject) -> None:  # type: ignore[no-untyped-def]
    lm = model.landmarks68
    n, s = _mesh(model, subject, 0), _mesh(model, subject, 12)
    for i in (48, 54):  # right and left lip corner
        v = lm[i]
        assert s[v, 1] - n[v, 1] > 0.2, "AU12 must raise the lip corner (cm)"
        assert abs(s[v, 0]) - abs(n[v, 0]) > 0.2, "AU12 must pull the lip corner outward (cm)"


def test_au1_raises_inner_brows(model, subject) -> None:  # type: ignore[no-untyped-def]
    lm = model.landmarks68
    n, s = _mesh(model, subject, 0), _mesh(model, subject, 1)
    inner = s[lm[[21, 22]], 1] - n[lm[[21, 22]], 1]
    outer = s[lm[[17, 26]], 1] - n[lm[[17, 26]], 1]
    assert (inner > 0.3).all()
    assert (inner > outer).all(), "AU1 raises the inner brow more than the outer brow"


def test_au4_lowers_and_draws_brows_together(model, subject) -> None:  # type: ignore[no-untyped-def]
    lm = model.landmarks68
    n, s = _mesh(model, subject, 0), _mesh(model, subject, 4)
    brows = lm[17:27]
    assert (s[brows, 1] - n[brows, 1]).mean() < -0.2, "AU4 lowers the brows"
    gap_n = n[lm[22], 0] - n[lm[21], 0]
    gap_s = s[lm[22], 0] - s[lm[21], 0]
    assert gap_s < gap_n - 0.1, "AU4 draws the inner brows together"


def _frontal_render(model, subject, au: int, pose: Pose | None = None):  # type: ignore[no-untyped-def]
    pose = pose or Pose()
    xy, _ = project(pose_vertices(subject.base[model.landmarks68], pose), 70.0)
    bx, by, bw, bh = face_box(xy)
    scale = 200.0 / max(bw, bh)
    placement = Placement(scale, 320 - scale * (bx + bw / 2), 240 - scale * (by + bh / 2))
    inten = np.zeros(len(BP4D_AUS), np.float32)
    if au:
        inten[BP4D_AUS.index(au)] = 1.0
    bg = np.full((480, 640, 3), 100, np.uint8)
    r = render_face(model, subject, model.expression_weights(inten), pose, Lighting(), placement, bg)
    x0, y0, side = r.window
    lm_crop = (r.landmarks - np.array([x0, y0])) * (224 / side)
    return r, lm_crop


# Where each AU acts, as rows of the crop between landmark lines: "upper" = above the lower eyelids,
# "eyes" = from the brows to the bottom of the nose, "lower" = below the nose tip.
AU_REGION = {1: "upper", 2: "upper", 4: "upper", 6: "eyes", 7: "eyes", 10: "lower", 12: "lower", 14: "lower",
             15: "lower", 17: "lower", 23: "lower", 24: "lower"}  # fmt: skip


@pytest.mark.parametrize("au", BP4D_AUS)
def test_each_au_changes_pixels_mainly_in_its_region(model, subject, au: int) -> None:  # type: ignore[no-untyped-def]
    neutral, lm = _frontal_render(model, subject, 0)
    active, _ = _frontal_render(model, subject, au)
    diff = np.abs(active.crop.astype(np.float32) - neutral.crop.astype(np.float32)).sum(2)
    assert diff.sum() > 2000, f"AU{au} must change the image"
    rows = np.arange(diff.shape[0])[:, None]
    eye_low = lm[[40, 41, 46, 47], 1].max() + 3
    brow = lm[17:27, 1].min() - 8
    nose_bottom = lm[31:36, 1].min() - 4
    nose_tip = lm[30, 1]
    region = {"upper": rows < eye_low, "eyes": (rows > brow) & (rows < nose_bottom + 6), "lower": rows > nose_tip}
    mask = np.broadcast_to(region[AU_REGION[au]], diff.shape)
    frac = diff[mask].sum() / diff.sum()
    assert frac > 0.7, f"AU{au}: only {frac:.2f} of the pixel change is in the {AU_REGION[au]} face"


def _pose_from_landmarks(model, subject, pose: Pose) -> tuple[float, float, float]:  # type: ignore[no-untyped-def]
    """Recover (yaw, pitch, roll) from projected 2D landmarks with cv2.solvePnP (independent of the labels)."""
    pts3 = subject.base[model.landmarks68].astype(np.float64)
    xy, _ = project(pose_vertices(subject.base[model.landmarks68], pose), 70.0)
    f, c = 800.0, 300.0
    pts2 = (xy * f + c).astype(np.float64)
    k = np.array([[f, 0, c], [0, f, c], [0, 0, 1]], np.float64)
    ok, rvec, _tvec = cv2.solvePnP(pts3, pts2, k, None, flags=cv2.SOLVEPNP_ITERATIVE)
    assert ok
    rc, _ = cv2.Rodrigues(rvec)
    r = np.diag([1.0, -1.0, -1.0]) @ rc  # OpenCV camera (y down, z forward) -> model frame (y up, camera on +z)
    yaw = np.degrees(np.arcsin(-r[2, 0]))
    pitch = np.degrees(np.arctan2(r[2, 1], r[2, 2]))
    roll = np.degrees(np.arctan2(r[1, 0], r[0, 0]))
    return float(yaw), float(pitch), float(roll)


@pytest.mark.parametrize(("yaw", "pitch"), [(-40, -20), (0, 0), (40, 0), (0, 20), (40, 20)])
def test_rendered_pose_matches_label(model, subject, yaw: float, pitch: float) -> None:  # type: ignore[no-untyped-def]
    pose = Pose(yaw + 2.5, pitch - 1.5, 3.0, 0.4, -0.3, 0.5)
    ey, ep, er = _pose_from_landmarks(model, subject, pose)
    assert abs(ey - pose.yaw) < 1.0 and abs(ep - pose.pitch) < 1.0 and abs(er - pose.roll) < 1.0
    # and the image agrees: yaw > 0 (subject turns to their left) puts the nose right of the face's centre
    r, lm = _frontal_render(model, subject, 0, Pose(yaw, pitch))
    ys, xs = np.nonzero(r.alpha > 0.5)
    face = (ys > lm[17:27, 1].min()) & (ys < lm[8, 1])
    centre_x = xs[face].mean()
    if yaw > 0:
        assert lm[30, 0] > centre_x + 10
    elif yaw < 0:
        assert lm[30, 0] < centre_x - 10
    else:
        assert abs(lm[30, 0] - centre_x) < 8


def test_base_rates_and_cooccurrence() -> None:
    rng = np.random.default_rng(0)
    tls = [build_timeline(sample_episodes(20.0, rng), 20.0, rng, jitter=False) for _ in range(40)]
    rates = measured_base_rates(tls)
    for au, target in BASE_RATES.items():
        assert abs(rates[au] - target) < 0.12, f"AU{au}: rate {rates[au]:.2f}, BP4D {target:.2f}"
    pres = np.concatenate([tl.presence for tl in tls]).astype(bool)
    i6, i12, i2, i1 = (BP4D_AUS.index(a) for a in (6, 12, 2, 1))
    # most AU6 frames have AU12, most AU2 frames have AU1 (far above their base rates)
    assert pres[pres[:, i6], i12].mean() > pres[:, i12].mean() + 0.2, "AU6 co-occurs with AU12"
    assert pres[pres[:, i2], i1].mean() > pres[:, i1].mean() + 0.3, "AU2 co-occurs with AU1"


def test_script_one_au_on_then_off() -> None:
    rng = np.random.default_rng(0)
    tl = build_timeline(parse_script("12:1.0-2.0"), 3.0, rng, blinks=False, talking=False, jitter=False)
    t = np.arange(75) / 25.0
    i12 = BP4D_AUS.index(12)
    assert (tl.intensity[(t >= 1.0) & (t <= 2.0), i12] > 0.9).all()
    assert (tl.intensity[t < 0.69, i12] == 0).all() and (tl.intensity[t > 2.31, i12] == 0).all()
    others = np.delete(tl.intensity, i12, axis=1)
    assert (others == 0).all() and (tl.pose == 0).all() and (tl.blink == 0).all()
    assert ((tl.intensity[:, i12] >= PRESENCE_THRESHOLD) == tl.presence[:, i12].astype(bool)).all()
    with pytest.raises(ConfigError):
        parse_script("13:1-2")
