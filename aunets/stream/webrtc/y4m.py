"""YUV4MPEG2 (``.y4m``) writing: the raw format Chromium's fake camera plays
(``--use-file-for-fake-video-capture=FILE.y4m``, looped)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from aunets.core.errors import ConfigError


def write_y4m(path: Path, frames: Iterable[np.ndarray], fps: int = 25) -> int:
    """Write BGR uint8 HxWx3 frames (even W and H, all the same size) as 4:2:0 y4m; returns the frame count."""
    count = 0
    size: tuple[int, int] | None = None
    with open(path, "wb") as f:
        for frame in frames:
            h, w = frame.shape[:2]
            if size is None:
                if w % 2 or h % 2:
                    raise ConfigError(f"y4m 4:2:0 needs even frame sizes, got {w}x{h}: crop or resize the frames")
                size = (w, h)
                f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
            elif (w, h) != size:
                raise ConfigError(f"frame {count} is {w}x{h}, the first was {size[0]}x{size[1]}")
            f.write(b"FRAME\n")
            f.write(cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())
            count += 1
    return count


def video_to_y4m(video: Path, path: Path, max_frames: int | None = None, size: tuple[int, int] | None = None) -> int:
    """Convert a video file (anything OpenCV reads) to y4m, optionally resized to ``size`` (W, H)."""
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise ConfigError(f"cannot read {video}")
    fps = max(1, round(cap.get(cv2.CAP_PROP_FPS) or 25))

    def frames() -> Iterable[np.ndarray]:
        n = 0
        while max_frames is None or n < max_frames:
            ok, frame = cap.read()
            if not ok:
                return
            if size is not None:
                frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
            elif frame.shape[1] % 2 or frame.shape[0] % 2:
                frame = frame[: frame.shape[0] // 2 * 2, : frame.shape[1] // 2 * 2]
            n += 1
            yield frame

    try:
        return write_y4m(path, frames(), fps)
    finally:
        cap.release()
