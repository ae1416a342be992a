"""Process frames in your own loop with the Python API: no capture process, no ZeroMQ, just results.

    python examples/own_loop.py media/pexels_wolfganglanger_expressions.mp4 --frames 50

Prints one line per frame: the frame index, the face box, and AU12's smoothed probability and state, then how
many onsets there were. See docs/api.md.
"""

from __future__ import annotations

import argparse
import time

import cv2

from aunets.core.frame import Frame
from aunets.core.results import FaceResult
from aunets.stream.pipeline import Pipeline, PipelineConfig


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("video", help="a video file (or a camera index such as 0)")
    ap.add_argument("--frames", type=int, default=100, help="stop after this many frames")
    args = ap.parse_args()

    pipeline = Pipeline(PipelineConfig())  # the embedded engine on the CPU; see PipelineConfig for the options
    cap = cv2.VideoCapture(int(args.video) if args.video.isdigit() else args.video)
    fps = cap.get(cv2.CAP_PROP_FPS) or None
    pipeline.frame_rate = fps  # a file: minimum event durations count its frames; leave None for a camera
    onsets = 0
    index = 0

    def show(results: list[FaceResult]) -> None:
        nonlocal onsets
        for r in results:
            onsets += sum(e.kind == "onset" for e in r.events)
            if r.events_only:  # a track ended: only its closing offsets
                continue
            if r.no_face:
                print(f"frame {r.frame_index}: no face")
            else:
                print(f"frame {r.frame_index}: face {r.track_id} at {[round(v) for v in r.box or ()]}, "
                      f"AU12 {r.smoothed[12]:.2f} {'on' if r.states[12] else 'off'}")

    while index < args.frames:
        ok, image = cap.read()
        if not ok:
            break
        show(pipeline.process(Frame(index, time.monotonic_ns(), time.time(), image)))
        index += 1
    show(pipeline.flush())  # the end: results held back by a look-ahead, offsets of AUs still on
    cap.release()
    print(f"{index} frames, {onsets} onsets")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
