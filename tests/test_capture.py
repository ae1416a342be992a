"""The capture process: shared-memory hand-over, lossless files, latest-frame live policy, image folders."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from aunets.core.errors import SourceError
from aunets.stream.capture import Capture, CaptureConfig


def _numbered_video(path: Path, n: int, fps: float = 25.0) -> None:
    """Frame i is uniformly gray level 4*i, so the consumer can check which frame it got."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (64, 48))
    for i in range(n):
        writer.write(np.full((48, 64, 3), 4 * i, np.uint8))
    writer.release()


def test_file_source_is_lossless_in_order_with_timestamps(tmp_path: Path) -> None:
    video = tmp_path / "n.avi"
    _numbered_video(video, 40)
    seen = []
    with Capture(CaptureConfig(str(video))) as cap:
        assert cap.info is not None and cap.info.frame_count == 40 and not cap.info.live
        before = time.monotonic_ns()
        for frame in cap.frames():
            assert frame.t_capture_ns <= time.monotonic_ns()
            assert abs(frame.t_wall - time.time()) < 5
            seen.append((frame.index, int(frame.image.mean())))
            time.sleep(0.002)  # a slow consumer must not lose frames of a file
        assert cap.dropped == 0
    assert [i for i, _ in seen] == list(range(40))
    assert all(abs(level - 4 * i) <= 3 for i, level in seen)
    assert before > 0


def test_live_policy_drops_stale_frames_and_counts_them(tmp_path: Path) -> None:
    video = tmp_path / "n.avi"
    _numbered_video(video, 60, fps=200.0)
    with Capture(CaptureConfig(str(video), live=True, realtime=True)) as cap:
        indices = []
        for frame in cap.frames():
            indices.append(frame.index)
            time.sleep(0.03)  # much slower than the source
        dropped = cap.dropped
    assert indices == sorted(indices)
    assert len(indices) < 60
    assert dropped > 0 and dropped + len(indices) == 60


def test_realtime_paces_a_file_to_its_frame_rate(tmp_path: Path) -> None:
    video = tmp_path / "n.avi"
    _numbered_video(video, 10, fps=50.0)
    with Capture(CaptureConfig(str(video), realtime=True)) as cap:
        stamps = [f.t_capture_ns for f in cap.frames()]
    assert len(stamps) == 10
    assert (stamps[-1] - stamps[0]) / 1e9 == pytest.approx(9 / 50.0, abs=0.05)


def test_image_folder_source(tmp_path: Path) -> None:
    for i in range(5):
        cv2.imwrite(str(tmp_path / f"{i:03d}.png"), np.full((30, 40, 3), 40 * i, np.uint8))
    with Capture(CaptureConfig(str(tmp_path))) as cap:
        levels = [int(f.image.mean()) for f in cap.frames()]
    assert levels == [0, 40, 80, 120, 160]


def test_empty_folder_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="has no images"), Capture(CaptureConfig(str(tmp_path))):
        pass


def test_capture_process_can_track_faces_and_hand_tracks_over(tmp_path: Path) -> None:
    from aunets.stream.tracking import TrackerConfig
    from tests.conftest import write_test_video

    video = tmp_path / "clip.mp4"
    n = write_test_video(video)  # frames 20..29 hold no face
    with Capture(CaptureConfig(str(video), tracker=TrackerConfig())) as cap:
        tracks = [f.tracks for f in cap.frames()]
        assert cap.detect_seconds > 0
    assert len(tracks) == n
    assert all(t is not None for t in tracks)
    assert [len(t) for t in tracks if t is not None] == [0 if 20 <= i < 30 else 1 for i in range(n)]
    first = tracks[0]
    assert first is not None and first[0].track_id == 0 and first[0].box[2] > 100
