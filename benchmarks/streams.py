"""Frames/s against the number of streams sharing one engine on the frame path (issue 26).

    python benchmarks/streams.py [--device torch-cpu|cuda] [--flow torch-tvl1] [--streams 1 2 4] [--rounds 20]
                                 [--threads 1] [--out benchmarks/results]

Each stream is the bundled clip from its own starting frame (0, 60, 120, ...), one face (the box YuNet finds in
frame 0). A round hands one frame of every stream to the engine, two ways:

* ``batched``: :func:`aunets.stream.gpu_path.infer_streams`: one flow call and one detector call for the faces
  of all streams;
* ``separate``: each stream's own :meth:`GpuFramePath.infer_full` one after another (same shared detectors).

The two ways alternate round by round (one interleaved run, so both see the same machine load);
``batched_over_separate`` is their frames/s ratio.

Per way and number of streams: round time p50/p99 ms (a stream waits at most one round for its result: the
per-stream latency bound) and frames/s over all streams (streams x 1000 / mean round ms). Writes
``streams_<device>.json``.
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
WAYS = ("batched", "separate")
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", choices=("cuda", "torch-cpu"), default="torch-cpu")
    ap.add_argument("--streams", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--rounds", type=int, default=20, help="timed rounds per setting (after 2 untimed)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--flow", default=None, help="flow backend (default: the engine's); torch-tvl1: on the device")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = ap.parse_args()
    from bench_clip import load_frames, run_record

    from aunets.engines.engine import default_engine_path
    from aunets.stream.frame_path_start import open_frame_path
    from aunets.stream.stream_batcher import infer_streams

    span = args.rounds + 2
    frames, box = load_frames(60 * (max(args.streams) - 1) + span)
    base = open_frame_path(default_engine_path(), args.device, threads=args.threads, flow=args.flow)

    def sync() -> None:
        if args.device == "cuda":
            base._torch.cuda.synchronize()

    rows: list[dict[str, Any]] = []
    for n in args.streams:
        clips = [frames[60 * s : 60 * s + span] for s in range(n)]
        paths = {way: [base.sibling() for _ in range(n)] for way in WAYS}
        ms: dict[str, list[float]] = {way: [] for way in WAYS}
        for r in range(span):  # the two ways interleaved round by round: the same load for both
            for way in WAYS:
                sync()
                t = time.perf_counter()
                if way == "batched":
                    infer_streams(paths[way], [c[r] for c in clips], [[box]] * n)
                else:
                    for p, c in zip(paths[way], clips, strict=True):
                        p.infer_full(c[r], [box])
                sync()
                if r >= 2:
                    ms[way].append(1000.0 * (time.perf_counter() - t))
        for way in WAYS:
            a = np.asarray(ms[way])
            row = {"streams": n, "way": way, "rounds": len(a), "round_p50_ms": round(float(np.percentile(a, 50)), 2),
                   "round_p99_ms": round(float(np.percentile(a, 99)), 2),
                   "frames_per_s": round(n * 1000.0 / float(a.mean()), 2)}
            rows.append(row)
            print(json.dumps(row), flush=True)
        rows[-2]["batched_over_separate"] = round(rows[-2]["frames_per_s"] / rows[-1]["frames_per_s"], 3)
    import torch

    result = {**run_record(), "device": args.device, "flow": args.flow or "engine", "torch": torch.__version__,
              "threads": args.threads,
              "face_box": [round(float(v), 1) for v in box], "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    tag = args.device + (f"_{args.flow}" if args.flow else "")
    out = args.out / f"streams_{tag.replace('-', '_')}.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
