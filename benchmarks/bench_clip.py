"""What the benchmarks share: the bundled real clip (its first frames and the face box YuNet finds in the first
one) and the record of a run (date, command, machine) that every results JSON starts with."""

from __future__ import annotations

import datetime as dt
import os
import platform
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from aunets.stream.tracking import YuNetDetector

REPO = Path(__file__).resolve().parents[1]
CLIP = REPO / "media" / "pexels_wolfganglanger_expressions.mp4"


def run_record() -> dict[str, Any]:
    """Date (UTC, ISO 8601), the command as typed from the repository root, and the machine and its load, for
    the top of a results JSON."""
    script = Path(sys.argv[0]).resolve()
    name = script.relative_to(REPO) if script.is_relative_to(REPO) else Path(script.name)
    return {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "command": " ".join(["python", str(name), *sys.argv[1:]]),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores", "load_average": list(os.getloadavg())}


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
