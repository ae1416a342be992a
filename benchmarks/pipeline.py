"""Streaming-core benchmark (issue 2): offline throughput, live latency, per-stage times, memory over time.

    python benchmarks/pipeline.py [--engine DIR] [--soak-seconds 600] [--json benchmarks/results/pipeline.json]
    python benchmarks/pipeline.py --max-faces 1 2 4      # cost per number of faces -> results/pipeline_faces.json

1. offline: `aunets process` path (capture process decoding, detect, flow, engine, median, CSV) on the
   bundled clip, every frame, as fast as possible -> frames/s end to end and the median ms of each stage.
2. decode alone: the capture process with no consumer work -> frames/s.
3. live: the clip paced to its frame rate (--realtime) through ZeroMQ publishing, with a real subscriber on
   loopback -> latency from capture timestamp to publish (p50/p99) and from capture to receipt.
4. soak (optional): the clip looped for --soak-seconds in live mode; resident memory sampled every 10 s.
5. faces (``--max-faces N ...``, instead of 1-4): offline on media/realfaces_four.mp4 (four people always in
   view) with ``--max-faces N`` for each N -> frames/s, faces per frame and ms per frame of each stage.
Prints a table and writes JSON. Timings depend on what else the 2 cores are doing: compare ratios from one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import zmq

REPO = Path(__file__).resolve().parents[1]
CLIP = REPO / "media" / "pexels_wolfganglanger_expressions.mp4"
FOUR = REPO / "media" / "realfaces_four.mp4"
sys.path.insert(0, str(REPO))

from aunets.stream.capture import Capture, CaptureConfig  # noqa: E402
from aunets.stream.csv_sink import OpenFaceCsvWriter  # noqa: E402
from aunets.stream.pipeline import Pipeline, PipelineConfig  # noqa: E402
from aunets.stream.publish import ZmqPublisher  # noqa: E402
from aunets.stream.runner import LatencyHistogram, run_stream  # noqa: E402
from aunets.stream.tracking import TrackerConfig  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024


def offline(engine: Path | None, repeats: int, clip: Path = CLIP, max_faces: int = 1) -> dict:
    best = None
    for _ in range(repeats):
        pipeline = Pipeline(PipelineConfig(engine=engine, tracker=TrackerConfig(max_faces=max_faces)))
        with tempfile.TemporaryDirectory() as tmp:
            writer = OpenFaceCsvWriter(Path(tmp) / "o.csv", pipeline.aus)
            stats = run_stream(CaptureConfig(str(clip)), pipeline, [writer])
            writer.close()
        s = stats.summary()
        if best is None or s["fps"] > best["fps"]:
            best = s
    assert best is not None
    return best


def faces(engine: Path | None, repeats: int, counts: list[int]) -> dict:
    """Offline runs on the four-person clip with ``--max-faces N`` for each N (the best of ``repeats``)."""
    runs = {}
    for n in counts:
        s = offline(engine, repeats, FOUR, n)
        s["faces_per_frame"] = round(s["faces"] / max(1, s["frames"]), 2)
        runs[str(n)] = s
    return runs


def decode_only() -> dict:
    with Capture(CaptureConfig(str(CLIP))) as cap:
        t0 = time.perf_counter()
        n = sum(1 for _ in cap.frames())
        dt = time.perf_counter() - t0
    return {"frames": n, "fps": round(n / dt, 1), "ms_per_frame": round(1000 * dt / n, 3)}


def live(engine: Path | None, seconds: float, loop: bool) -> dict:
    ctx = zmq.Context()
    pub = ZmqPublisher("tcp://127.0.0.1:*", context=ctx)
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"au.frame")
    sub.connect(pub.last_endpoint)
    pub.wait_for_subscriber(5.0)
    receipt_ms: list[float] = []
    memory: list[tuple[float, float]] = []
    done = threading.Event()

    def receive() -> None:
        while not done.is_set():
            if sub.poll(100):
                _, payload = sub.recv_multipart()
                receipt_ms.append(1000 * (time.time() - json.loads(payload)["t_capture"]))

    thread = threading.Thread(target=receive, daemon=True)
    thread.start()
    pipeline = Pipeline(PipelineConfig(engine=engine))
    t_start = time.monotonic()
    latency = LatencyHistogram()
    frames = dropped = 0
    while True:
        stats = run_stream(CaptureConfig(str(CLIP), realtime=True), pipeline, [pub])
        latency.merge(stats.latency)
        frames += stats.frames
        dropped += stats.dropped
        memory.append((round(time.monotonic() - t_start, 1), round(rss_mb(), 1)))
        if not loop or time.monotonic() - t_start >= seconds:
            break
    time.sleep(0.3)
    done.set()
    thread.join()
    pub.close()
    sub.close(0)
    ctx.term()
    rec = np.asarray(receipt_ms)
    return {
        "frames": frames,
        "dropped": dropped,
        "seconds": round(time.monotonic() - t_start, 1),
        "capture_to_publish_ms": {"p50": round(latency.percentile(50) or 0.0, 2),
                                  "p99": round(latency.percentile(99) or 0.0, 2)},
        "capture_to_receipt_ms": {"p50": round(float(np.percentile(rec, 50)), 2),
                                  "p99": round(float(np.percentile(rec, 99)), 2)} if len(rec) else None,
        "rss_mb_over_time": memory,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--engine", type=Path, default=None, help="engine bundle (default: the embedded engine)")
    ap.add_argument("--repeats", type=int, default=3, help="offline runs; the best is reported")
    ap.add_argument("--soak-seconds", type=float, default=0.0, help="loop the clip live this long (memory check)")
    ap.add_argument("--max-faces", type=int, nargs="+", default=None, metavar="N",
                    help="only the cost per number of faces: --max-faces 1 2 4 on media/realfaces_four.mp4")
    ap.add_argument("--json", type=Path, default=None,
                    help="default benchmarks/results/pipeline.json (pipeline_faces.json with --max-faces)")
    args = ap.parse_args()
    results = REPO / "benchmarks" / "results"
    if args.max_faces:
        return main_faces(args.engine, args.repeats, args.max_faces, args.json or results / "pipeline_faces.json")
    args.json = args.json or results / "pipeline.json"

    pipeline = Pipeline(PipelineConfig(engine=args.engine))
    engine_name = pipeline.engine.manifest.name
    layout = pipeline.engine.manifest.input.layout
    del pipeline
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": f"{platform.machine()} {platform.processor() or ''} cores={__import__('os').cpu_count()}",
        "python": platform.python_version(),
        "engine": engine_name,
        "engine_input": layout,
        "clip": CLIP.name,
        "decode_only": decode_only(),
        "offline": offline(args.engine, args.repeats),
        "live": live(args.engine, args.soak_seconds, loop=args.soak_seconds > 0),
    }
    off, liv = result["offline"], result["live"]
    print(f"engine {engine_name} ({layout}) on {CLIP.name}")
    print(f"decode only            {result['decode_only']['fps']:8.1f} frames/s")
    print(f"offline end to end     {off['fps']:8.1f} frames/s  ({off['frames']} frames)")
    for stage, ms in off["stage_ms_per_frame"].items():
        print(f"  {stage:<20} {ms:8.3f} ms/frame")
    print(f"live capture->publish  p50 {liv['capture_to_publish_ms']['p50']:.2f} ms  "
          f"p99 {liv['capture_to_publish_ms']['p99']:.2f} ms  ({liv['frames']} frames, {liv['dropped']} dropped)")
    if liv["capture_to_receipt_ms"]:
        print(f"live capture->receipt  p50 {liv['capture_to_receipt_ms']['p50']:.2f} ms  "
              f"p99 {liv['capture_to_receipt_ms']['p99']:.2f} ms")
    print(f"resident memory (s, MB): {liv['rss_mb_over_time']}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


def main_faces(engine: Path | None, repeats: int, counts: list[int], out: Path) -> int:
    load_before = [round(v, 2) for v in os.getloadavg()]
    runs = faces(engine, repeats, counts)
    result = {
        "load_average_before_after": [load_before, [round(v, 2) for v in os.getloadavg()]],
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": f"{platform.machine()} {platform.processor() or ''} cores={__import__('os').cpu_count()}",
        "python": platform.python_version(),
        "clip": FOUR.name,
        "repeats": repeats,
        "max_faces": runs,
    }
    stages = list(next(iter(runs.values()))["stage_ms_per_frame"])
    print(f"{FOUR.name}, offline, best of {repeats}; ms per frame of each stage; load average (1, 5, 15 min) "
          f"{result['load_average_before_after']}")
    print(f"{'max-faces':>9} {'faces/frame':>11} {'frames/s':>9} " + " ".join(f"{st:>8}" for st in stages))
    for n, s in runs.items():
        print(f"{n:>9} {s['faces_per_frame']:>11.2f} {s['fps']:>9.1f} "
              + " ".join(f"{s['stage_ms_per_frame'][st]:>8.2f}" for st in stages))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
