"""Head pose accuracy on synthetic faces with exact poses: YuNet's 5 landmarks -> ``aunets.core.headpose``.

    python benchmarks/head_pose.py        # ~2 min on 2 cores; writes benchmarks/results/head_pose.json

Synthetic subjects (the project's CG renderer, neutral expression) are rendered into 640x480 frames over a grey
background at every pose of a grid (yaw, pitch, roll), 70 cm from a pinhole camera. The face detector finds the 5
landmarks in the full frame and :func:`~aunets.core.headpose.estimate_head_pose` turns them into pitch, yaw, roll;
the truth is the renderer's rotation expressed in the same convention (camera frame, ``R = Rx Ry Rz``). Two
cameras are assumed: the product's (focal length = the frame width, as for an unknown webcam) and the renderer's
true focal length (what is left is the generic face's and the landmarks' error). Errors in degrees: mean absolute
error, its 90th percentile, and the mean signed error (bias), per angle; and how well the detector's two eye
points follow the rendered eyes' line (its angle's error, and the slope of detected against true angle).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_clip import REPO, run_record

from aunets.core.headpose import HeadPose, estimate_head_pose, euler_xyz
from aunets.models.synth.facemodel import load_face_model
from aunets.models.synth.renderer import (
    Lighting,
    Placement,
    Pose,
    composite_full,
    face_box,
    pose_vertices,
    project,
    render_face,
)
from aunets.models.synth.subject import prepare_subject, sample_subject, subject_seed
from aunets.stream.tracking import YuNetDetector

OUT = REPO / "benchmarks" / "results" / "head_pose.json"
YAWS = (-30.0, -15.0, 0.0, 15.0, 30.0)
PITCHES = (-15.0, 0.0, 15.0)
ROLLS = (-10.0, 0.0, 10.0)
WIDTH, HEIGHT, DISTANCE_CM, FACE_PX = 640, 480, 70.0, 200.0
FLIP = np.diag([1.0, -1.0, -1.0])  # renderer axes (x right, y up, z to camera) -> camera (x right, y down, z away)


def truth(pose: Pose) -> HeadPose:
    """The renderer's pose in the estimator's convention."""
    return euler_xyz(FLIP @ pose.rotation().astype(np.float64) @ FLIP)


def stats(errors: np.ndarray) -> dict[str, float]:
    a = np.abs(errors)
    return {"mae_deg": float(a.mean()), "p90_abs_deg": float(np.percentile(a, 90)), "bias_deg": float(errors.mean()),
            "max_abs_deg": float(a.max())}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--subjects", type=int, default=4)
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    model = load_face_model()
    detector = YuNetDetector()
    lighting = Lighting(direction=(0.35, 0.45, 1.0), intensity=0.75, ambient=(0.38, 0.38, 0.38))
    background = np.full((HEIGHT, WIDTH, 3), 128, np.uint8)
    neutral = model.expression_weights(np.zeros(12, np.float32))
    rows: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    for s in range(args.subjects):
        prepared = prepare_subject(model, sample_subject(subject_seed(0, s), s))
        xy, _ = project(pose_vertices(prepared.base[model.landmarks68], Pose()), DISTANCE_CM)
        bx, by, bw, bh = face_box(xy)
        scale = FACE_PX / max(bw, bh)  # px per normalised unit: the renderer's focal length in px
        placement = Placement(scale, WIDTH / 2 - scale * (bx + bw / 2), HEIGHT / 2 - scale * (by + bh / 2))
        for yaw, pitch, roll in itertools.product(YAWS, PITCHES, ROLLS):
            pose = Pose(yaw, pitch, roll)
            render = render_face(model, prepared, neutral, pose, lighting, placement, background, size=224,
                                 camera_distance_cm=DISTANCE_CM, context=1.6)  # fmt: skip
            frame = composite_full(background, render)[:, :, ::-1].copy()  # RGB -> BGR, as a camera gives it
            dets = detector.detect(frame)
            row: dict[str, Any] = {"subject": s, "yaw": yaw, "pitch": pitch, "roll": roll, "found": bool(dets)}
            true = truth(pose)
            row["truth_deg"] = list(true.degrees())
            if dets:
                lm, true68 = dets[0].landmarks, render.landmarks  # the rendered 68 points: the eyes' true line
                eye_l, eye_r = true68[36:42].mean(axis=0), true68[42:48].mean(axis=0)
                row["eye_line_deg"] = [math.degrees(math.atan2(lm[1, 1] - lm[0, 1], lm[1, 0] - lm[0, 0])),
                                       math.degrees(math.atan2(eye_r[1] - eye_l[1], eye_r[0] - eye_l[0]))]
                for name, focal in (("webcam_focal", 1.0), ("true_focal", scale / WIDTH)):
                    est = estimate_head_pose(dets[0].landmarks, WIDTH, HEIGHT, focal_scale=focal)
                    row[name] = None if est is None else list(est.degrees())
            rows.append(row)
        print(f"subject {s}: {sum(r['found'] for r in rows if r['subject'] == s)} of "
              f"{len(YAWS) * len(PITCHES) * len(ROLLS)} faces found, {time.perf_counter() - t0:.0f} s", flush=True)
    result: dict[str, Any] = {**run_record(), "frame": [WIDTH, HEIGHT], "camera_distance_cm": DISTANCE_CM,
                              "face_px": FACE_PX, "grid": {"yaw": YAWS, "pitch": PITCHES, "roll": ROLLS},
                              "subjects": args.subjects, "renders": len(rows),
                              "found": sum(r["found"] for r in rows)}  # fmt: skip
    for name in ("webcam_focal", "true_focal"):
        ok = [r for r in rows if r.get(name)]
        err = np.array([r[name] for r in ok]) - np.array([r["truth_deg"] for r in ok])
        err = (err + 180.0) % 360.0 - 180.0
        result[name] = {"n": len(ok), **{angle: stats(err[:, i]) for i, angle in enumerate(("pitch", "yaw", "roll"))}}
        print(name, {a: f"MAE {v['mae_deg']:.1f} deg, bias {v['bias_deg']:+.1f}" for a, v in result[name].items()
                     if isinstance(v, dict)})  # fmt: skip
    lines = np.array([r["eye_line_deg"] for r in rows if "eye_line_deg" in r])
    result["eye_line"] = {**stats(lines[:, 0] - lines[:, 1]),
                          "slope": float(np.polyfit(lines[:, 1], lines[:, 0], 1)[0])}  # fmt: skip
    print(f"detector's eye line vs the true one: MAE {result['eye_line']['mae_deg']:.1f} deg, slope "
          f"{result['eye_line']['slope']:.2f}")
    result["rows"] = rows
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out} ({math.ceil(time.perf_counter() - t0)} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
