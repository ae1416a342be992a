"""``aunets run SOURCE``: stream AU events over ZeroMQ from a webcam, a video file/URL or an image folder."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from aunets.stream.cli_args import (
    add_csv_style_argument,
    add_pipeline_arguments,
    pipeline_config_from_args,
    positive_int,
)

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", nargs="?", default="0",
                   help="camera index (default 0), video file, URL, or folder of images")
    p.add_argument("--pub", default="tcp://127.0.0.1:5556",
                   help="ZeroMQ PUB endpoint (default tcp://127.0.0.1:5556; another host than loopback publishes "
                        "to the network, unauthenticated, and is warned about)")
    p.add_argument("--pub-hwm", type=positive_int, default=10000, metavar="N",
                   help="messages queued per subscriber before ZeroMQ drops for it (default 10000); a small N "
                        "keeps a slow subscriber near the newest messages (it sees seq gaps instead of lag)")
    p.add_argument("--realtime", action="store_true",
                   help="hand a video file's frames over at their presentation times (as if live); every frame is "
                        "still processed")
    p.add_argument("--live", action="store_true", help="latest-frame policy for any source (drop stale frames)")
    p.add_argument("--wait-subscriber", type=float, default=0.0, metavar="SECONDS",
                   help="wait up to SECONDS for a subscriber before starting, so no early message is lost")
    p.add_argument("--csv", type=Path, default=None, help="also write an OpenFace-compatible CSV")
    add_csv_style_argument(p)
    p.add_argument("--lsl", action="store_true",
                   help="also publish Lab Streaming Layer streams 'AUNets' and 'AUNets-events' (extra [lsl]; "
                        "see docs/events.md)")
    p.add_argument("--osc", default=None, metavar="HOST:PORT",
                   help="also send OSC messages over UDP to HOST:PORT, e.g. 127.0.0.1:9000 (extra [osc]; "
                        "addresses in docs/events.md)")
    p.add_argument("--max-frames", type=positive_int, default=None, help="stop after N frames")
    p.add_argument("--stats-json", type=Path, default=None,
                   help="write the run's summary (fps, latency) as JSON, also when stopped by Ctrl-C or SIGTERM")
    add_pipeline_arguments(p)


def run(args: argparse.Namespace) -> int:
    from aunets.stream.outputs import check_paths, lock_outputs

    # every output is checked, compared with the others and with the source, and claimed before the engine loads
    outputs = [("--csv", args.csv), ("--stats-json", args.stats_json)]
    is_path = not args.source.isdigit() and "://" not in args.source  # not a camera index or a URL
    check_paths(outputs, inputs=[("source", Path(args.source))] if is_path else [])
    with lock_outputs(outputs):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from aunets.stream.capture import CaptureConfig
    from aunets.stream.csv_sink import OpenFaceCsvWriter
    from aunets.stream.messages import to_json
    from aunets.stream.osc_sink import parse_osc_target, require_python_osc
    from aunets.stream.outputs import write_json
    from aunets.stream.pipeline import Pipeline
    from aunets.stream.publish import Sink, ZmqPublisher, check_endpoint
    from aunets.stream.runner import RunStats, run_stream
    from aunets.stream.shutdown import StopSignals
    from aunets.stream.sources import SourceInfo, VideoSource, make_source, probe

    # everything the user typed is checked before the engine loads
    warning = check_endpoint(args.pub)
    if warning:
        print(f"aunets run: WARNING: {warning}", file=sys.stderr)
    osc = parse_osc_target(args.osc) if args.osc else None
    if osc and osc[2]:
        print(f"aunets run: WARNING: {osc[2]}", file=sys.stderr)
    if osc:
        require_python_osc()
    source = make_source(args.source)
    is_file = not (isinstance(source, VideoSource) and (source.is_camera or source.is_url))
    info = probe(args.source) if is_file else None  # a missing or unreadable file fails here
    pipeline_config = pipeline_config_from_args(args)
    capture_config = CaptureConfig(source=args.source, realtime=args.realtime, live=True if args.live else None)
    pipeline = Pipeline(pipeline_config)
    pipeline.frame_rate = info.fps if info and info.fps > 0 else None  # a file: durations in its own frames
    publisher = ZmqPublisher(args.pub, hwm=args.pub_hwm)
    sinks: list[Sink] = [publisher]
    if args.csv:  # files: the video's own time, as `aunets process`; live sources: seconds since the first frame
        sinks.append(OpenFaceCsvWriter(args.csv, pipeline.aus, fps=info.fps if info else None,
                                       intensity=pipeline.engine.has_intensity, style=args.csv_style))
    if osc:
        from aunets.stream.osc_sink import OscSender

        sinks.append(OscSender(osc[0], osc[1], pipeline.aus))
    if args.lsl:
        from aunets.stream.lsl_sink import require_pylsl

        require_pylsl()

    opened: list[SourceInfo] = []
    failed_to_open = False

    def started(source_info: SourceInfo) -> None:
        opened.append(source_info)
        if args.lsl:  # made once the source is open: a camera's frame rate is only known then
            from aunets.stream.lsl_sink import LslOutlet

            rate = source_info.fps if pipeline_config.tracker.max_faces == 1 else 0.0  # N faces: N samples a frame
            sinks.append(LslOutlet(pipeline.aus, rate=rate, source=args.source,
                                   intensity=pipeline.engine.has_intensity))  # fmt: skip
        print(f"aunets run: publishing au.frame, au.event, au.status on {publisher.last_endpoint} "
              f"(engine {pipeline.engine.manifest.name}, median window {pipeline.window}, "
              f"look-ahead {pipeline.latency_frames} frames); Ctrl-C to stop", file=sys.stderr)

    stats = RunStats()
    with StopSignals() as stop:
        try:
            if (args.wait_subscriber > 0 and not publisher.wait_for_subscriber(args.wait_subscriber, stop.event)
                    and not stop.event.is_set()):
                print(f"aunets run: no subscriber after {args.wait_subscriber} s, starting anyway", file=sys.stderr)
            if not stop.event.is_set():
                run_stream(capture_config, pipeline, sinks, max_frames=args.max_frames, stop=stop.event,
                           stats=stats, on_start=started)
        except BaseException:
            failed_to_open = not opened  # then the one-line error alone: no all-zero summary before it
            raise
        finally:  # every stop: end of source, signal, error
            try:
                for sink in sinks:
                    sink.close()
            finally:
                summary = stats.summary()
                if pipeline.latency_frames:
                    summary["lookahead_frames"] = pipeline.latency_frames
                if stop.signum is not None:
                    summary["stopped_by"] = stop.name
                if args.stats_json and not failed_to_open:
                    write_json(args.stats_json, to_json(summary, indent=2), "--stats-json")
                if not failed_to_open:
                    print(to_json(summary), flush=True)
    if stop.signum is not None:
        print(f"aunets run: stopped by {stop.name} after {stats.frames} frames", file=sys.stderr)
    return 0
