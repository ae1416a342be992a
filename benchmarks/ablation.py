"""Small-budget ablation of the default recipe (issue 4, in the direction of the paper's Tables 1 and 2).

    python benchmarks/ablation.py [--workdir runs/ablation] [--json benchmarks/results/ablation_small.json]

Same data, same budget, one change at a time, from `configs/default.toml`:
- `horizontal` (RGB | flow side by side, the default), `rgb` (RGB only), `channels` (6-channel first layer);
- `horizontal`, domain adaptation (the "EmoNet" expression stage) off.
Budget (stated in the output): 20 training identities x 9 views x 3 s of synthetic video (seed 0), 1500
samples per epoch, 4 epochs after a 1-epoch frontal stage, no view classifier (evaluation uses the true view),
test on 8 unseen identities x 9 views x 2 s (seed 1000). Much smaller than the default engine's budget, so
compare the rows with each other, not with the default engine's figures. Runs on the CPU (about 25 minutes
on 2 cores); re-running reuses finished runs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

BUDGET = [
    "optim.samples_per_epoch=1500", "optim.epochs=4", "cascade.frontal_epochs=1",
    "domain_adaptation.samples_per_epoch=1500", "view_classifier.enabled=false", "data.max_val_frames=1500",
]
VARIANTS: dict[str, list[str]] = {
    "horizontal (default)": [],
    "rgb only": ['input.fusion="rgb"', 'model.architecture="mobilenetv2_rgb"'],
    "channels (6-ch)": ['input.fusion="channels"', 'model.architecture="mobilenetv2_channels"'],
    "horizontal, no domain adaptation": ["domain_adaptation.enabled=false"],
}


def aunets(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "aunets.cli", *args], check=True, cwd=REPO)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, default=REPO / "runs" / "ablation")
    ap.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "ablation_small.json")
    args = ap.parse_args()
    work = args.workdir
    train, test = work / "synth_train", work / "synth_test"
    if not (train / "labels.csv").is_file():
        aunets("synth", "--subjects", "20", "--views", "9", "--seconds", "3", "--seed", "0", "--no-crops",
               "--no-video", "--out", str(train), "--no-progress")
    if not (test / "labels.csv").is_file():
        aunets("synth", "--subjects", "8", "--views", "9", "--seconds", "2", "--seed", "1000", "--no-crops",
               "--no-video", "--out", str(test), "--no-progress")
    rows = []
    for i, (name, overrides) in enumerate(VARIANTS.items()):
        run, engine, report = work / f"run{i}", work / f"engine{i}", work / f"eval{i}.json"
        t0 = time.perf_counter()
        if not report.is_file():
            sets = [x for o in BUDGET + overrides for x in ("--set", o)]
            aunets("train", "configs/default.toml", "--data", str(train), "--out", str(run), "--device", "cpu",
                   "--no-progress", *sets)
            aunets("build-engine", str(run), "--out", str(engine), "--force", "--no-torch-twins")
            aunets("eval", "--data", str(test), "--split", "all", "--engine", str(engine), "--view-source",
                   "truth", "--json", str(report), "--no-progress")
        result = json.loads(report.read_text())
        rows.append({"variant": name, "overrides": overrides, "mean_f1_causal": result["mean_f1"],
                     "mean_f1_centred": result["mean_f1_centred"], "mean_f1_none": result["mean_f1_none"],
                     "f1_causal_per_au": {au: v["f1"]["causal"] for au, v in result["per_au"].items()},
                     "minutes": round((time.perf_counter() - t0) / 60, 1)})
        print(f"{name:<36} mean F1 causal {result['mean_f1']:.3f}  centred {result['mean_f1_centred']:.3f}")
    out = {"date": time.strftime("%Y-%m-%d %H:%M"), "budget": BUDGET, "data": {
        "train": "20 identities x 9 views x 3 s, seed 0", "test": "8 unseen identities x 9 views x 2 s, seed 1000"},
        "rows": rows}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2) + "\n")
    aus = list(rows[0]["f1_causal_per_au"])
    lines = ["| variant | mean F1 causal | centred | none | " + " | ".join(aus) + " |",
             "|---|---|---|---|" + "---|" * len(aus)]
    lines += [f"| {r['variant']} | {r['mean_f1_causal']:.3f} | {r['mean_f1_centred']:.3f} | {r['mean_f1_none']:.3f} | "
              + " | ".join(f"{r['f1_causal_per_au'][au]:.3f}" for au in aus) + " |" for r in rows]
    args.json.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
