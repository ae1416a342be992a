"""``aunets run SOURCE``: stream AU events over ZeroMQ from a webcam, a video file/URL or an image folder."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from pathlib import Path
from types import FrameType

from stream.cli_args import add_pipeline_arguments, pipeline_config_from_args

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", nargs="?", default="0",
                   help="camera index (default 0), video file, URL, or folder of images")
    p.add_argument("--pub", default="tcp://127.0.0.1:5556", help="ZeroMQ PUB endpoint (default tcp://127.0.0.1:5556)")
    p.add_argument("--realtime", action="store_true",
                   help="pace a video file to its frame rate (as if live); every frame is still processed")
    p.add_argument("--live", action="store_true", help="latest-frame policy for any source (drop stale frames)")
    p.add_argument("--wait-subscriber", type=float, default=0.0, metavar="SECONDS",
                   help="wait up to SECONDS for a subscriber before starting, so no early message is lost")
    p.add_argument("--csv", type=Path, default=None, help="also write an OpenFace-compatible CSV")
    p.add_argument("--lsl", action="store_true",
                   help="also publish Lab Streaming Layer streams 'AUNets' and 'AUNets-events' (extra [lsl])")
    p.add_argument("--max-frames", type=int, default=None, help="stop after N frames")
    p.add_argument("--stats-json", type=Path, default=None, help="write the run's summary (fps, latency) as JSON")
    add_pipeline_arguments(p)


def run(args: argparse.Namespace) -> int:
    from stream.capture import CaptureConfig
    from stream.csv_sink import OpenFaceCsvWriter
    from stream.pipeline import Pipeline
    from stream.publish import Sink, ZmqPublisher
    from stream.runner import run_stream

    pipeline_config = pipeline_config_from_args(args)
    capture_config = CaptureConfig(source=args.source, realtime=args.realtime, live=True if args.live else None)
    pipeline = Pipeline(pipeline_config)
    publisher = ZmqPublisher(args.pub)
    sinks: list[Sink] = [publisher]
    if args.csv:
        sinks.append(OpenFaceCsvWriter(args.csv, pipeline.aus, intensity=pipeline.engine.has_intensity))
    if args.lsl:
        from stream.lsl_sink import LslOutlet

        sinks.append(LslOutlet(pipeline.aus))
    print(f"aunets run: publishing au.frame, au.event, au.status on {publisher.last_endpoint} "
          f"(engine {pipeline.engine.manifest.name}, median window {pipeline.window}, "
          f"look-ahead {pipeline.latency_frames} frames); Ctrl-C to stop", file=sys.stderr)
    if args.wait_subscriber > 0 and not publisher.wait_for_subscriber(args.wait_subscriber):
        print(f"aunets run: no subscriber after {args.wait_subscriber} s, starting anyway", file=sys.stderr)

    def _stop(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    try:
        stats = run_stream(capture_config, pipeline, sinks, max_frames=args.max_frames)
    except KeyboardInterrupt:
        print("aunets run: stopped", file=sys.stderr)
        return 0
    finally:
        for sink in sinks:
            sink.close()
    summary = stats.summary()
    if pipeline.latency_frames:
        summary["lookahead_frames"] = pipeline.latency_frames
    if args.stats_json:
        args.stats_json.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(summary))
    return 0
