"""Realism of the photo-real AU warps per AU: MediaPipe's blendshapes (trained on real faces) on ``aunets synth-photo``
output, against the intensity the generator applied (:mod:`aunets.models.warp_realism`).

    python benchmarks/warp_realism.py [--people 6] [--seed 11] [--workdir out/warp_realism] [--tag v3.1]

Makes a scripted data set (each AU alone in turn, no head jitter, train people of London and Canada only) with
``aunets synth-photo`` into ``--workdir`` (reused when it is there), scores every frame with the bundled
FaceLandmarker and writes ``benchmarks/results/warp_realism[_TAG].json`` (per AU Pearson r, mean blendshape rise at
apex, the AUs below r 0.6) and ``warp_realism[_TAG].png`` (a contact sheet: neutral | apex per AU).
Needs ``pip install -e '.[teacher]'`` (mediapipe).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_clip import run_record  # noqa: E402

from aunets.models.warp_realism import blendshape_scores, contact_sheet, read_labels, realism, script_for  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--people", type=int, default=6, help="train people warped (one scripted sequence each)")
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--sets", default="london,canada", help="photo sets of synth-photo")
    ap.add_argument("--workdir", type=Path, default=REPO / "out" / "warp_realism", help="the data set (outside git)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    ap.add_argument("--tag", default="", help="name the outputs warp_realism_TAG.json/.png")
    args = ap.parse_args()
    script, seconds = script_for()
    dataset = args.workdir / f"people{args.people}_seed{args.seed}_{args.sets.replace(',', '-')}"
    command = ["synth-photo", "--out", str(dataset), "--sets", args.sets, "--people", str(args.people),
               "--sequences", "1", "--seconds", str(seconds), "--seed", str(args.seed), "--script", script,
               "--no-jitter", "--no-crops", "--no-video", "--no-progress"]  # fmt: skip
    t0 = time.perf_counter()
    if not (dataset / "labels.csv").is_file():
        print("aunets " + " ".join(command), flush=True)
        subprocess.run([sys.executable, "-m", "aunets", *command], check=True)
    t1 = time.perf_counter()
    rows = read_labels(dataset)
    names, scores = blendshape_scores(dataset, rows)
    result = realism(rows, names, scores)
    t2 = time.perf_counter()
    stem = "warp_realism" + (f"_{args.tag}" if args.tag else "")
    record = {**run_record(), "what": "Pearson r per AU: synth-photo's applied intensity vs MediaPipe's blendshape",
              "synth_photo": ["aunets", *command[:2], f"out/warp_realism/{dataset.name}", *command[3:]],
              "seconds": {"synth_photo": round(t1 - t0, 1), "mediapipe": round(t2 - t1, 1)}, **result}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.json").write_text(json.dumps(record, indent=1) + "\n")
    contact_sheet(dataset, rows, result, args.out / f"{stem}.png")
    print("| AU | blendshapes | r | apex rise | alternatives |\n|---|---|---|---|---|")
    for key, v in result["per_au"].items():
        alt = ", ".join(f"{n} {'n/a' if r is None else f'{r:.2f}'}" for n, r in v["alternatives"].items())
        r = "n/a" if v["r"] is None else f"{v['r']:.2f}"
        rise = "n/a" if v["apex_rise"] is None else f"{v['apex_rise']:.3f}"
        print(f"| {key} | {'/'.join(v['blendshapes'])} | {r} | {rise} | {alt} |")
    print(f"below r {result['r_min']}: {result['below']}; {result['frames']} frames, {result['faces_found']} faces")
    return 0


if __name__ == "__main__":
    sys.exit(main())
