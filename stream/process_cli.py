"""``aunets process VIDEO --csv out.csv [--plot out.png]``: offline, every frame, as fast as possible."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from stream.cli_args import add_pipeline_arguments, pipeline_config_from_args


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("video", help="video file (or a folder of images)")
    p.add_argument("--csv", type=Path, required=True, help="OpenFace-compatible CSV to write")
    p.add_argument("--plot", type=Path, default=None, help="PNG of AU probabilities over time")
    p.add_argument("--max-frames", type=int, default=None, help="stop after N frames")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_pipeline_arguments(p)


def run(args: argparse.Namespace) -> int:
    from stream.capture import CaptureConfig, probe
    from stream.csv_sink import OpenFaceCsvWriter
    from stream.errors import SourceError
    from stream.pipeline import Pipeline
    from stream.runner import RunStats, run_stream, save_config

    pipeline_config = pipeline_config_from_args(args)
    capture_config = CaptureConfig(source=args.video, realtime=False, live=False)
    info = probe(args.video)  # a missing or unreadable file fails here, before the engine loads
    pipeline = Pipeline(pipeline_config)
    writer = OpenFaceCsvWriter(args.csv, pipeline.aus, fps=info.fps, intensity=pipeline.engine.has_intensity)
    failure: SourceError | None = None
    stats = RunStats()
    try:
        stats = run_stream(capture_config, pipeline, [writer], max_frames=args.max_frames,
                           progress=not args.no_progress)
    except SourceError as exc:
        failure = exc
    finally:
        writer.close()
    save_config(args.csv.with_suffix(args.csv.suffix + ".config.json"), capture_config, pipeline_config,
                {"engine_manifest": pipeline.engine.manifest.name, "stats": stats.summary()})
    if failure is not None:
        print(f"aunets process: {writer.rows} rows written to {args.csv} before the error", file=sys.stderr)
        raise failure
    if args.plot:
        from stream.plot import plot_au_csv

        plot_au_csv(args.csv, args.plot)
    summary = stats.summary()
    print(json.dumps({"csv": str(args.csv), "rows": writer.rows, **summary}, indent=None))
    return 0
