"""Throughput of the synthetic face generator (models/synth): rendered 224x224 frames per second.

Measures, in memory (no disk I/O): per-frame ms in one process for the crop only, and for crop + 640x480 full
frame; then frames/s with N processes (default: all CPUs) rendering crops. Target: >= 100 crops/s on 2 cores.
Prints the figures and writes JSON (default benchmarks/results/synth_throughput.json).

    python benchmarks/synth_throughput.py [--frames 200] [--workers 2] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import time
from pathlib import Path

import numpy as np


def _setup(seed: int):  # type: ignore[no-untyped-def]
    from models.synth.dataset import SynthConfig, make_timeline, sequence_placement
    from models.synth.facemodel import load_face_model
    from models.synth.renderer import Pose, make_background, sample_lighting
    from models.synth.subject import prepare_subject, sample_subject

    model = load_face_model()
    cfg = SynthConfig(seconds=8.0)
    rng = np.random.default_rng(seed)
    prepared = prepare_subject(model, sample_subject(seed, 0))
    tl = make_timeline(cfg, rng)
    bg = make_background(rng, 640, 480)
    placement = sequence_placement(cfg, prepared, model, Pose(0, 0), rng)
    return model, prepared, tl, bg, placement, sample_lighting(rng)


def _render(n: int, seed: int, full: bool) -> float:
    """Render ``n`` frames; returns seconds per frame (after one warm-up frame)."""
    from models.synth.dataset import frame_weights
    from models.synth.renderer import Pose, composite_full, degrade, render_face

    model, prepared, tl, bg, placement, lighting = _setup(seed)
    rng = np.random.default_rng(seed)

    def one(i: int) -> None:
        j = i % tl.intensity.shape[0]
        p = tl.pose[j]
        pose = Pose(float(p[0]), float(p[1]), float(p[2]), float(p[3]), float(p[4]), float(p[5]))
        gaze = (float(tl.gaze[j, 0]), float(tl.gaze[j, 1]))
        weights = frame_weights(model, tl, j)
        r = render_face(model, prepared, weights, pose, lighting, placement, bg, context=2.0 if full else 1.0,
                        eye_rotation=gaze)  # fmt: skip
        degrade(r.crop, rng, 2.0, 0.5)
        if full:
            degrade(composite_full(bg, r), rng, 2.0, 0.4)

    one(0)
    t0 = time.perf_counter()
    for i in range(n):
        one(i + 1)
    return (time.perf_counter() - t0) / n


def _worker(args: tuple[int, int]) -> float:
    n, seed = args
    return _render(n, seed, full=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=200, help="frames per measurement")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", type=Path, default=Path(__file__).with_name("results") / "synth_throughput.json")
    args = parser.parse_args()
    from models.synth.facemodel import load_face_model

    load_face_model()  # JIT compile / warm the cache before timing
    crop_s = _render(args.frames, 1, full=False)
    full_s = _render(args.frames // 2, 2, full=True)
    print(f"single process: crop only {crop_s * 1e3:.1f} ms/frame ({1 / crop_s:.0f} fps); "
          f"crop + 640x480 full frame {full_s * 1e3:.1f} ms/frame ({1 / full_s:.0f} fps)")  # fmt: skip
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    t0 = time.perf_counter()
    with ctx.Pool(args.workers) as pool:
        pool.map(_worker, [(args.frames, 10 + w) for w in range(args.workers)])
    wall = time.perf_counter() - t0
    fps = args.workers * (args.frames + 1) / wall  # includes each worker's set-up: a lower bound
    print(f"{args.workers} processes: {fps:.0f} crops/s (target >= 100 on 2 cores; includes per-process set-up)")
    result = {
        "benchmark": "synth_throughput",
        "frames": args.frames,
        "workers": args.workers,
        "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "single_process_crop_ms": round(crop_s * 1e3, 2),
        "single_process_crop_full_ms": round(full_s * 1e3, 2),
        "multi_process_crops_per_s": round(fps, 1),
        "target_crops_per_s": 100,
        "note": "in memory, no JPEG/mp4 writing; machine may have been shared while measuring",
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
