"""``aunets realfaces``: write the real-face training set (train people of ``../shared/realfaces``) as a CSV
manifest that ``aunets train`` reads (``data.extra``). See :func:`aunets.models.data.realfaces.write_training_set`."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="output folder (manifest.csv, frames/, JSON)")
    parser.add_argument("--root", type=Path, default=None,
                        help="the real-face collection (default: ../shared/realfaces beside the checkout)")
    parser.add_argument("--no-teacher", action="store_true",
                        help="no MediaPipe pseudo-labels (the teacher needs the [teacher] extra)")
    parser.add_argument("--interfaces", action="store_true",
                        help="add the inter-faces train people (neutral: all AUs off; smiles: AU12 on)")
    parser.add_argument("--cross-talk", action="store_true",
                        help="label a smile's brows (and chin/lips where the teacher is trusted) off where the "
                             "teacher sees them at rest against the same person's neutral photo ([teacher] extra)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from aunets.models.data.realfaces import write_training_set

    path = write_training_set(args.out, args.root, teacher=not args.no_teacher, progress=not args.no_progress,
                              interfaces=args.interfaces, cross_talk=args.cross_talk)
    print(f"wrote {path}")
    return 0
