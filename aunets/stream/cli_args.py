"""Command-line options shared by ``aunets run``, ``process`` and ``serve`` (standard library only at import)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from aunets.stream.event_config import EventConfig

if TYPE_CHECKING:
    from aunets.stream.pipeline import PipelineConfig


EVENT_DEFAULTS = EventConfig()


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (0 and negative values are refused, never read as a default)."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def non_negative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def odd_positive_int(text: str) -> int:
    value = positive_int(text)
    if value % 2 == 0:
        raise argparse.ArgumentTypeError(f"must be odd (1, 3, 5, ...), got {value}")
    return value


def port(text: str) -> int:
    value = _int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0..65535 (0 picks a free port), got {value}")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def add_pipeline_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("pipeline")
    g.add_argument("--engine", type=Path, default=None, help="engine bundle directory (default: the embedded engine)")
    g.add_argument("--runtime", default="onnx", help="engine runtime: onnx (CPU default), torch, cuda, trt")
    g.add_argument("--device", choices=("cpu", "cuda", "torch-cpu"), default="cpu",
                   help="cuda: GPU frame path (flow + engine on the GPU; needs torch with CUDA); torch-cpu: that "
                        "path on torch's CPU device")
    g.add_argument("--flow", default=None, help="flow backend (default: the engine's, e.g. dis); also farneback")
    g.add_argument("--median-window", type=odd_positive_int, default=None,
                   help="odd median window in frames (default: engine's)")
    g.add_argument("--lookahead", type=non_negative_int, default=0,
                   help="median look-ahead in frames: 0 = causal (default); (window-1)/2 = centred, adds latency")
    g.add_argument("--max-faces", type=positive_int, default=1,
                   help="faces tracked, largest first; one stream per track id")
    g.add_argument("--detect-every", type=positive_int, default=5,
                   help="look for new faces in the whole frame every N frames (default 5); tracks are re-detected "
                        "in a small region every frame")
    g.add_argument("--calibration", choices=("on", "off"), default="on",
                   help="on (default): re-base each face's probabilities against its own online neutral baseline "
                        "before the median and thresholds (aunets.stream.calibration); off: the engine's as they are")
    e = p.add_argument_group("AU states and events (see docs/events.md)")
    e.add_argument("--on-delta", type=float, default=None, metavar="P",
                   help=f"an AU turns on at its threshold + P (default {EVENT_DEFAULTS.on_delta})")
    e.add_argument("--off-delta", type=float, default=None, metavar="P",
                   help=f"an AU turns off below its threshold - P (default {EVENT_DEFAULTS.off_delta})")
    e.add_argument("--min-on", type=float, default=None, metavar="SECONDS",
                   help=f"on only after SECONDS above (default {EVENT_DEFAULTS.min_on_s}); delays onsets as much")
    e.add_argument("--min-off", type=float, default=None, metavar="SECONDS",
                   help=f"off only after SECONDS below (default {EVENT_DEFAULTS.min_off_s}); the shortest episode")
    g.add_argument("--threads", type=positive_int, default=2,
                   help="engine threads (default 2: decoding in the capture process leaves most of a core free)")


def add_csv_style_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--csv-style", choices=("openface", "compact"), default="openface",
                   help="openface (default): OpenFace 2.2 FeatureExtraction's header, ', ' separators and column "
                        "order (AUxx_r, AUxx_c, then our AUxx_p); compact: plain ',' CSV, AUxx_c, AUxx_p, AUxx_r")


def pipeline_config_from_args(args: argparse.Namespace) -> PipelineConfig:
    from aunets.stream.calibration import CalibrationConfig
    from aunets.stream.pipeline import PipelineConfig
    from aunets.stream.tracking import TrackerConfig

    return PipelineConfig(
        device=args.device,
        engine=args.engine,
        runtime=args.runtime,
        flow=args.flow,
        median_window=args.median_window,
        lookahead=args.lookahead,
        tracker=TrackerConfig(detect_every=args.detect_every, max_faces=args.max_faces),
        threads=args.threads,
        calibration=CalibrationConfig(enabled=args.calibration == "on"),
        events=EventConfig(
            on_delta=EVENT_DEFAULTS.on_delta if args.on_delta is None else args.on_delta,
            off_delta=EVENT_DEFAULTS.off_delta if args.off_delta is None else args.off_delta,
            min_on_s=EVENT_DEFAULTS.min_on_s if args.min_on is None else args.min_on,
            min_off_s=EVENT_DEFAULTS.min_off_s if args.min_off is None else args.min_off,
        ),
    )
