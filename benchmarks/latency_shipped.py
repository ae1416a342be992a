"""Start-up and per-frame latency of the shipped engine on the GPU frame path (issue 26).

    python benchmarks/latency_shipped.py [--device cuda|torch-cpu] [--flow torch-tvl1] [--faces 1 4 8 16]
                                         [--frames 200] [--threads 2] [--out benchmarks/results]

The shipped engine (``aunets/engines/default``: its ``detector.safetensors`` with nine view heads and intensity)
through :class:`aunets.stream.gpu_path.GpuFramePath` on the bundled clip, the face box YuNet finds in its first
frame (the same box repeated for N faces):

* ``startup``: two fresh processes one after the other, sharing a new compile cache folder (``cold``: empty
  cache; ``warm``: the cache the first left): ``import_s`` (torch), ``load_s`` (detectors onto the device),
  ``warmup_s`` (:meth:`GpuFramePath.warmup` for one face), ``first_frame_ms`` (the first frame after warm-up),
  ``max_frame_ms_after_first`` over the next 50 frames.
* ``batches``: per number of faces N, ``--frames`` frames after 3 untimed ones: p50/p99 ms per frame and
  faces/s (N x 1000 / mean ms).

``--flow``: as ``aunets process --flow`` (default: the engine's DIS, on the host; ``torch-tvl1``: TV-L1 on the
device, the whole path one CUDA graph). Writes ``latency_shipped_<device>[_<flow>].json`` (run record, device,
versions) under ``--out``. ``torch-cpu`` is the path on torch's CPU device (float32, no graphs): what this
machine can measure; the GPU rows come from a machine with CUDA (``benchmarks/gpu_check.sh``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))


def percentiles(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms, dtype=np.float64)
    return {"n": int(a.size), "p50_ms": round(float(np.percentile(a, 50)), 3),
            "p99_ms": round(float(np.percentile(a, 99)), 3), "mean_ms": round(float(a.mean()), 3),
            "max_ms": round(float(a.max()), 3)}


def _sync(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def startup_child(device: str, threads: int, flow: str | None) -> dict[str, Any]:
    """In a fresh process: import, load, warm-up, the first frame and the next 50 (as a stream starts)."""
    t0 = time.perf_counter()
    import torch  # noqa: F401  (timed: the first import of the process)

    import_s = time.perf_counter() - t0
    from bench_clip import load_frames

    from aunets.engines.engine import default_engine_path
    from aunets.stream.frame_path_start import open_frame_path

    frames, box = load_frames(52)
    t1 = time.perf_counter()
    path = open_frame_path(default_engine_path(), device, threads=threads, flow=flow)
    _sync(device)
    load_s = time.perf_counter() - t1
    warmup_s = path.warmup(frames[0].shape, max_faces=1)
    times = []
    for f in frames:
        t = time.perf_counter()
        path.infer(f, [box])
        times.append(1000.0 * (time.perf_counter() - t))
    return {"import_s": round(import_s, 3), "load_s": round(load_s, 3), "warmup_s": round(warmup_s, 3),
            "first_frame_ms": round(times[0], 3), "max_frame_ms_after_first": round(max(times[1:]), 3),
            "graphs": path.graphs_captured}


def startup(device: str, threads: int, flow: str | None) -> dict[str, Any]:
    """Two fresh processes sharing one new compile cache: cold, then warm."""
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="aunets-cache-") as cache:
        env = {**os.environ, "AUNETS_CACHE_DIR": cache}
        for var in ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR"):
            env.pop(var, None)
        for run in ("cold", "warm"):
            command = [sys.executable, __file__, "--startup-child", "--device", device, "--threads", str(threads)]
            command += ["--flow", flow] if flow else []
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
            if done.returncode != 0:
                out[run] = {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
            else:
                out[run] = json.loads(done.stdout.strip().splitlines()[-1])
            print(run, json.dumps(out[run]), flush=True)
    return out


def batches(device: str, faces: list[int], n_frames: int, threads: int, flow: str | None) -> list[dict[str, Any]]:
    from bench_clip import load_frames
    from tqdm import tqdm

    from aunets.engines.engine import default_engine_path
    from aunets.stream.frame_path_start import open_frame_path

    frames, box = load_frames(min(n_frames + 3, 200))
    path = open_frame_path(default_engine_path(), device, threads=threads, flow=flow)
    rows = []
    for n in faces:
        boxes = [box] * n  # the untimed frames below compile and capture what these N faces need
        for f in frames[:3]:
            path.infer(f, boxes)
        ms = []
        for i in tqdm(range(n_frames), desc=f"{n} face(s)", leave=False):
            f = frames[3 + i % (len(frames) - 3)] if len(frames) > 3 else frames[i % len(frames)]
            _sync(device)
            t = time.perf_counter()
            path.infer(f, boxes)  # ends with the probabilities on the host
            ms.append(1000.0 * (time.perf_counter() - t))
        row = {"faces": n, **percentiles(ms)}
        row["faces_per_s"] = round(n * 1000.0 / row["mean_ms"], 1)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def environment(device: str) -> dict[str, Any]:
    import cv2
    import torch

    env: dict[str, Any] = {"device": device, "python": platform.python_version(), "torch": torch.__version__,
                           "opencv": cv2.__version__, "cpu_threads": torch.get_num_threads()}
    if device == "cuda":
        major, minor = torch.cuda.get_device_capability()
        env.update(gpu=torch.cuda.get_device_name(), compute_capability=f"{major}.{minor}", cuda=torch.version.cuda)
    return env


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", choices=("cuda", "torch-cpu"), default="cuda")
    ap.add_argument("--faces", type=int, nargs="+", default=[1, 4, 8, 16])
    ap.add_argument("--frames", type=int, default=200, help="timed frames per number of faces")
    ap.add_argument("--threads", type=int, default=2, help="torch threads on torch-cpu")
    ap.add_argument("--flow", default=None, help="flow backend (default: the engine's); torch-tvl1: on the device")
    ap.add_argument("--skip-startup", action="store_true")
    ap.add_argument("--startup-child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = ap.parse_args()
    if args.startup_child:
        print(json.dumps(startup_child(args.device, args.threads, args.flow)))
        return 0
    from bench_clip import run_record

    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise SystemExit("--device cuda needs torch with CUDA and a GPU; use --device torch-cpu")
    result: dict[str, Any] = {**run_record(), "environment": environment(args.device), "flow": args.flow or "engine"}
    if not args.skip_startup:
        result["startup"] = startup(args.device, args.threads, args.flow)
    result["batches"] = batches(args.device, args.faces, args.frames, args.threads, args.flow)
    args.out.mkdir(parents=True, exist_ok=True)
    tag = args.device + (f"_{args.flow}" if args.flow else "")
    out = args.out / f"latency_shipped_{tag.replace('-', '_')}.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
