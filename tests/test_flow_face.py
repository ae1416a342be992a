"""Flow backends and encodings; the square crop; the tracker on frames with and without a face."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from aunets.core.crop import crop_square
from aunets.core.errors import ConfigError
from aunets.core.face import iou
from aunets.core.flow import DISFlow, FarnebackFlow, FlowConfig, encode_flow
from aunets.core.flow_registry import create_flow_backend
from aunets.stream.tracking import FaceTracker, TrackerConfig, YuNetDetector
from tests.conftest import clip_frames


def _textured(seed: int = 0, size: int = 96) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.integers(0, 255, (size, size), dtype=np.uint8), (0, 0), 2.0)


@pytest.mark.parametrize("backend", [DISFlow("fast"), DISFlow("medium"), FarnebackFlow()])
def test_flow_recovers_a_known_shift(backend: DISFlow | FarnebackFlow) -> None:
    prev = _textured()
    cur = np.roll(prev, shift=(1, 2), axis=(0, 1))  # content moves +2 px in x, +1 px in y
    flow = backend.compute(prev, cur)
    centre = flow[24:72, 24:72]
    assert np.median(centre[..., 0]) == pytest.approx(2.0, abs=0.3)
    assert np.median(centre[..., 1]) == pytest.approx(1.0, abs=0.3)


def test_paper_encoding_is_a_fixed_scale() -> None:
    flow = np.zeros((10, 100, 2), np.float32)
    flow[..., 0] = 0.5  # clip = 0.02 * 100 = 2 px: a quarter of full scale
    img = encode_flow(flow, "paper", 0.02)
    assert img[0, 0, 0] == 160 and img[0, 0, 1] == 128 and img[0, 0, 2] == 64  # 128 + 31.75, 63.75
    flow[..., 0] = -50.0  # saturates
    assert encode_flow(flow, "paper", 0.02)[0, 0, 0] == 1


def test_aunets_original_encoding_scales_by_the_frame_maximum() -> None:
    flow = np.zeros((4, 4, 2), np.float32)
    flow[0, 0] = (3.0, 2.0)
    flow[1, 1] = (-1.0, 0.0)
    img = encode_flow(flow, "aunets_original")
    assert img[0, 0, 0] == 255 and img[1, 1, 0] == 86  # 128 + 127 * u / max|u| = 85.67
    assert img[0, 0, 1] == 1  # G = -v, scaled: v = 2 is the max
    assert (img[..., 2] == 0).all()
    assert (encode_flow(np.zeros((4, 4, 2), np.float32), "aunets_original")[..., :2] == 128).all()


def test_unknown_encoding_and_backend_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="encoding"):
        FlowConfig(encoding="hsv")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="farneback"):
        create_flow_backend("brox-on-the-moon")


def test_crop_square_centres_the_box_and_replicates_borders() -> None:
    frame = np.zeros((100, 200, 3), np.uint8)
    frame[40:60, 90:110] = 255  # a 20x20 white square
    crop = crop_square(frame, (90, 40, 20, 20), margin=2.0, size=40)
    assert crop.shape == (40, 40, 3)
    assert crop[20, 20].tolist() == [255, 255, 255] and crop[2, 2].tolist() == [0, 0, 0]
    assert crop[10:30, 10:30].mean() > 240  # the box fills the centre half
    edge = crop_square(frame, (-10, -10, 30, 30), margin=1.0, size=30)  # partly outside: replicated
    assert edge.shape == (30, 30, 3)
    with pytest.raises(ValueError, match="outside"):
        crop_square(frame, (500, 500, 10, 10))


def test_tracker_keeps_one_id_on_a_face_and_reports_nothing_without_one() -> None:
    frames = clip_frames(12)
    tracker = FaceTracker(YuNetDetector(), TrackerConfig(detect_every=4))
    ids = set()
    for f in frames:
        tracks = tracker.update(f)
        assert len(tracks) == 1
        ids.add(tracks[0].track_id)
        x, _, w, _ = tracks[0].box
        assert 250 < x + w / 2 < 500 and w > 120  # the woman's face, right of centre
    assert ids == {0}
    blank = np.full_like(frames[0], 90)
    assert tracker.update(blank) == []  # never a stale box on background
    assert [t.track_id for t in tracker.update(frames[0])] == [0]  # re-found within max_misses: same id


def test_iou() -> None:
    assert iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert iou((0, 0, 10, 10), (20, 20, 5, 5)) == 0.0
    assert iou((0, 0, 10, 10), (5, 0, 10, 10)) == pytest.approx(50 / 150)


def test_tracker_holds_a_still_faces_box_and_follows_a_real_move() -> None:
    """Codec-like noise on a still face jitters the detector's box; the tracker holds the box (``hold``) until the
    face really moves (here by 8 % of its side), and with ``hold=0`` it follows every jitter."""
    still = clip_frames(1)[0]
    rng = np.random.default_rng(0)
    noisy = [np.clip(still + rng.normal(0, 3, still.shape), 0, 255).astype(np.uint8) for _ in range(12)]
    held = FaceTracker(YuNetDetector(), TrackerConfig(detect_every=4))
    boxes = [held.update(f)[0].box for f in noisy]
    assert len(set(boxes)) == 1  # every frame: the first frame's box
    follow = FaceTracker(YuNetDetector(), TrackerConfig(detect_every=4, hold=0.0))
    assert len({follow.update(f)[0].box for f in noisy}) > 1  # the detector's jitter, followed
    shift = int(0.08 * boxes[0][2])
    moved = [held.update(np.roll(f, shift, axis=1))[0].box for f in noisy[:6]]
    assert moved[-1][0] > boxes[0][0] + 0.5 * shift  # a real move is followed


def test_tracker_hold_must_be_a_small_fraction() -> None:
    with pytest.raises(ConfigError, match="hold"):
        TrackerConfig(hold=0.6)
