"""The stillness decomposition on a real still clip (the bundled clip's first frame, written 12 times with OpenCV's
mp4v codec) with a tiny engine: identical input gives identical output, and the tracker's hold keeps the box of a
still face where it is while the detector's passes disagree."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from aunets.models.stillness import StillCondition, still_jitter
from tests.conftest import clip_frames


def _still_clip(path: Path, frames: int = 12) -> Path:
    image = clip_frames(1)[0]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 25.0, (image.shape[1], image.shape[0]))
    for _ in range(frames):
        writer.write(image)
    writer.release()
    return path


def test_still_jitter_decomposes_the_change_between_frames(tiny_engine: Path, tmp_path: Path) -> None:
    clip = _still_clip(tmp_path / "still.mp4")
    quiet = still_jitter(clip, StillCondition("box held, exact frames", hold_box=True, exact_frames=True), tiny_engine)
    assert quiet["dp"].shape == (10, 12) and quiet["box_motion"] == 0.0
    assert (quiet["dp"] == 0).all() and quiet["flow_px"] < 0.05  # the same input, the same output
    follow = still_jitter(clip, StillCondition("no hold", tracker_hold=0.0, exact_frames=True), tiny_engine)
    assert follow["box_motion"] > 0.002  # full-frame and region passes disagree on the same image
    assert follow["dp"].mean() > 0  # ... and the crop following them moves the outputs
    held = still_jitter(clip, StillCondition("tracker hold", exact_frames=True), tiny_engine)
    assert held["box_motion"] == 0.0 and np.array_equal(held["dp"], np.zeros_like(held["dp"]))
    zero = still_jitter(clip, StillCondition("zero flow", zero_flow=True, tracker_hold=0.0), tiny_engine)
    assert zero["flow_px"] is None and zero["dp"].shape == (10, 12)
