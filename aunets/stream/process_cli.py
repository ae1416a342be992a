"""``aunets process VIDEO --csv out.csv [--plot out.png]``: offline, every frame, as fast as possible."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from aunets.stream.cli_args import (
    add_csv_style_argument,
    add_pipeline_arguments,
    pipeline_config_from_args,
    positive_int,
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("video", help="video file (or a folder of images)")
    p.add_argument("--csv", type=Path, required=True, help="OpenFace-compatible CSV to write")
    add_csv_style_argument(p)
    p.add_argument("--plot", type=Path, default=None, help="PNG of AU probabilities over time")
    p.add_argument("--max-frames", type=positive_int, default=None, help="stop after N frames")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_pipeline_arguments(p)


def run(args: argparse.Namespace) -> int:
    from aunets.stream.outputs import PLOT_SUFFIXES, check_output, check_paths, lock_outputs

    # every output is checked, compared with the others and with the input, and claimed before the engine loads
    config_path = args.csv.with_suffix(args.csv.suffix + ".config.json")
    outputs = [("--csv", args.csv), ("--csv (its .config.json)", config_path), ("--plot", args.plot)]
    check_output(args.plot, "--plot", PLOT_SUFFIXES)
    check_paths(outputs, inputs=[("input video", Path(args.video))])
    with lock_outputs(outputs):
        return _process(args, config_path)


def _process(args: argparse.Namespace, config_path: Path) -> int:
    from aunets.core.errors import SourceError
    from aunets.stream.capture import CaptureConfig
    from aunets.stream.csv_sink import OpenFaceCsvWriter
    from aunets.stream.messages import to_json
    from aunets.stream.pipeline import Pipeline
    from aunets.stream.runner import RunStats, run_stream, save_config
    from aunets.stream.shutdown import StopSignals
    from aunets.stream.sources import probe

    pipeline_config = pipeline_config_from_args(args)
    capture_config = CaptureConfig(source=args.video, realtime=False, live=False)
    info = probe(args.video)  # a missing or unreadable file fails here, before the engine loads
    pipeline = Pipeline(pipeline_config)
    pipeline.frame_rate = info.fps if info.fps > 0 else None  # the events' durations in the video's own frames
    # written first, so an earlier run's config never sits beside this run's CSV, even after SIGKILL
    save_config(config_path, capture_config, pipeline_config,
                {"engine_manifest": pipeline.engine.manifest.name, "complete": False, "stats": None})
    writer = OpenFaceCsvWriter(args.csv, pipeline.aus, fps=info.fps, intensity=pipeline.engine.has_intensity,
                               style=args.csv_style)
    failure: SourceError | None = None
    stats = RunStats()
    ended = False  # run_stream returned: the source ended, --max-frames, or a stop signal
    with StopSignals() as stop:
        try:
            run_stream(capture_config, pipeline, [writer], max_frames=args.max_frames,
                       progress=not args.no_progress, stop=stop.event, stats=stats)
            ended = True
        except SourceError as exc:
            failure = exc
        finally:
            try:
                writer.close()
            finally:
                extra = {"engine_manifest": pipeline.engine.manifest.name, "stats": stats.summary(),
                         "complete": ended and stop.signum is None,
                         "stopped_by": stop.name or None}  # fmt: skip
                save_config(config_path, capture_config, pipeline_config, extra)
    if failure is not None:
        print(f"aunets process: {writer.rows} rows written to {args.csv} before the error", file=sys.stderr)
        raise failure
    summary = {"csv": str(args.csv), "rows": writer.rows, **stats.summary()}
    if stop.signum is not None:
        print(to_json({**summary, "stopped_by": stop.name}))
        print(f"aunets process: stopped by {stop.name} after {stats.frames} of {info.frame_count} frames; the "
              f"{writer.rows} rows are in {args.csv}", file=sys.stderr)
        return 128 + stop.signum
    if args.plot:
        from aunets.stream.plot import plot_au_csv

        plot_au_csv(args.csv, args.plot, thresholds=dict(zip(pipeline.aus, map(float, pipeline.thresholds),
                                                              strict=True)))
    print(to_json(summary))
    return 0
