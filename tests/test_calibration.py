"""Online person calibration: a constant offset is brought to baseline, a new track starts fresh, off is unchanged."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from aunets.core.errors import ConfigError
from aunets.core.face import Track
from aunets.core.frame import Frame
from aunets.core.median import median_filter
from aunets.core.results import FaceResult
from aunets.stream.calibration import CalibrationConfig, OnlineBaseline
from aunets.stream.pipeline import Pipeline, PipelineConfig
from tests.conftest import build_tiny_engine, clip_frames, write_test_video


def test_constant_offset_is_brought_to_baseline_and_expressions_stay_visible() -> None:
    rng = np.random.default_rng(0)
    offset = np.array([0.0, 0.3, 0.6], np.float32)
    cal = OnlineBaseline(3, CalibrationConfig(enabled=True))
    out = [cal.update(offset + rng.uniform(0, 0.02, 3).astype(np.float32)) for _ in range(200)]
    assert out[0] == pytest.approx(offset, abs=0.03)  # a new track starts (almost) uncalibrated
    settled = np.array(out[100:])
    assert settled.max() < 0.05  # the offset is gone: the neutral face reads as neutral
    assert cal.baseline == pytest.approx(offset, abs=0.02)
    spike = cal.update(np.array([0.9, 0.9, 0.9], np.float32))  # an expression on top of the baseline
    assert spike == pytest.approx((0.9 - offset) / (1 - offset), abs=0.03)
    assert spike[2] < 0.9  # re-based, not passed through


def test_config_is_checked() -> None:
    with pytest.raises(ConfigError, match="quantile"):
        CalibrationConfig(enabled=True, quantile=0.9)


def _run(pipeline: Pipeline, frames: list[np.ndarray], ids: list[int]) -> list[FaceResult]:
    h, w = frames[0].shape[:2]
    box = (w * 0.3, h * 0.1, w * 0.4, h * 0.6)
    results: list[FaceResult] = []
    for i, (image, tid) in enumerate(zip(frames, ids, strict=True)):
        results += pipeline.process(Frame(i, 0, 0.0, image, tracks=(Track(tid, box, 0.9),)))
    return [r for r in results + pipeline.flush() if not r.events_only]


def test_new_track_starts_fresh_and_off_leaves_the_output_unchanged(tmp_path: Path) -> None:
    engine = build_tiny_engine(tmp_path / "rgb", fusion="rgb", median_window=3)  # no flow: frames are independent
    frames = clip_frames(40)
    replay = frames + frames  # the same 40 frames again, as a new track
    ids = [0] * 40 + [1] * 40
    on = _run(Pipeline(PipelineConfig(engine=engine, calibration=CalibrationConfig(enabled=True))), replay, ids)
    off = _run(Pipeline(PipelineConfig(engine=engine, calibration=CalibrationConfig(enabled=False))), replay, ids)
    aus = sorted(on[0].smoothed)
    smooth_on = np.array([[r.smoothed[a] for a in aus] for r in on])
    smooth_off = np.array([[r.smoothed[a] for a in aus] for r in off])
    raw = np.array([[r.probabilities[a] for a in aus] for r in off])
    # the raw probability stays available and is the same either way
    assert np.array_equal(raw, np.array([[r.probabilities[a] for a in aus] for r in on]))
    # off: exactly the median of the raw probabilities, per track (the behaviour before calibration existed)
    expected = np.concatenate([median_filter(raw[:40], 3), median_filter(raw[40:], 3)])
    np.testing.assert_allclose(smooth_off, expected, atol=1e-6)
    # on: re-based (never above the raw median), and the second track repeats the first exactly: it started fresh
    assert np.abs(smooth_on - smooth_off).max() > 0.05
    assert (smooth_on <= smooth_off + 1e-6).all()
    np.testing.assert_allclose(smooth_on[40:], smooth_on[:40], atol=1e-6)
    assert [r.states for r in on[40:]] == [r.states for r in on[:40]]


@pytest.mark.slow
@pytest.mark.parametrize("flag", ["off", "on"])
def test_calibration_flag_reaches_the_saved_config(flag: str, tmp_path: Path) -> None:
    """``aunets process --calibration off|on`` on a real clip: the config saved beside the CSV says which ran."""
    video = tmp_path / "clip.mp4"
    write_test_video(video, face_frames=4, blank_frames=0)
    out = tmp_path / "o.csv"
    res = subprocess.run(
        [sys.executable, "-m", "aunets.cli", "process", str(video), "--csv", str(out), "--engine",
         str(build_tiny_engine(tmp_path / "tiny")), "--no-progress", "--calibration", flag],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    saved = json.loads((tmp_path / "o.csv.config.json").read_text())
    assert saved["pipeline"]["calibration"]["enabled"] is (flag == "on")
