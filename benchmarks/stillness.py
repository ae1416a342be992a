"""Where the jitter of the output on a still face comes from: the pipeline on still photos made into clips, with one
source of frame-to-frame change removed at a time (:mod:`aunets.models.stillness`).

    python benchmarks/stillness.py [--engine DIR] [--people 6] [--workdir out/real_faces] [--tag v3.1]

Still clips: inter-faces neutral portraits and Canada faces (both splits: nothing here trains or tunes anything),
50 frames each, made as the real-face benchmark makes them (cached in ``--workdir``). For each condition: per AU the
mean |Δ raw probability| between consecutive frames (frames 2 on; the issue's target is 0.01), and what moved
underneath: the face box (mean |Δ| of centre and side over the side) and the flow (mean magnitude, crop px).
Writes ``benchmarks/results/stillness[_TAG].json`` and prints the table.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_clip import run_record  # noqa: E402

from aunets.core.au import au_key  # noqa: E402
from aunets.core.errors import AunetsError  # noqa: E402
from aunets.models.data.realfaces import default_root, load_interfaces, load_realfaces  # noqa: E402
from aunets.models.realface_benchmark import clip_path  # noqa: E402
from aunets.models.stillness import StillCondition, still_jitter  # noqa: E402

CONDITIONS = (
    StillCondition("as shipped (tracker hold 0.04)"),
    StillCondition("no tracker hold (before)", tracker_hold=0.0),
    StillCondition("no hold, no codec noise", tracker_hold=0.0, exact_frames=True),
    StillCondition("no hold, zero flow", tracker_hold=0.0, zero_flow=True),
    StillCondition("no hold, view fixed", tracker_hold=0.0, fixed_view=True),
    StillCondition("box of frame 0 held", hold_box=True),
    StillCondition("box held, no codec noise", hold_box=True, exact_frames=True),
    StillCondition("box held, zero flow", hold_box=True, zero_flow=True),
    StillCondition("hold, float weights (torch)", runtime="torch"),
)


def main() -> int:
    import json

    import numpy as np

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engine", type=Path, default=None, help="engine bundle (default: the embedded engine)")
    ap.add_argument("--root", type=Path, default=default_root(), help="the real-face collection")
    ap.add_argument("--people", type=int, default=6, help="still clips: N inter-faces neutral + N/2 Canada")
    ap.add_argument("--workdir", type=Path, default=REPO / "out" / "real_faces", help="clip cache (outside git)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    ap.add_argument("--tag", default="", help="name the output stillness_TAG.json")
    ap.add_argument("--conditions", default="", help="comma-separated condition numbers to run (default: all; "
                    "8, the float weights through torch, takes most of the time)")
    args = ap.parse_args()
    portraits = [i for i in load_interfaces(args.root) if i.expression == "N"][: args.people]
    canada = [i for i in load_realfaces(args.root) if i.set == "canada"][: max(1, args.people // 2)]
    clips = {i.clip_name: clip_path(i, args.workdir) for i in portraits + canada}
    chosen = [CONDITIONS[int(k)] for k in args.conditions.split(",")] if args.conditions else list(CONDITIONS)
    rows: list[dict[str, Any]] = []
    for cond in chosen:
        t0 = time.perf_counter()
        try:
            runs = [still_jitter(v, cond, args.engine) for v in clips.values()]
        except AunetsError as exc:  # e.g. an engine without float weights for the torch condition
            print(f"{cond.name:32s} skipped: {exc}", flush=True)
            rows.append({"condition": cond.name, "skipped": str(exc)})
            continue
        aus = runs[0]["aus"]
        dp = np.concatenate([r["dp"] for r in runs])
        per_au = {au_key(a): round(float(dp[:, k].mean()), 5) for k, a in enumerate(aus)}
        flows = [r["flow_px"] for r in runs if r["flow_px"] is not None]
        rows.append({"condition": cond.name, "config": {k: v for k, v in vars(cond).items() if k != "name"},
                     "pairs": len(dp), "mean": round(float(dp.mean()), 5), "max_au": max(per_au.values()),
                     "per_au": per_au,
                     "box_motion": round(float(np.mean([r["box_motion"] for r in runs])), 5),
                     "flow_px": round(float(np.mean(flows)), 4) if flows else None,
                     "seconds": round(time.perf_counter() - t0, 1)})  # fmt: skip
        r = rows[-1]
        print(f"{cond.name:32s} mean |Δp| {r['mean']:.4f}  worst AU {r['max_au']:.4f}  box {r['box_motion']:.4f}  "
              f"flow {r['flow_px']} px  ({r['seconds']} s)", flush=True)
    result = {**run_record(), "what": "mean |Δ raw p| between consecutive frames of still photos made into clips",
              "clips": list(clips), "target_max_au": 0.01, "conditions": rows}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / ("stillness" + (f"_{args.tag}" if args.tag else "") + ".json")
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
