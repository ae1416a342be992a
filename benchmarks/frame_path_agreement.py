"""How close the frame path (``--device cuda`` or ``torch-cpu``) comes to the CPU path on the bundled clip (issue 26).

    python benchmarks/frame_path_agreement.py [--device torch-cpu|cuda] [--flow torch-tvl1] [--frames 120]
                                              [--threads 1] [--out benchmarks/results]

Both pipelines (default engine, YuNet tracking, view classifier, calibration, causal median) process the
same first ``--frames`` frames of the bundled clip. Per result row and AU: mean |p_path - p_cpu| of the raw
probabilities, the share of equal presences (after calibration, median and thresholds), mean |intensity
difference|, and the intensity range of the path. Writes ``frame_path_agreement_<device>.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))


def results(pipeline: Any, frames: list[np.ndarray]) -> list[Any]:
    from aunets.core.frame import Frame

    out = []
    for i, f in enumerate(frames):
        out += pipeline.process(Frame(i, 0, 0.0, f))
    out += pipeline.flush()
    return [r for r in out if not r.no_face and not r.events_only]


def agreement(cpu: Any, path: Any, frames: list[np.ndarray]) -> dict[str, Any]:
    """Mean |delta p|, presence agreement and intensity difference of two pipelines on ``frames``."""
    a, b = results(cpu, frames), results(path, frames)
    if [r.frame_index for r in a] != [r.frame_index for r in b] or not a:
        raise RuntimeError("the two pipelines found faces in different frames")
    aus = cpu.aus

    def matrix(rows: list[Any], field: str) -> np.ndarray:
        return np.array([[float(getattr(r, field)[au]) for au in aus] for r in rows], dtype=np.float64)

    pa, pb = matrix(a, "probabilities"), matrix(b, "probabilities")
    sa, sb = matrix(a, "states"), matrix(b, "states")
    ia, ib = matrix(a, "intensity"), matrix(b, "intensity")
    return {"rows": len(a), "mean_abs_dp": round(float(np.abs(pa - pb).mean()), 4),
            "mean_abs_dp_per_au": {str(au): round(float(v), 4) for au, v in zip(aus, np.abs(pa - pb).mean(0),
                                                                                strict=True)},
            "presence_equal": round(float((sa == sb).mean()), 4),
            "mean_abs_d_intensity": round(float(np.abs(ia - ib).mean()), 4),
            "intensity_range": [round(float(ib.min()), 3), round(float(ib.max()), 3)]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", choices=("cuda", "torch-cpu"), default="torch-cpu")
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--flow", default=None, help="the path's flow (default: the engine's, on the host); torch-tvl1")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = ap.parse_args()
    from bench_clip import load_frames, run_record

    from aunets.stream.pipeline import Pipeline, PipelineConfig

    frames, _ = load_frames(args.frames)
    cpu = Pipeline(PipelineConfig(device="cpu", threads=args.threads))
    path = Pipeline(PipelineConfig(device=args.device, threads=args.threads, flow=args.flow))
    result = {**run_record(), "device": args.device, "frames": len(frames), "flow": args.flow or "engine",
              "note": "frame path against the CPU path (the engine's DIS flow), default engine",
              **agreement(cpu, path, frames)}
    args.out.mkdir(parents=True, exist_ok=True)
    tag = args.device + (f"_{args.flow}" if args.flow else "")
    out = args.out / f"frame_path_agreement_{tag.replace('-', '_')}.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
