"""Throughput of the synthetic face generator (aunets/models/synth): rendered 224x224 frames per second.

Measures, in memory (no disk I/O): per-frame ms in one process for the crop only, and for crop + 640x480 full
frame; then crops/s with N processes (default: all CPUs, like the data set writer):
steady state (every worker set up and warm, started together) and including each worker's set-up (subject
texture, JIT cache load). Target: >= 100 crops/s on 2 cores. Prints the figures and writes JSON (default
benchmarks/results/synth_throughput.json).

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
from typing import Any

import numpy as np


def _setup(seed: int):  # type: ignore[no-untyped-def]
    from aunets.models.synth.dataset import SynthConfig, make_timeline, sequence_placement
    from aunets.models.synth.facemodel import load_face_model
    from aunets.models.synth.renderer import Pose, make_background, sample_lighting
    from aunets.models.synth.subject import prepare_subject, sample_subject

    model = load_face_model()
    cfg = SynthConfig(seconds=8.0)
    rng = np.random.default_rng(seed)
    prepared = prepare_subject(model, sample_subject(seed, 0))
    tl = make_timeline(cfg, rng)
    bg = make_background(rng, 640, 480)
    placement = sequence_placement(cfg, prepared, model, Pose(0, 0), rng)
    return model, prepared, tl, bg, placement, sample_lighting(rng)


def _render(n: int, seed: int, full: bool, warm: bool = True) -> float:
    """Render ``n`` frames; returns seconds per frame (after one warm-up frame when ``warm``)."""
    from aunets.models.synth.dataset import frame_weights
    from aunets.models.synth.renderer import Pose, composite_full, degrade, render_face

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

    if warm:
        one(0)
    t0 = time.perf_counter()
    for i in range(n):
        one(i + 1)
    return (time.perf_counter() - t0) / n


_BARRIER: Any = None


def _init_worker(barrier: Any) -> None:
    global _BARRIER
    _BARRIER = barrier


def _worker(args: tuple[int, int]) -> tuple[float, float, float]:
    """Set up and warm up, wait for the other workers, render; returns (set-up start, render start, end) times."""
    n, seed = args
    t_setup = time.time()
    _render(2, seed, full=False)  # subject, texture, JIT cache
    _BARRIER.wait()
    t0 = time.time()
    _render(n, seed, full=False, warm=False)
    return t_setup, t0, time.time()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=200, help="frames per measurement")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--json", type=Path, default=Path(__file__).with_name("results") / "synth_throughput.json")
    args = parser.parse_args()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")  # other users of the CPUs
    from aunets.models.synth.facemodel import load_face_model

    load_face_model()  # JIT compile / warm the cache before timing
    crop_s = _render(args.frames, 1, full=False)
    full_s = _render(args.frames // 2, 2, full=True)
    print(f"single process: crop only {crop_s * 1e3:.1f} ms/frame ({1 / crop_s:.0f} fps); "
          f"crop + 640x480 full frame {full_s * 1e3:.1f} ms/frame ({1 / full_s:.0f} fps)")  # fmt: skip
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    barrier = ctx.Barrier(args.workers)
    t_start = time.time()
    with ctx.Pool(args.workers, initializer=_init_worker, initargs=(barrier,)) as pool:
        spans = pool.map(_worker, [(args.frames, 10 + w) for w in range(args.workers)])
    t_end = max(e for _, _, e in spans)
    steady = args.workers * args.frames / (t_end - min(s0 for _, s0, _ in spans))
    with_setup = args.workers * (args.frames + 2) / (t_end - t_start)
    print(f"{args.workers} processes: {steady:.0f} crops/s steady state, {with_setup:.0f} crops/s including "
          f"per-process set-up (target >= 100 on 2 cores)")  # fmt: skip
    result = {
        "benchmark": "synth_throughput",
        "frames": args.frames,
        "workers": args.workers,
        "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "single_process_crop_ms": round(crop_s * 1e3, 2),
        "single_process_crop_full_ms": round(full_s * 1e3, 2),
        "multi_process_crops_per_s": round(steady, 1),
        "multi_process_crops_per_s_with_setup": round(with_setup, 1),
        "load_average_1min_at_start": round(load, 2),
        "target_crops_per_s": 100,
        "note": "in memory, no JPEG/mp4 writing; machine may have been shared while measuring",
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
