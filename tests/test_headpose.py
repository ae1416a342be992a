"""Head pose from the detector's 5 landmarks: exact on the generic face, carried from the capture process, and
in au.frame (its accuracy on synthetic faces is measured by benchmarks/head_pose.py)."""

from __future__ import annotations

import math
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from aunets.core.frame import Frame
from aunets.core.headpose import GENERIC_FACE, HeadPose, camera_matrix, estimate_head_pose, rotation_xyz
from aunets.core.results import FaceResult
from aunets.stream.capture import CaptureConfig
from aunets.stream.messages import frame_payload
from aunets.stream.pipeline import Pipeline, PipelineConfig
from aunets.stream.runner import run_stream
from tests.conftest import Collect


@pytest.mark.parametrize("pose", [HeadPose(0.0, 0.0, 0.0), HeadPose(0.25, -0.5, 0.1), HeadPose(-0.3, 0.6, -0.2)])
def test_the_generic_face_seen_at_a_pose_gives_that_pose_back(pose: HeadPose) -> None:
    rvec, _ = cv2.Rodrigues(rotation_xyz(pose))
    points, _ = cv2.projectPoints(GENERIC_FACE, rvec, np.array([30.0, -10.0, 650.0]), camera_matrix(640, 480), None)
    est = estimate_head_pose(points.reshape(5, 2), 640, 480)
    assert est is not None
    assert (est.rx, est.ry, est.rz) == pytest.approx((pose.rx, pose.ry, pose.rz), abs=1e-6)


def test_signs_a_face_turned_to_the_image_left_has_positive_yaw() -> None:
    turned = HeadPose(0.0, math.radians(20), 0.0)
    rvec, _ = cv2.Rodrigues(rotation_xyz(turned))
    points, _ = cv2.projectPoints(GENERIC_FACE, rvec, np.array([0.0, 0.0, 650.0]), camera_matrix(640, 480), None)
    p = points.reshape(5, 2)
    assert p[2, 0] < (p[0, 0] + p[1, 0]) / 2  # the nose tip moved to the image's left of the eyes' middle


def test_missing_or_degenerate_landmarks_give_no_pose() -> None:
    assert estimate_head_pose(np.full((5, 2), np.nan), 640, 480) is None
    assert estimate_head_pose(np.full((5, 2), 100.0), 640, 480) is None  # a face too small: all points in one


def test_pose_is_the_same_tracked_in_process_or_in_the_capture_process(
        tiny_engine: Path, test_video: tuple[Path, int]) -> None:
    video, n_frames = test_video
    collect = Collect()
    run_stream(CaptureConfig(str(video)), Pipeline(PipelineConfig(engine=tiny_engine)), [collect])
    via_capture = {r.frame_index: r.pose for r in collect.frames if not r.no_face}

    pipeline = Pipeline(PipelineConfig(engine=tiny_engine))
    cap = cv2.VideoCapture(str(video))
    in_process: dict[int, HeadPose | None] = {}
    for i in range(n_frames):
        ok, image = cap.read()
        assert ok
        for r in pipeline.process(Frame(i, time.monotonic_ns(), time.time(), image)):
            if not r.no_face:
                in_process[r.frame_index] = r.pose
    cap.release()
    assert set(via_capture) == set(in_process) and len(in_process) == n_frames - 10
    for i, pose in in_process.items():
        assert pose is not None and via_capture[i] is not None
        assert via_capture[i].degrees() == pytest.approx(pose.degrees(), abs=1e-3)
    yaw = [abs(p.degrees()[1]) for p in in_process.values() if p is not None]
    assert max(yaw) < 45  # the bundled clip: a person facing the camera


def test_au_frame_carries_the_pose_in_degrees() -> None:
    r = FaceResult(3, 0, 1.0, track_id=0, box=(1.0, 2.0, 3.0, 4.0), probabilities={12: 0.5},
                   pose=HeadPose(math.radians(10), math.radians(-20), math.radians(5)))  # fmt: skip
    assert frame_payload(r, 0, 1.0)["pose"] == {"pitch": 10.0, "yaw": -20.0, "roll": 5.0}
    assert frame_payload(FaceResult(4, 0, 1.0), 1, 1.0)["pose"] is None
