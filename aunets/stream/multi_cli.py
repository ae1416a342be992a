"""``aunets multi SRC [SRC ...] --out DIR``: several videos or cameras through one shared engine on the frame path.

Each source gets its own capture process (decoding, face tracking) and its own pipeline (views, medians,
events), writing ``DIR/<n>_<name>.csv``; one :class:`~aunets.stream.stream_batcher.StreamBatcher` runs the
faces of all streams together (one flow call, one detector call per batch). Prints a JSON summary per stream
and the batch sizes.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from aunets.stream.cli_args import add_pipeline_arguments, pipeline_config_from_args, positive_int


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("sources", nargs="+", help="video files, image folders, URLs or camera indices (one stream each)")
    p.add_argument("--out", type=Path, required=True, help="folder for one OpenFace-compatible CSV per stream")
    p.add_argument("--max-frames", type=positive_int, default=None, help="stop each stream after N frames")
    p.add_argument("--max-wait-ms", type=float, default=5.0,
                   help="how long a batch waits for the other streams' frames (bounds the added latency)")
    add_pipeline_arguments(p)


def _name(index: int, source: str) -> str:
    stem = Path(source).stem if not source.isdigit() else f"camera{source}"
    return f"{index}_{re.sub(r'[^A-Za-z0-9_.-]+', '_', stem) or 'stream'}"


def run(args: argparse.Namespace) -> int:
    import threading
    from dataclasses import replace

    from aunets.core.errors import ConfigError
    from aunets.engines.engine import load_engine
    from aunets.stream.capture import CaptureConfig
    from aunets.stream.csv_sink import OpenFaceCsvWriter
    from aunets.stream.frame_path_start import open_frame_path
    from aunets.stream.messages import to_json
    from aunets.stream.outputs import check_output
    from aunets.stream.pipeline import Pipeline
    from aunets.stream.runner import RunStats, run_stream, save_config
    from aunets.stream.stream_batcher import StreamBatcher

    config = pipeline_config_from_args(args)
    if config.device == "cpu":
        raise ConfigError("aunets multi shares one frame-path engine: use --device cuda (or torch-cpu)")
    names = [_name(i, s) for i, s in enumerate(args.sources)]
    csvs = [args.out / f"{n}.csv" for n in names]
    for path in csvs:
        check_output(path, "--out")
    engine = load_engine(config.engine, config.runtime, config.threads, detectors=False)  # the view classifier
    base = open_frame_path(engine.path, config.device, config.margin, config.threads, config.flow)
    batcher = StreamBatcher(base, max_wait_s=args.max_wait_ms / 1000.0)
    stats = [RunStats() for _ in args.sources]
    errors: list[BaseException | None] = [None] * len(args.sources)
    writers = []

    def stream(i: int, pipeline: Pipeline, writer: OpenFaceCsvWriter, capture: CaptureConfig) -> None:
        try:
            run_stream(capture, pipeline, [writer], max_frames=args.max_frames, stats=stats[i])
        except BaseException as exc:  # reported after every stream has ended
            errors[i] = exc
        finally:
            batcher.leave(i)
            writer.close()

    threads = []
    try:
        for i, source in enumerate(args.sources):
            # the frame path is the shared one: the pipeline itself loads no detectors
            pipeline = Pipeline(replace(config, device="cpu"), engine=engine)
            pipeline.gpu = batcher.client()  # type: ignore[assignment]  # the subset of GpuFramePath it calls
            if i == 0:  # the shared path's import and load, counted once
                pipeline.startup.update(base.startup)
            capture = CaptureConfig(source=source, realtime=False, live=False)
            save_config(csvs[i].with_suffix(".csv.config.json"), capture, config,
                        {"engine_manifest": engine.manifest.name, "stream": i, "streams": len(args.sources)})
            writer = OpenFaceCsvWriter(csvs[i], pipeline.aus, intensity=engine.has_intensity)
            writers.append(writer)
            threads.append(threading.Thread(target=stream, args=(i, pipeline, writer, capture), name=f"stream-{i}"))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        batcher.close()
    for err in errors:
        if err is not None:
            raise err
    sizes = batcher.batches
    summary = {"streams": [{"source": s, "csv": str(c), "rows": w.rows, **st.summary()}
                           for s, c, w, st in zip(args.sources, csvs, writers, stats, strict=True)],
               "batches": len(sizes), "streams_per_batch_mean": round(sum(sizes) / max(1, len(sizes)), 3),
               "streams_per_batch_max": max(sizes, default=0)}
    print(to_json(summary))
    return 0
