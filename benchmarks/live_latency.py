"""Live latency on the bundled clip, where it goes, and its histogram (issue 23).

    python benchmarks/live_latency.py [--repeats 2] [--variants default aligned threads1 gc-unfrozen]
                                      [--json benchmarks/results/live_latency.json]

What ``aunets run media/pexels_wolfganglanger_expressions.mp4 --realtime`` does, in this process: the clip paced to
its frame rate by the capture process (which also tracks the face), the pipeline, and a real ZeroMQ publisher on
loopback. Per frame it records the latency from the capture timestamp (taken in the capture process right after
decoding) to the results handed to the publisher, split into **hand-off** (capture timestamp to the frame reaching
the pipeline: face tracking in the capture process and the shared-memory hand-off) and **pipeline** (flow, view,
engine, median), and both by frame index mod 5 (the tracker's full-frame pass falls on index mod 5 == 0); the
garbage collector's pauses are recorded through ``gc.callbacks``.

Variants, interleaved (one run of each in turn, ``--repeats`` rounds):

- ``default``: as shipped (the view classifier on index mod 5 == 2, away from the tracker's full-frame pass).
- ``aligned``: the view classifier on index mod 5 == 0, the same frames as the full-frame pass (before issue 23).
- ``threads1``: the engine on one ONNX Runtime thread (``--threads 1``) instead of two.
- ``gc-unfrozen``: without the ``gc.freeze()`` of start-up objects that ``run_stream`` does (before issue 23).

It also times one full garbage collection with a pipeline loaded, unfrozen and frozen.

Prints percentiles, writes JSON (with the histograms, 0.25 ms bins) and a PNG beside it.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_clip import CLIP, run_record  # noqa: E402  (benchmarks/bench_clip.py)

from aunets.core.frame import Frame  # noqa: E402
from aunets.core.results import FaceResult  # noqa: E402
from aunets.stream.capture import CaptureConfig  # noqa: E402
from aunets.stream.pipeline import Pipeline, PipelineConfig  # noqa: E402
from aunets.stream.publish import ZmqPublisher  # noqa: E402
from aunets.stream.runner import run_stream  # noqa: E402

BIN_MS = 0.25
MAX_MS = 60.0
VARIANTS = ("default", "aligned", "threads1", "gc-unfrozen")


def percentiles(values: np.ndarray) -> dict[str, float]:
    return {f"p{q}": round(float(np.percentile(values, q)), 2) for q in (50, 90, 99)} | {
        "max": round(float(values.max()), 2)}


def run_variant(variant: str) -> dict[str, Any]:
    pipeline = Pipeline(PipelineConfig(threads=1 if variant == "threads1" else 2,
                                       view_phase=0 if variant == "aligned" else None))
    handoff: list[float] = []
    work: list[float] = []
    index: list[int] = []
    process = pipeline.process

    def timed(frame: Frame) -> list[FaceResult]:
        t_in = time.monotonic_ns()
        out = process(frame)
        index.append(frame.index)
        handoff.append((t_in - frame.t_capture_ns) / 1e6)
        work.append((time.monotonic_ns() - t_in) / 1e6)
        return out

    pipeline.process = timed  # type: ignore[method-assign]
    pauses: list[float] = []
    started: list[float] = []

    generations: list[int] = []

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started.append(time.perf_counter())
        elif started:
            pauses.append(1000 * (time.perf_counter() - started.pop()))
            generations.append(info["generation"])

    publisher = ZmqPublisher("tcp://127.0.0.1:*")
    gc.callbacks.append(on_gc)
    try:
        stats = run_stream(CaptureConfig(str(CLIP), realtime=True), pipeline, [publisher],
                           freeze_gc=variant != "gc-unfrozen")
    finally:
        gc.callbacks.remove(on_gc)
        publisher.close()
    total = np.asarray(handoff) + np.asarray(work)  # capture stamp to results out, as the runner's latency
    phase = np.asarray(index) % 5
    bins = int(MAX_MS / BIN_MS)
    counts = np.bincount(np.minimum((total / BIN_MS).astype(int), bins), minlength=bins + 1)
    return {
        "frames": stats.frames,
        "dropped": stats.dropped,
        "capture_to_publish_ms": {"p50": stats.percentile(50), "p99": stats.percentile(99)},
        "total_ms": percentiles(total),
        "handoff_ms": percentiles(np.asarray(handoff)),
        "pipeline_ms": percentiles(np.asarray(work)),
        "by_frame_phase": {  # frame index mod 5: the tracker's full-frame pass and the view classifier
            str(k): {"total_p50": round(float(np.median(total[phase == k])), 2),
                     "handoff_p50": round(float(np.median(np.asarray(handoff)[phase == k])), 2),
                     "pipeline_p50": round(float(np.median(np.asarray(work)[phase == k])), 2)}
            for k in range(5)},
        "gc_pauses": {"count": len(pauses), "full": generations.count(2),
                      "max_ms": round(max(pauses, default=0.0), 2), "total_ms": round(sum(pauses), 2)},
        "histogram": {"bin_ms": BIN_MS, "counts": counts.tolist()},
    }


def plot(result: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.8))
    for k, variant in enumerate(result["variants"]):
        runs = result["runs"][variant]
        counts = np.sum([r["histogram"]["counts"] for r in runs], axis=0)
        edges = np.arange(len(counts) + 1) * BIN_MS
        p50 = np.median([r["total_ms"]["p50"] for r in runs])
        p99 = np.median([r["total_ms"]["p99"] for r in runs])
        ax.stairs(counts, edges, color=f"C{k}", label=f"{variant}: p50 {p50:.1f}, p99 {p99:.1f} ms")
        ax.axvline(p99, color=f"C{k}", ls=":", lw=1)
    ax.axvline(10.0, color="grey", ls="--", lw=1, label="target p99 10 ms")
    ax.set_yscale("log")
    ax.set_xlim(0, 40)
    ax.set_xlabel(f"capture to publish, ms (bins of {BIN_MS} ms; last bin: {MAX_MS:.0f} ms and over)")
    ax.set_ylabel("frames")
    ax.set_title(f"live latency, bundled clip at its frame rate, {result['repeats']} runs each "
                 f"({result['date'][:10]}, load {result['load_average'][0]:.1f})", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def full_collection_ms() -> dict[str, float]:
    """One full garbage collection of this process with a pipeline loaded, as Python leaves it and after
    ``gc.freeze()`` (what :func:`aunets.stream.runner.run_stream` does before the first frame), in ms (best of 3)."""
    pipeline = Pipeline(PipelineConfig())
    out = {"objects": float(len(gc.get_objects()))}
    for state in ("unfrozen", "frozen"):
        if state == "frozen":
            gc.freeze()
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            gc.collect()
            times.append(1000 * (time.perf_counter() - t0))
        out[state] = round(min(times), 3)
    gc.unfreeze()
    del pipeline
    return out


def summarise(result: dict[str, Any]) -> None:
    """``result["median"]``: per variant, the medians over the rounds of each percentile and of each frame phase's
    median total latency."""
    result["median"] = {
        v: {**{part: {q: float(np.median([r[part][q] for r in runs])) for q in ("p50", "p99")}
               for part in ("total_ms", "handoff_ms", "pipeline_ms")},
            "by_frame_phase_total_p50": {k: float(np.median([r["by_frame_phase"][k]["total_p50"] for r in runs]))
                                         for k in runs[0]["by_frame_phase"]}}
        for v, runs in result["runs"].items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=2, help="rounds; each round runs every variant once")
    ap.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    ap.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "live_latency.json")
    args = ap.parse_args()
    result: dict[str, Any] = {**run_record(), "clip": CLIP.name, "repeats": args.repeats,
                              "variants": args.variants, "runs": {v: [] for v in args.variants},
                              "full_gc_ms": full_collection_ms()}
    print(f"one full garbage collection: {result['full_gc_ms']} (ms; objects tracked)")
    for k in range(args.repeats):
        for variant in args.variants:
            r = run_variant(variant)
            result["runs"][variant].append(r)
            t, h, w = r["total_ms"], r["handoff_ms"], r["pipeline_ms"]
            print(f"round {k + 1} {variant:<11} total p50 {t['p50']:5.1f} p99 {t['p99']:5.1f} max {t['max']:5.1f} | "
                  f"hand-off p50 {h['p50']:5.1f} p99 {h['p99']:5.1f} | pipeline p50 {w['p50']:5.1f} "
                  f"p99 {w['p99']:5.1f} ms | gc {r['gc_pauses']['count']} (max {r['gc_pauses']['max_ms']} ms) | "
                  f"dropped {r['dropped']}", flush=True)
    result["load_average_after"] = list(__import__("os").getloadavg())
    summarise(result)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    png = args.json.with_suffix(".png")
    plot(result, png)
    print(f"wrote {args.json} and {png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
