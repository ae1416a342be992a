"""``aunets batch`` throughput: frames/s over a corpus of copies of the bundled clip, with the default engine.

Configurations (each on the same corpus, into a fresh output folder, wall time including worker start-up and
engine loading): 1 local worker with a single-threaded engine; 1 worker with a 2-threaded engine (fewer,
multi-threaded workers); one worker per core with single-threaded engines (the default); and a Dask
``LocalCluster`` with one single-threaded worker process per core, bound to 127.0.0.1. The cluster's overhead
is its time against the local workers' time for the same worker count. Writes
``benchmarks/results/batch.json``. The machine may be shared: compare the figures of one run as ratios.

    python benchmarks/batch.py [--copies 20] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from aunets.stream.batch import BatchBackend, BatchConfig, engine_identity, run_batch  # noqa: E402
from aunets.stream.batch_local import LocalBackend, default_workers  # noqa: E402
from aunets.stream.corpus import plan_jobs  # noqa: E402
from aunets.stream.pipeline import PipelineConfig  # noqa: E402

CLIP = REPO / "media" / "pexels_wolfganglanger_expressions.mp4"


def measure(name: str, corpus: Path, out: Path, backend: BatchBackend, threads: int) -> dict[str, Any]:
    pipeline = PipelineConfig(threads=threads)
    config = BatchConfig(pipeline=pipeline, engine_id=engine_identity(pipeline))
    jobs = plan_jobs([corpus], out)
    t0 = time.perf_counter()
    summary = run_batch(jobs, config, backend, out / "index.csv", show_progress=False)
    wall = time.perf_counter() - t0
    if summary.done != len(jobs):
        raise SystemExit(f"{name}: only {summary.done} of {len(jobs)} videos done: see {out / 'index.csv'}")
    row = {"name": name, "workers": backend.workers, "engine_threads": threads, "videos": len(jobs),
           "frames": summary.frames, "seconds": round(wall, 2), "frames_per_s": round(summary.frames / wall, 1),
           "load_average_1min_after": round(os.getloadavg()[0], 2)}
    print(json.dumps(row), flush=True)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=20, help="copies of the bundled clip in the corpus")
    parser.add_argument("--json", type=Path, default=Path(__file__).with_name("results") / "batch.json")
    args = parser.parse_args()
    cores = default_workers()
    load_at_start = round(os.getloadavg()[0], 2)
    with tempfile.TemporaryDirectory(prefix="aunets-batch-bench-") as tmp:
        corpus = Path(tmp) / "corpus"
        corpus.mkdir()
        for i in range(args.copies):  # real copies (not links): the corpus de-duplicates resolved paths
            shutil.copyfile(CLIP, corpus / f"clip{i:02d}.mp4")
        rows = [
            measure("local, 1 worker x 1 thread", corpus, Path(tmp) / "a", LocalBackend(1), 1),
            measure(f"local, 1 worker x {cores} threads", corpus, Path(tmp) / "b", LocalBackend(1), cores),
            measure(f"local, {cores} workers x 1 thread", corpus, Path(tmp) / "c", LocalBackend(cores), 1),
        ]
        from distributed import LocalCluster

        from aunets.stream.batch_dask import DaskBackend

        t0 = time.perf_counter()
        with LocalCluster(n_workers=cores, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address="127.0.0.1:0") as cluster:
            cluster_start = time.perf_counter() - t0
            backend = DaskBackend(cluster.scheduler_address)
            try:
                rows.append(measure(f"Dask LocalCluster on 127.0.0.1, {cores} workers x 1 thread", corpus,
                                    Path(tmp) / "d", backend, 1))
            finally:
                backend.close()
    single, local, dask = rows[0], rows[2], rows[3]
    result = {
        "benchmark": "batch",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "clip": CLIP.name,
        "copies": args.copies,
        "cpu_count": cores,
        "machine": platform.processor() or platform.machine(),
        "load_average_1min_at_start": load_at_start,
        "rows": rows,
        "speedup_all_cores_vs_1_worker": round(local["frames_per_s"] / single["frames_per_s"], 2),
        "speedup_1_worker_multithreaded_vs_1_thread": round(rows[1]["frames_per_s"] / single["frames_per_s"], 2),
        "one_per_core_vs_1_multithreaded_worker": round(local["frames_per_s"] / rows[1]["frames_per_s"], 2),
        "dask_vs_local_same_workers": round(dask["frames_per_s"] / local["frames_per_s"], 2),
        "dask_overhead_seconds": round(dask["seconds"] - local["seconds"], 2),
        "dask_cluster_start_seconds": round(cluster_start, 2),
        "note": "one run on a shared machine (other engineers' jobs and a training job were running): compare the "
                "rows of one run as ratios; wall time includes starting the workers and loading the engine",
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=2))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
