"""Engines compared on the real-face collection's held-out (``test``) people: London pairs and inter-faces portraits.

Each person's photos are made into the collection's 50-frame clips (London: 25 neutral then 25 smiling frames;
inter-faces: 50 frames of the one photo) and run through the pipeline as ``aunets process`` runs it (calibration
off). Per engine (smoothed probability, on/off states as published):

- London test people: AU12 and AU6 smile-vs-neutral AUC (per person, mean probability of the smiling half against
  the neutral half), neutral false positives (share of (frame, AU) states on over the 12 AUs on neutral frames),
  cross-talk (mean rise of each AU's probability from the neutral to the smiling half, for the AUs a smile should
  leave at rest: 1, 2, 4, 15, 17, 23, 24);
- inter-faces test people: neutral false positives overall and per AU, AU12 smile-vs-neutral AUC across people;
- stillness: mean |delta p| between consecutive frames of the still clips (inter-faces neutral), per AU.

What this measures: the labels the photo sets give (neutral = no AU, smiling = AU12), not FACS coding.

    .venv/bin/python benchmarks/held_out_people.py --engine v3.1=data/v31_engine --engine v4=data/v4_int8

Writes benchmarks/results/held_out_people.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_clip import run_record  # noqa: E402

from aunets.models.data.realfaces import RealItem, default_root, load_interfaces, load_realfaces  # noqa: E402
from aunets.models.realface_benchmark import CLIP_FRAMES, auc, clip_path  # noqa: E402
from aunets.stream.calibration import CalibrationConfig  # noqa: E402
from aunets.stream.pipeline import Pipeline, PipelineConfig  # noqa: E402

AUS = (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24)
AT_REST_ON_A_SMILE = (1, 2, 4, 15, 17, 23, 24)


def run_clip(pipeline: Pipeline, video: Path) -> tuple[np.ndarray, np.ndarray]:
    """(probability, on) each (frames, 12) over :data:`AUS`; frames without a face are NaN / False."""
    from aunets.models.realface_benchmark import _Collect
    from aunets.stream.capture import CaptureConfig
    from aunets.stream.runner import run_stream

    sink = _Collect()
    stats = run_stream(CaptureConfig(source=str(video), realtime=False, live=False), pipeline, [sink])
    p = np.full((stats.frames, len(AUS)), np.nan, np.float32)
    on = np.zeros((stats.frames, len(AUS)), bool)
    for i, r in sink.results.items():
        if i < stats.frames:
            p[i] = [r.smoothed[a] for a in AUS]
            on[i] = [r.states[a] for a in AUS]
    return p, on


def _r(x: float | None) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), 4)


def figures(outputs: dict[str, tuple[np.ndarray, np.ndarray]], items: list[RealItem]) -> dict[str, Any]:
    half = CLIP_FRAMES // 2
    london = [i for i in items if i.set == "london"]
    inter = [i for i in items if i.set == "interfaces"]
    out: dict[str, Any] = {}
    neu_p = np.array([np.nanmean(outputs[i.clip_name][0][:half], 0) for i in london])
    smi_p = np.array([np.nanmean(outputs[i.clip_name][0][half:], 0) for i in london])
    neu_on = np.concatenate([outputs[i.clip_name][1][:half] for i in london])
    out["london_test"] = {
        "people": len(london),
        "auc": {f"AU{a:02d}": _r(auc(neu_p[:, AUS.index(a)].tolist(), smi_p[:, AUS.index(a)].tolist()))
                for a in (12, 6)},
        "neutral_fp": _r(neu_on.mean()),
        "neutral_fp_per_au": {f"AU{a:02d}": _r(neu_on[:, k].mean()) for k, a in enumerate(AUS)},
        "cross_talk_rise": {f"AU{a:02d}": _r(float(np.nanmean(smi_p[:, AUS.index(a)] - neu_p[:, AUS.index(a)])))
                            for a in AT_REST_ON_A_SMILE},
    }  # fmt: skip
    neutral = [i for i in inter if i.expression == "N"]
    smiles = [i for i in inter if i.expression in ("S", "L")]
    on = np.concatenate([outputs[i.clip_name][1] for i in neutral])
    mean_p = {i.clip_name: np.nanmean(outputs[i.clip_name][0], 0) for i in inter}
    k12 = AUS.index(12)
    still = np.concatenate([np.abs(np.diff(outputs[i.clip_name][0], axis=0)) for i in neutral])
    out["interfaces_test"] = {
        "neutral_people": len(neutral), "smiling_people": len(smiles),
        "neutral_fp": _r(on.mean()),
        "neutral_fp_per_au": {f"AU{a:02d}": _r(on[:, k].mean()) for k, a in enumerate(AUS)},
        "auc": {"AU12": _r(auc([mean_p[i.clip_name][k12] for i in neutral],
                               [mean_p[i.clip_name][k12] for i in smiles]))},
        "stillness_mean_abs_dp": {f"AU{a:02d}": _r(float(np.nanmean(still[:, k]))) for k, a in enumerate(AUS)},
    }  # fmt: skip
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engine", action="append", required=True, metavar="NAME=DIR", help="an engine bundle to run")
    ap.add_argument("--root", type=Path, default=default_root(), help="the real-face collection")
    ap.add_argument("--workdir", type=Path, default=REPO / "out" / "real_faces", help="where the clips are made")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "held_out_people.json")
    args = ap.parse_args()
    items = [i for i in load_realfaces(args.root) if i.set == "london" and i.split == "test"]
    items += [i for i in load_interfaces(args.root) if i.split == "test"]
    videos = {i.clip_name: clip_path(i, args.workdir) for i in items}
    # engines of an earlier run stay in the JSON (each with its own run record) unless run again
    earlier = json.loads(args.out.read_text()).get("engines", {}) if args.out.is_file() else {}
    results: dict[str, Any] = {**run_record(), "what": __doc__.splitlines()[0], "engines": earlier}
    for spec in args.engine:
        name, _, folder = spec.partition("=")
        pipeline = Pipeline(PipelineConfig(engine=Path(folder), calibration=CalibrationConfig(enabled=False)))
        t0 = time.perf_counter()
        outputs = {n: run_clip(pipeline, v) for n, v in videos.items()}
        results["engines"][name] = {**run_record(), "bundle": folder, "engine": pipeline.engine.manifest.name,
                                    "seconds": round(time.perf_counter() - t0, 1), **figures(outputs, items)}
        print(name, json.dumps(results["engines"][name], indent=1))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
