"""The peer job of ``benchmarks/peers.py``: MediaPipe FaceLandmarker with blendshapes on a video, to CSV.

    python benchmarks/peer_mediapipe.py VIDEO --csv OUT.csv

The same job as ``aunets process VIDEO --csv OUT.csv``: decode every frame (OpenCV), find the face and score it
(the bundled ``face_landmarker.task`` in VIDEO mode, one face, blendshapes on), write one CSV row per frame
(frame, timestamp in s, success, the 52 blendshape scores). Run as a whole process so that its start-up, imports
and model load count, as ours do.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import cv2

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from aunets.models.face_landmarker import open_face_landmarker  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("video", type=Path)
    ap.add_argument("--csv", type=Path, required=True)
    args = ap.parse_args()
    cap = cv2.VideoCapture(str(args.video))
    if not cap.isOpened():
        raise SystemExit(f"cannot open {args.video}")
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    mp, landmarker = open_face_landmarker(None, "VIDEO", output_face_blendshapes=True)
    names: list[str] | None = None
    rows = 0
    held: list[list[object]] = []  # rows before the first face, written once the header is known
    with args.csv.open("w", newline="") as fh:
        out = csv.writer(fh)
        index = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            image = mp.Image(image_format=mp.ImageFormat.SRGB, data=cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            result = landmarker.detect_for_video(image, round(1000 * index / fps))
            shapes = result.face_blendshapes[0] if result.face_blendshapes else None
            scores = [f"{c.score:.4f}" for c in shapes] if shapes is not None else []
            held.append([index + 1, f"{index / fps:.3f}", int(shapes is not None), *scores])
            if shapes is not None and names is None:  # the header names come with the first face
                names = [c.category_name for c in shapes]
                out.writerow(["frame", "timestamp", "success", *names])
            if names is not None:
                out.writerows(held)
                held.clear()
            rows += 1
            index += 1
        if names is None:
            out.writerow(["frame", "timestamp", "success"])
        out.writerows(held)
    landmarker.close()
    cap.release()
    print(f"{rows} rows written to {args.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
