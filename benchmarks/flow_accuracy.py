"""Optical-flow accuracy: endpoint error on synthetic frames with known motion, agreement on the bundled clip.

    python benchmarks/flow_accuracy.py [--pairs 24] [--clip-pairs 30] [--out benchmarks/results]

1. Synthetic set: ``--pairs`` 224x224 textured crops (multi-scale smoothed noise, plus crops of the clip's
   frames) moved by a known smooth field (translation up to 6 px, rotation, scale, random smooth
   deformation): ``prev(x) = cur(x + flow(x))``. Mean endpoint error (EPE, px) over the interior (8 px border
   left out) for every CPU backend (DIS ultrafast/fast/medium, Farneback), the torch TV-L1 presets on the CPU
   and, when CUDA is present, on the GPU in float32 and float16, and OpenCV's CUDA backends when this
   OpenCV has them.
2. Clip: consecutive face crops of the bundled clip (YuNet box of the first frame); mean EPE of every
   backend against DIS-medium (agreement, not accuracy: there is no ground truth).
Writes ``flow_accuracy.json``, ``flow_accuracy.md`` and ``flow_accuracy.png``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
from bench_clip import load_frames  # noqa: E402  (benchmarks/bench_clip.py)
from tqdm import tqdm  # noqa: E402

from aunets.core.crop import crop_square  # noqa: E402
from aunets.core.flow import DISFlow, FarnebackFlow, FlowBackend  # noqa: E402
from aunets.core.flow_cuda_cv import create_cv_cuda_flow, cv_cuda_flow_status  # noqa: E402
from aunets.core.flow_torch import TorchTVL1Flow  # noqa: E402

SIZE = 224
BORDER = 8


def texture(rng: np.random.Generator, size: int) -> np.ndarray:
    img = np.zeros((size, size), np.float32)
    for s in (2, 4, 8, 16):
        n = rng.standard_normal((size // s + 2, size // s + 2)).astype(np.float32)
        img += cv2.resize(n, (size, size), interpolation=cv2.INTER_CUBIC)[:size, :size] * s**0.5
    img = (img - img.mean()) / img.std()
    return np.clip(128 + 40 * img, 0, 255)


def motion_pair(
    rng: np.random.Generator, cur: np.ndarray, magnitude: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(prev, cur, flow): uint8 grey images and the float32 HxWx2 flow with ``prev(x) = cur(x + flow(x))``."""
    size = cur.shape[0]
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    c = size / 2
    ang = rng.uniform(-0.03, 0.03)
    zoom = rng.uniform(-0.02, 0.02)
    tx, ty = rng.uniform(-magnitude, magnitude, 2)
    u = tx + (np.cos(ang) * (1 + zoom) - 1) * (xx - c) - np.sin(ang) * (yy - c)
    v = ty + np.sin(ang) * (xx - c) + (np.cos(ang) * (1 + zoom) - 1) * (yy - c)
    d = cv2.resize(rng.standard_normal((4, 4, 2)).astype(np.float32) * magnitude * 0.3, (size, size),
                   interpolation=cv2.INTER_CUBIC)
    u, v = u + d[..., 0], v + d[..., 1]
    prev = cv2.remap(cur.astype(np.float32), (xx + u).astype(np.float32), (yy + v).astype(np.float32),
                     cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    return (np.clip(prev, 0, 255).round().astype(np.uint8), np.clip(cur, 0, 255).round().astype(np.uint8),
            np.stack([u, v], -1).astype(np.float32))


def clip_crops(n: int) -> list[np.ndarray]:
    frames, box = load_frames(n)
    return [cv2.cvtColor(crop_square(f, box, 1.3, SIZE), cv2.COLOR_BGR2GRAY) for f in frames]


def backends() -> dict[str, FlowBackend]:
    out: dict[str, FlowBackend] = {"dis-ultrafast": DISFlow("ultrafast"), "dis-fast": DISFlow("fast"),
                                   "dis-medium": DISFlow("medium"), "farneback": FarnebackFlow()}
    for preset in ("fast", "medium"):
        out[f"torch-tvl1-{preset} (cpu)"] = TorchTVL1Flow(preset, "cpu")
    if torch.cuda.is_available():
        for preset in ("fast", "medium", "accurate"):
            out[f"torch-tvl1-{preset} (cuda fp32)"] = TorchTVL1Flow(preset, "cuda")
        out["torch-tvl1-fast (cuda fp16)"] = TorchTVL1Flow("fast", "cuda", dtype="float16")
    for name, state in cv_cuda_flow_status().items():
        if state == "available":
            out[name] = create_cv_cuda_flow(name)
    return out


def epe(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b, axis=-1)[BORDER:-BORDER, BORDER:-BORDER].mean())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pairs", type=int, default=24)
    ap.add_argument("--clip-pairs", type=int, default=30)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    ap.add_argument("--tag", default="")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    rng = np.random.default_rng(0)
    crops = clip_crops(max(args.clip_pairs + 1, 2))
    synthetic = []
    for i in range(args.pairs):
        base = texture(rng, SIZE) if i % 2 == 0 else crops[(i * 7) % len(crops)].astype(np.float32)
        synthetic.append(motion_pair(rng, base, magnitude=(1.0, 2.0, 4.0, 6.0)[i % 4]))
    zero = float(np.mean([epe(np.zeros_like(f), f) for _, _, f in synthetic]))
    bes = backends()
    reference = DISFlow("medium")
    clip_ref = [reference.compute(crops[i], crops[i + 1]) for i in range(len(crops) - 1)]
    rows: dict[str, Any] = {}
    for name, be in tqdm(bes.items(), desc="backends"):
        be.compute(synthetic[0][0], synthetic[0][1])  # warm-up
        t0 = time.perf_counter()
        errs = [epe(be.compute(p, c), f) for p, c, f in synthetic]
        ms = (time.perf_counter() - t0) * 1000 / len(synthetic)
        agree = [epe(be.compute(crops[i], crops[i + 1]), clip_ref[i]) for i in range(len(crops) - 1)]
        rows[name] = {"synthetic_epe": float(np.mean(errs)), "synthetic_epe_per_magnitude":
                      {str(m): float(np.mean(errs[k::4])) for k, m in enumerate((1, 2, 4, 6))},
                      "clip_epe_vs_dis_medium": float(np.mean(agree)), "ms_per_pair": ms}
    dis = rows["dis-medium"]["synthetic_epe"]
    for r in rows.values():
        r["epe_ratio_vs_dis_medium"] = r["synthetic_epe"] / dis
    env: dict[str, Any] = {"date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "torch": torch.__version__,
           "opencv": cv2.__version__, "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
           "cv_cuda": cv_cuda_flow_status()}
    result = {"environment": env, "pairs": args.pairs, "clip_pairs": len(crops) - 1, "zero_flow_epe": zero,
              "rows": rows}
    stem = "flow_accuracy" + (f"_{args.tag}" if args.tag else "")
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    lines = [f"# Flow accuracy ({env['date']})", "",
             f"GPU: {env['gpu'] or 'none'}; torch {env['torch']}; OpenCV {env['opencv']}. {args.pairs} synthetic "
             f"224x224 pairs with known motion (1-6 px + rotation/zoom/deformation; zero-flow EPE {zero:.2f} px), "
             f"{len(crops) - 1} consecutive face-crop pairs of the bundled clip. Times are per pair on this "
             f"machine (CPU rows single pair at a time, GPU rows include upload and download).", "",
             "| backend | synthetic EPE px | / DIS-medium | EPE at 1/2/4/6 px | clip EPE vs DIS-medium px | ms/pair |",
             "| --- | --- | --- | --- | --- | --- |"]
    for name, r in rows.items():
        per = "/".join(f"{v:.3f}" for v in r["synthetic_epe_per_magnitude"].values())
        lines.append(f"| {name} | {r['synthetic_epe']:.3f} | {r['epe_ratio_vs_dis_medium']:.2f} | {per} | "
                     f"{r['clip_epe_vs_dis_medium']:.3f} | {r['ms_per_pair']:.1f} |")
    lines += ["", "OpenCV CUDA backends: " + "; ".join(f"{k}: {v}" for k, v in env["cv_cuda"].items())]
    md = "\n".join(lines) + "\n"
    (args.out / f"{stem}.md").write_text(md, encoding="utf-8")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 0.45 * len(rows) + 1.5))
    names = list(rows)
    y = np.arange(len(names))
    ax.barh(y - 0.2, [rows[n]["synthetic_epe"] for n in names], 0.4, label="synthetic EPE (truth)")
    ax.barh(y + 0.2, [rows[n]["clip_epe_vs_dis_medium"] for n in names], 0.4, label="clip EPE vs DIS-medium")
    ax.axvline(1.1 * dis, color="gray", ls="--", lw=1, label="1.1 x DIS-medium synthetic EPE")
    ax.set_yticks(y, names)
    ax.set_xlabel("mean endpoint error, px")
    ax.set_title("Optical flow accuracy (224x224 crops)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(args.out / f"{stem}.png", dpi=110)
    plt.close(fig)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
