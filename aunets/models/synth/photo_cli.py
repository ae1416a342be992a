"""``aunets synth-photo``: a photo-real AU data set from real neutral photos, or its preview contact sheet.

Imports only the standard library at module level; the generator is imported inside :func:`run`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from aunets.models.synth.cli import add_render_arguments, add_run_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--photos", type=Path, default=None,
                        help="the real-face collection (default ../shared/realfaces); only its train people are used")
    parser.add_argument("--out", type=Path, help="output directory of the data set")
    parser.add_argument("--preview", type=Path, metavar="IMAGE", help="write an AU contact sheet (PNG/JPEG)")
    parser.add_argument("--sets", default="london,canada",
                        help="photo sets to use: london, canada, interfaces (default london,canada)")
    parser.add_argument("--flips", action="store_true", help="each person also mirrored (same person and split)")
    parser.add_argument("--people", type=int, default=0, help="number of people (default 0 = all train people)")
    parser.add_argument("--sequences", type=int, default=6, help="sequences per person (default 6)")
    parser.add_argument("--seconds", type=float, default=4.0, help="seconds per sequence at 25 fps (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed -> same data set)")
    add_render_arguments(parser, video=False)
    parser.add_argument("--val-fraction", type=float, default=0.15, help="fraction of people for validation")
    parser.add_argument("--single-fraction", type=float, default=0.5, help="share of single-AU events (default 0.5)")
    parser.add_argument("--max-events", type=int, default=2, help="AU events per sequence, at most (default 2)")
    parser.add_argument("--max-yaw", type=float, default=22.0, help="head-turn range, degrees (default 22)")
    parser.add_argument("--max-pitch", type=float, default=14.0, help="head-nod range, degrees (default 14)")
    parser.add_argument("--script", default="",
                        help="fixed AU episodes instead of random ones, e.g. '12:1.0-2.5' (see `aunets synth`)")
    add_run_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from aunets.core.errors import ConfigError
    from aunets.models.data.realfaces import default_root

    photos = str(args.photos or default_root())
    if args.preview:
        from aunets.models.synth.photopreview import make_photo_preview

        print(f"wrote {make_photo_preview(args.preview, photos, seed=args.seed)}")
        if not args.out:
            return 0
    if not args.out:
        raise ConfigError("give --out DIR (data set) or --preview IMAGE")
    from aunets.models.synth.photoreal import PhotoSynthConfig, generate

    config = PhotoSynthConfig(
        photos=photos, sets=tuple(s.strip() for s in args.sets.split(",") if s.strip()), people=args.people,
        sequences=args.sequences, seconds=args.seconds, seed=args.seed, size=args.size, frame_size=args.frame_size,
        crops=args.crops, full=args.full, video=args.video, val_fraction=args.val_fraction,
        single_fraction=args.single_fraction, max_events=args.max_events, max_yaw=args.max_yaw,
        max_pitch=args.max_pitch, script=args.script, flips=args.flips,
        jitter=args.jitter, workers=args.workers,
    )  # fmt: skip
    print(f"wrote {generate(config, args.out, progress=not args.no_progress)}")
    return 0
