"""YuNet on ONNX Runtime finds the same faces as OpenCV's FaceDetectorYN, on real frames."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from aunets.core.face import iou
from aunets.stream.tracking import YuNetDetector, default_yunet_path
from aunets.stream.yunet_ort import OrtYuNetDetector, dynamic_yunet_path, make_dynamic

MEDIA = Path(__file__).resolve().parents[1] / "media"


def _frames(name: str, every: int, count: int) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(MEDIA / name))
    frames = []
    index = 0
    while len(frames) < count:
        ok, frame = cap.read()
        assert ok
        if index % every == 0:
            frames.append(frame)
        index += 1
    return frames


@pytest.mark.parametrize("input_width", [320, 128])
def test_same_faces_as_opencv_on_real_frames(input_width: int) -> None:
    frames = _frames("pexels_wolfganglanger_expressions.mp4", 60, 6) + _frames("realfaces_trio.mp4", 25, 4)
    ours, opencv = OrtYuNetDetector(input_width=input_width), YuNetDetector(input_width=input_width)
    found = 0
    for frame in frames:
        a, b = ours.detect(frame), opencv.detect(frame)
        assert len(a) == len(b)
        for d in b:
            match = max(a, key=lambda x: iou(x.box, d.box))
            assert iou(match.box, d.box) > 0.99
            assert abs(match.score - d.score) < 1e-3
            assert np.abs(match.landmarks - d.landmarks).max() < 1.0
        found += len(b)
    assert found >= 6 + 4 * 2  # the woman in each clip frame, at least two of the trio even at 128 px


def test_a_blank_frame_has_no_face() -> None:
    assert OrtYuNetDetector().detect(np.full((240, 320, 3), 90, np.uint8)) == []


def test_the_shipped_dynamic_model_is_the_fixed_one_with_free_input_size(tmp_path: Path) -> None:
    pytest.importorskip("onnx")
    out = tmp_path / "dynamic.onnx"
    make_dynamic(default_yunet_path(), out)
    assert out.read_bytes() == dynamic_yunet_path().read_bytes()
