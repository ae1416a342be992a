"""The bundled real clip for the benchmarks: its first frames and the face box YuNet finds in the first one."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from aunets.stream.tracking import YuNetDetector

CLIP = Path(__file__).resolve().parents[1] / "media" / "pexels_wolfganglanger_expressions.mp4"


def load_frames(n: int) -> tuple[list[np.ndarray], tuple[float, float, float, float]]:
    """Up to ``n`` BGR uint8 frames (H, W, 3) of the clip and the face box (x, y, w, h) in px of frame 0
    (the centre half of the frame when no face is found)."""
    cap = cv2.VideoCapture(str(CLIP))
    frames: list[np.ndarray] = []
    while len(frames) < n:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    if not frames:
        raise SystemExit(f"cannot decode {CLIP}")
    dets = YuNetDetector().detect(frames[0])
    h, w = frames[0].shape[:2]
    box = dets[0].box if dets else (w / 4, h / 4, w / 2, h / 2)
    return frames, box
