"""``aunets synth``: render a synthetic multi-view AU data set, or a preview contact sheet.

Imports only the standard library at module level; the generator is imported inside :func:`run`.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def _frame_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad frame size {text!r}; use WIDTHxHEIGHT, e.g. 640x480") from None
    return w, h


def add_render_arguments(parser: argparse.ArgumentParser, video: bool) -> None:
    """What both generators (``synth``, ``synth-photo``) render and write: crop size, frame size, crops, full
    frames, videos (on by default when ``video``) and head-pose jitter."""
    parser.add_argument("--size", type=int, default=224, help="face crop side in pixels (default 224)")
    parser.add_argument("--frame-size", type=_frame_size, default=(640, 480), help="full frame WxH (default 640x480)")
    parser.add_argument("--crops", action=argparse.BooleanOptionalAction, default=True, help="write face crops")
    parser.add_argument("--full", action=argparse.BooleanOptionalAction, default=True, help="write full frames")
    parser.add_argument("--video", action=argparse.BooleanOptionalAction, default=video, help="write mp4 videos")
    parser.add_argument("--jitter", action=argparse.BooleanOptionalAction, default=True, help="head-pose jitter")


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """How both generators run: worker processes and the progress bar."""
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (default: all CPUs)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, help="output directory of the data set")
    parser.add_argument("--preview", type=Path, metavar="PNG", help="write an AU contact sheet PNG instead")
    parser.add_argument("--subjects", type=int, default=10, help="number of subjects (default 10)")
    parser.add_argument("--views", type=int, default=9, help="views per subject: 9 = all, 1 = frontal (default 9)")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds per sequence at 25 fps (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed -> same data set)")
    parser.add_argument("--sequences-per-view", type=int, default=1, help="sequences per subject and view")
    add_render_arguments(parser, video=True)
    parser.add_argument("--val-fraction", type=float, default=0.15, help="fraction of subjects for validation")
    parser.add_argument("--test-fraction", type=float, default=0.15, help="fraction of subjects for test")
    parser.add_argument(
        "--script",
        default="",
        help="fixed AU episodes instead of random ones, e.g. '12:1.0-2.5' (AU12 at apex 1.0-2.5 s; "
        "comma-separated, optional @intensity); disables blinks and talking",
    )
    parser.add_argument("--isolated-fraction", type=float, default=0.0,
                        help="share of sequences with one AU at a time, no co-occurrence (default 0)")
    parser.add_argument("--supersample", type=int, default=1, help="render the crop at this factor (slower)")
    add_run_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from aunets.core.errors import ConfigError

    if args.preview:
        from aunets.models.synth.preview import make_preview

        path = make_preview(args.preview, seed=args.seed)
        print(f"wrote {path}")
        if not args.out:
            return 0
    if not args.out:
        raise ConfigError("give --out DIR (data set) or --preview PNG")
    from aunets.models.synth.dataset import SynthConfig, generate

    config = SynthConfig(
        subjects=args.subjects, views=args.views, seconds=args.seconds, seed=args.seed,
        sequences_per_view=args.sequences_per_view, size=args.size, frame_size=args.frame_size, crops=args.crops,
        full=args.full, video=args.video, val_fraction=args.val_fraction, test_fraction=args.test_fraction,
        script=args.script, jitter=args.jitter, isolated_fraction=args.isolated_fraction, supersample=args.supersample,
        workers=args.workers,
    )  # fmt: skip
    out = generate(config, args.out, progress=not args.no_progress)
    print(f"wrote {out}")
    return 0
