"""The default engine's ablation on the real-face benchmark: what each kind of training data and the calibration bring.

Each step is one engine's ``real_faces.json`` from ``benchmarks/real_faces.py --engine DIR --calibration both``;
a step reads the calibration-off figures unless its label ends in ``+calibration``, which reads the same run's
calibration-on figures::

    aunets train configs/ablation_v3_no_real.toml --set model.init='"data/v2_engine"' --out runs/abl_no_real
    aunets build-engine runs/abl_no_real --out data/abl_no_real_engine
    python benchmarks/real_faces.py --engine data/v2_engine --no-teacher --out out/v2
    python benchmarks/real_faces.py --engine data/abl_no_real_engine --no-teacher --out out/no_real
    python benchmarks/real_faces.py --engine data/v31_float --no-teacher --out out/no_teacher
    python benchmarks/ablation_real_faces.py \\
        --step "CG only (v2)=benchmarks/results/ablation/real_faces_v2.json" \\
        --step "+ photo-real warps=benchmarks/results/ablation/real_faces_no_real.json" \\
        --step "+ real photos and clips (v3.1)=benchmarks/results/ablation/real_faces_no_teacher.json" \\
        --step "+ MediaPipe teacher (v3)=benchmarks/results/int8/real_faces_float.json" \\
        --step "v3.1 + calibration+calibration=benchmarks/results/ablation/real_faces_no_teacher.json" \\
        --step "v3 + calibration+calibration=benchmarks/results/int8/real_faces_float.json" \\
        --step "v3.1 int8+calibration=benchmarks/results/int8/real_faces_v31_int8.json" \\
        --step "v3.1 int8, 12-05 pipeline+calibration=benchmarks/results/real_faces_v3.1.json" \\
        --step "+ diverse people, cross-talk (v4 int8, the default)+calibration=benchmarks/results/real_faces.json"

The last two steps ran on the pipeline of 2026-12-05 (the face tracker holds its box on a still face), the others
on that of 2026-12-02: compare v4 with the v3.1 step of its own day.
``benchmarks/results/ablation/`` holds the runs' ``real_faces.json`` (v2, without real photos, v3.1 float) and the
step-2 training record; ``benchmarks/results/int8/real_faces_float.json`` is the float v3 engine's (the previous
default, trained with MediaPipe's AU6 pseudo-labels, which were all 0).
Figures are on the ``test`` people of ``../shared/realfaces`` (never trained or tuned on) and the bundled clip;
Pearson r is agreement with OpenFace 2.2 (offline, person-calibrated), not ground truth. Prints the table and
writes ``ablation_real_faces.json`` and ``ablation_real_faces.png`` into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_clip import run_record  # noqa: E402

CALIBRATED = "+calibration"

# figure -> (label, unit scale, target (None: none), "min" when higher is better / "max" when lower is better)
FIGURES: dict[str, tuple[str, float, float | None, str]] = {
    "au12_auc": ("AU12 smile AUC", 1.0, 0.97, "min"),
    "au6_auc": ("AU6 smile AUC", 1.0, 0.90, "min"),
    "neutral_fp": ("neutral false positives (%)", 100.0, 3.0, "max"),
    "talking_worst": ("talking: worst of AU12/14/23/24 on (%)", 100.0, 5.0, "max"),
    "clip_r": ("bundled clip: mean r vs OpenFace", 1.0, 0.6, "min"),
    "test_r": ("test people: mean r vs OpenFace", 1.0, None, "min"),
    "au6_f1": ("test people: AU6 presence F1 vs OpenFace", 1.0, None, "min"),
}


def figures(run: dict[str, Any], calibrated: bool) -> dict[str, float]:
    """The ablation's figures of one ``real_faces.json``, calibration off or on (fractions, as stored)."""
    side = run["engine_on" if calibrated else "engine_off"]
    test, clip = side["test"], side["clip"]
    return {
        "au12_auc": test["smile_auc"]["AU12"],
        "au6_auc": test["smile_auc"]["AU06"],
        "neutral_fp": test["neutral_false_positive"]["rate"],
        "talking_worst": max(test["talking_on"]["per_au"].values()),
        "clip_r": clip["vs_openface_offline"]["mean_r"],
        "test_r": test["vs_openface_offline"]["mean_r"],
        "au6_f1": test["vs_openface_offline"]["per_au"]["AU06"]["f1"],
    }


