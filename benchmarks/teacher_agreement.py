"""Real footage against another detector: an engine's AU probabilities vs MediaPipe blendshape AU scores.

    pip install -e '.[teacher]'
    python benchmarks/teacher_agreement.py [--video media/...mp4] [--engine DIR] [--out benchmarks/results]

No FACS-coded real data exists here, so on real faces the engine is compared with a second, independent detector
(``models.teacher``: MediaPipe FaceLandmarker blendshapes mapped to AUs), frame by frame on every frame of the clip:
Pearson r between the engine's smoothed probability and the teacher's score per AU, and how often each says the AU
is on (engine: smoothed probability >= the engine's threshold; teacher: score >= 0.5). The teacher is not ground
truth: high r means the two detectors move together. Writes teacher_agreement.{json,md,png}.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_clip import CLIP  # noqa: E402
from tqdm import tqdm  # noqa: E402

from models.teacher import BlendshapeTeacher  # noqa: E402
from stream.frame import Frame  # noqa: E402
from stream.pipeline import Pipeline, PipelineConfig  # noqa: E402


def run(video: Path, engine: Path | None) -> dict[str, Any]:
    """Per-frame arrays: ``t`` (s), ``engine`` (N, 12) smoothed probabilities, ``teacher`` (N, 12) scores
    (NaN rows where a detector found no face)."""
    pipeline = Pipeline(PipelineConfig(engine=engine))
    aus = pipeline.aus
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise SystemExit(f"cannot open {video}")
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    ours: dict[int, np.ndarray] = {}
    teacher_rows: list[np.ndarray] = []
    results = []
    with BlendshapeTeacher() as teacher:
        for i in tqdm(range(n), desc="frames", unit="frame"):
            ok, image = cap.read()
            if not ok:
                break
            s = teacher(image, round(i * 1000 / fps))
            teacher_rows.append(np.full(len(aus), np.nan, np.float32) if s is None else s)
            results += pipeline.process(Frame(i, 0, 0.0, image))
    cap.release()
    for r in results + pipeline.flush():
        if not r.no_face and r.smoothed:
            ours.setdefault(r.frame_index, np.array([r.smoothed[a] for a in aus], np.float32))
    frames = len(teacher_rows)
    engine_rows = np.full((frames, len(aus)), np.nan, np.float32)
    for i, p in ours.items():
        if i < frames:
            engine_rows[i] = p
    return {"aus": aus, "fps": fps, "t": np.arange(frames) / fps, "engine": engine_rows,
            "teacher": np.stack(teacher_rows), "thresholds": pipeline.thresholds,
            "engine_name": pipeline.engine.manifest.name}  # fmt: skip


def agreement(data: dict[str, Any]) -> dict[str, Any]:
    e, t = data["engine"], data["teacher"]
    both = ~np.isnan(e).any(1) & ~np.isnan(t).any(1)
    rows = {}
    for k, au in enumerate(data["aus"]):
        x, y = e[both, k], t[both, k]
        # undefined (null) when either side is constant on this clip
        r = round(float(np.corrcoef(x, y)[0, 1]), 3) if x.std() > 1e-3 and y.std() > 1e-3 else None
        rows[f"AU{au:02d}"] = {
            "pearson_r": r,
            "engine_on": round(float((x >= data["thresholds"][k]).mean()), 3),
            "teacher_on": round(float((y >= 0.5).mean()), 3),
            "engine_mean": round(float(x.mean()), 3),
            "teacher_mean": round(float(y.mean()), 3),
        }
    return {"frames": len(e), "frames_both_found_a_face": int(both.sum()), "per_au": rows}


def _fmt_r(r: float | None) -> str:
    return "n/a" if r is None else f"{r:.2f}"


def plot(data: dict[str, Any], summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    aus = data["aus"]
    fig, axes = plt.subplots(len(aus), 1, figsize=(11, 1.1 * len(aus) + 1), sharex=True)
    for k, (au, ax) in enumerate(zip(aus, axes, strict=True)):
        ax.plot(data["t"], data["engine"][:, k], color="tab:blue", lw=1.2, label="engine (smoothed probability)")
        ax.plot(data["t"], data["teacher"][:, k], color="tab:orange", lw=1.0, label="MediaPipe blendshapes")
        ax.axhline(data["thresholds"][k], color="tab:blue", lw=0.6, ls=":")
        ax.set_ylim(-0.05, 1.05)
        ax.set_yticks([0, 1])
        r = _fmt_r(summary["per_au"][f"AU{au:02d}"]["pearson_r"])
        ax.set_ylabel(f"AU{au}\nr={r}", rotation=0, ha="right", va="center", fontsize=8)
    axes[0].legend(loc="upper right", fontsize=7, ncol=2)
    axes[-1].set_xlabel("video time (s)")
    fig.suptitle(f"{data['engine_name']} vs MediaPipe blendshape AUs on {summary['video']} (not ground truth)",
                 fontsize=10)  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", type=Path, default=CLIP)
    ap.add_argument("--engine", type=Path, default=None, help="engine bundle (default: the embedded engine)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = ap.parse_args()
    data = run(args.video, args.engine)
    summary = {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "video": args.video.name,
               "engine": data["engine_name"], **agreement(data)}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "teacher_agreement.json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = [
        f"Engine `{summary['engine']}` vs MediaPipe blendshape AUs on `{summary['video']}` "
        f"({summary['frames_both_found_a_face']} of {summary['frames']} frames with a face in both).",
        "",
        "| AU | Pearson r | engine on | teacher on (>= 0.5) | engine mean | teacher mean |",
        "|---|---|---|---|---|---|",
    ]
    for au, r in summary["per_au"].items():
        lines.append(f"| {au} | {_fmt_r(r['pearson_r'])} | {r['engine_on']:.2f} | {r['teacher_on']:.2f} | "
                     f"{r['engine_mean']:.2f} | {r['teacher_mean']:.2f} |")  # fmt: skip
    (args.out / "teacher_agreement.md").write_text("\n".join(lines) + "\n")
    plot(data, summary, args.out / "teacher_agreement.png")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
