"""CPU detector speed: ONNX Runtime single-thread latency, parameter count and ONNX size of candidate networks.

    python benchmarks/model_speed.py [--crops 224 160 128 112] [--widths 1.0 0.75 0.5] [--rounds 15]
                                     [--json benchmarks/results/model_speed.json]

For each MobileNetV2 width and crop size it builds ``mobilenetv2_horizontal`` (input crop x 2*crop, random
init with batch-norm statistics recalibrated on noise: timing does not depend on the weights), exports it with
:func:`aunets.models.export.export_onnx` (12 AU logits), and times batch-1 inference in ONNX Runtime with one intra-op
thread and no spinning. Configurations are timed round-robin (``--rounds`` rounds of ``--runs`` calls each) so
that load from other processes hits all of them alike: compare the ratios within one run. Also measured: the
same trunk with 9x12 per-view heads (one file for all views) and the 9-view classifier, for the engine-size
budget. Prints a table, writes JSON and a PNG plot beside it.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from aunets.engines.manifest import InputSpec  # noqa: E402
from aunets.models.export import export_onnx, ort_session  # noqa: E402

N_AUS = 12
N_VIEWS = 9
BUDGET_MS = 4.0


def build(name: str, outputs: int, crop: int, width: float, path: Path) -> dict[str, Any]:
    import torch

    from aunets.engines.nets.detector import recalibrate_batchnorm
    from aunets.engines.registry import create_model, model_spec

    torch.manual_seed(0)
    spec = InputSpec(fusion=model_spec(name).fusion, height=crop, width=crop)
    model = create_model(name, outputs, width_mult=width)
    recalibrate_batchnorm(model, [torch.randn(4, *spec.tensor_shape)])
    export_onnx(model, path, spec.tensor_shape)
    return {
        "model": name,
        "outputs": outputs,
        "crop": crop,
        "width_mult": width,
        "input_shape": list(spec.tensor_shape),
        "params": int(sum(p.numel() for p in model.parameters())),
        "onnx_mb": round(path.stat().st_size / 1e6, 3),
        "path": path,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--crops", type=int, nargs="+", default=[224, 160, 128, 112])
    parser.add_argument("--widths", type=float, nargs="+", default=[1.0, 0.75, 0.5])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--runs", type=int, default=5, help="timed calls per configuration per round")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "model_speed.json")
    args = parser.parse_args()

    from tqdm import tqdm

    configs: list[tuple[str, int, int, float]] = [
        ("mobilenetv2_horizontal", N_AUS, c, w) for w in args.widths for c in args.crops
    ]
    for w in args.widths:
        configs.append(("mobilenetv2_horizontal", N_AUS * N_VIEWS, args.crops[0], w))  # per-view heads, one file
        configs.append(("view_mobilenetv2", N_VIEWS, args.crops[0], w))  # the view classifier (RGB crop)
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, outputs, crop, width) in enumerate(tqdm(configs, desc="export")):
            results.append(build(name, outputs, crop, width, Path(tmp) / f"m{i}.onnx"))
        sessions = [ort_session(r["path"], threads=1) for r in results]
        inputs = [np.random.default_rng(0).normal(size=(1, *r["input_shape"])).astype(np.float32) for r in results]
        times: list[list[float]] = [[] for _ in results]
        for sess, x in zip(sessions, inputs, strict=True):  # warm-up
            for _ in range(3):
                sess.run(["logits"], {"input": x})  # type: ignore[attr-defined]
        for _ in tqdm(range(args.rounds), desc="timing rounds"):
            for k, (sess, x) in enumerate(zip(sessions, inputs, strict=True)):
                for _ in range(args.runs):
                    t0 = time.perf_counter()
                    sess.run(["logits"], {"input": x})  # type: ignore[attr-defined]
                    times[k].append((time.perf_counter() - t0) * 1e3)
    ref = None
    for r, t in zip(results, times, strict=True):
        del r["path"]
        r["ms_median"] = round(statistics.median(t), 3)
        r["ms_p10"] = round(float(np.percentile(t, 10)), 3)
        r["ms_p90"] = round(float(np.percentile(t, 90)), 3)
        if _is_detector(r) and r["crop"] == 224 and r["width_mult"] == 1.0:
            ref = r["ms_median"]
    for r in results:
        r["ratio_to_w1_224"] = round(r["ms_median"] / ref, 3) if ref else None

    print(f"{'model':24s} {'out':>4s} {'crop':>4s} {'width':>5s} {'params':>10s} {'onnx MB':>8s} "
          f"{'ms p50':>7s} {'p10':>6s} {'p90':>6s} {'ratio':>6s}")
    for r in results:
        print(f"{r['model']:24s} {r['outputs']:4d} {r['crop']:4d} {r['width_mult']:5.2f} {r['params']:10,d} "
              f"{r['onnx_mb']:8.2f} {r['ms_median']:7.2f} {r['ms_p10']:6.2f} {r['ms_p90']:6.2f} "
              f"{r['ratio_to_w1_224'] or 0:6.2f}")
    out = {
        "benchmark": "model_speed",
        "onnxruntime_threads": 1,
        "budget_ms": BUDGET_MS,
        "machine": {"platform": platform.platform(), "python": platform.python_version()},
        "note": "timings on a shared, busy machine: compare ratios within this run",
        "results": results,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    png = args.json.with_suffix(".png")
    plot(results, png)
    print(f"wrote {args.json} and {png}")
    return 0


def _is_detector(r: dict[str, Any]) -> bool:
    return bool(r["model"] == "mobilenetv2_horizontal" and r["outputs"] == N_AUS)


def plot(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for w in sorted({r["width_mult"] for r in results}, reverse=True):
        rows = sorted(
            (r for r in results if r["width_mult"] == w and _is_detector(r)),
            key=lambda r: r["crop"],
        )
        xs = [r["crop"] for r in rows]
        ax.errorbar(
            xs,
            [r["ms_median"] for r in rows],
            yerr=[[r["ms_median"] - r["ms_p10"] for r in rows], [r["ms_p90"] - r["ms_median"] for r in rows]],
            marker="o",
            capsize=3,
            label=f"width {w:g} ({rows[0]['params'] / 1e6:.2f} M params)" if rows else f"width {w:g}",
        )
    ax.axhline(BUDGET_MS, color="red", linestyle="--", label=f"budget {BUDGET_MS:g} ms")
    ax.set_xlabel("crop size (input crop x 2*crop, horizontal fusion)")
    ax.set_ylabel("ms per frame (median, p10-p90)")
    ax.set_title("mobilenetv2_horizontal, ONNX Runtime, 1 thread, batch 1")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