def shown(key: str, value: float) -> str:
    """A figure as printed: AUC and r with two decimals, rates in per cent with one."""
    scale = FIGURES[key][1]
    return f"{value:.2f}" if scale == 1 else f"{value * scale:.1f}"


def parse_step(text: str) -> tuple[str, Path, bool]:
    if "=" not in text:
        raise SystemExit(f"--step {text!r}: write it as LABEL=PATH/real_faces.json")
    label, path = text.rsplit("=", 1)
    calibrated = label.endswith(CALIBRATED)
    return label.removesuffix(CALIBRATED).strip(), Path(path), calibrated


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = 4
    fig, axes = plt.subplots(-(-len(FIGURES) // cols), cols, figsize=(16, 6.5))
    for ax in axes.flat[len(FIGURES):]:
        ax.set_visible(False)
    labels = [r["step"] for r in rows]
    colours = plt.get_cmap("viridis")([0.15 + 0.7 * i / max(1, len(rows) - 1) for i in range(len(rows))])
    for ax, (key, (title, scale, target, sense)) in zip(axes.flat, FIGURES.items(), strict=False):
        values = [r[key] * scale for r in rows]
        bars = ax.bar(range(len(rows)), values, color=colours)
        if target is not None:
            bound = "≥" if sense == "min" else "≤"
            ax.axhline(target, color="crimson", lw=1.2, ls="--", label=f"target {bound} {target:g}")
        for b, r in zip(bars, rows, strict=True):
            ax.text(b.get_x() + b.get_width() / 2, b.get_height(), shown(key, r[key]), ha="center", va="bottom",
                    fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.set_xticks(range(len(rows)), [f"{i + 1}" for i in range(len(rows))])
        top = max([*values, target or 0.0]) * 1.18 or 1.0
        ax.set_ylim(min(0.0, *values) * 1.2, top)
        if target is not None:
            ax.legend(fontsize=7, loc="lower right" if sense == "min" else "upper right")
        ax.grid(axis="y", alpha=0.3)
    named = [f"{i + 1}: {s}" for i, s in enumerate(labels)]
    steps = "\n".join("   ".join(named[k:k + 5]) for k in range(0, len(named), 5))
    fig.suptitle(f"Default engine ablation on real faces (test people, bundled clip)\n{steps}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--step", action="append", required=True, help="LABEL=real_faces.json (LABEL+calibration: on)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = ap.parse_args(argv)
    rows = []
    for text in args.step:
        label, path, calibrated = parse_step(text)
        run = json.loads(path.read_text(encoding="utf-8"))
        rows.append({"step": label, "engine": run["engine"], "calibration": calibrated, "source": str(path),
                     **figures(run, calibrated)})
    header = "| step | calibration | " + " | ".join(v[0] for v in FIGURES.values()) + " |"
    print(header)
    print("|" + "---|" * (len(FIGURES) + 2))
    for r in rows:
        cells = [shown(k, r[k]) for k in FIGURES]
        print(f"| {r['step']} | {'on' if r['calibration'] else 'off'} | " + " | ".join(cells) + " |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ablation_real_faces.json").write_text(json.dumps({**run_record(), "steps": rows}, indent=2) + "\n")
    plot(rows, args.out / "ablation_real_faces.png")
    print(f"-> {args.out / 'ablation_real_faces.json'}, {args.out / 'ablation_real_faces.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
