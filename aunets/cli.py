"""The ``aunets`` command. Thin: each subcommand lives in its own module.

A subcommand module defines ``add_arguments(parser)`` and ``run(args) -> int`` and imports only the
standard library at module level (heavy imports such as torch go inside ``run``), so ``aunets --help``
stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
from collections.abc import Sequence

from aunets.core.errors import AunetsError

log = logging.getLogger("aunets")

# subcommand -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "run": ("aunets.stream.run_cli", "stream AU events from a webcam, video file/URL or image folder over ZeroMQ"),
    "process": ("aunets.stream.process_cli",
                "process a video file offline into an OpenFace-compatible CSV (and a plot)"),
    "batch": ("aunets.stream.batch_cli", "process a corpus of videos (files, folders, CSV manifest) into one CSV each, "
                                         "resumable, on all cores or a Dask cluster"),
    "listen": ("aunets.stream.listen", "subscribe to a running `aunets run` and print or record its events"),
    "synth": ("aunets.models.synth.cli", "render synthetic multi-view face videos with exact AU/view/pose labels"),
    "synth-photo": ("aunets.models.synth.photo_cli",
                    "photo-real AU videos from real neutral photos (exact AU/view labels)"),
    "realfaces": ("aunets.models.realfaces_cli",
                  "write the real-face training set (photos, talking clips) as a CSV manifest"),
    "train": ("aunets.models.train_cli", "train AU detectors / view classifier from a config file"),
    "eval": ("aunets.models.eval_cli", "evaluate an engine on a dataset (F1 per AU/view, median variants)"),
    "build-engine": ("aunets.models.build", "export trained models to an engine bundle (ONNX + manifest)"),
    "quantize": ("aunets.models.quantize", "an int8 copy of an engine bundle (ONNX Runtime static quantisation)"),
    "explain": ("aunets.stream.explain_cli",
                "where each AU detector looks: occlusion maps (or Grad-CAM) over the face crop"),
    "serve": ("aunets.stream.webrtc.cli", "live browser demo over WebRTC (needs the [webrtc] extra)"),
    "multi": ("aunets.stream.multi_cli", "several videos or cameras through one shared GPU engine, one CSV each"),
    "cache": ("aunets.stream.cache_cli", "show (or --clear) the cache of compiled GPU-path kernels kept between runs"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s module is imported (none for the top-level help), so one broken or
    missing optional subcommand never takes the others down."""
    from aunets import __version__

    parser = argparse.ArgumentParser(prog="aunets", description="AUNets Live: facial Action Units from live video.")
    parser.add_argument("--version", action="version", version=f"aunets {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    # -v also after the subcommand (`aunets run 0 -v`); SUPPRESS keeps the top-level count when it is not given
    verbose = argparse.ArgumentParser(add_help=False)
    verbose.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                         help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text, parents=[verbose])
        if name != command:
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not module_name.startswith(exc.name):
                raise
            sp.set_defaults(_missing=f"{module_name} is not part of this installation")
            continue
        module.add_arguments(sp)
        sp.set_defaults(_module=module_name)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in SUBCOMMANDS else None)
    args = parser.parse_args(argv)
    level = logging.WARNING if args.verbose == 0 else logging.INFO if args.verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if getattr(args, "_missing", None):
        print(f"aunets {args.command}: not available: {args._missing}", file=sys.stderr)
        return 2
    module = importlib.import_module(args._module)
    try:
        return int(module.run(args))
    except AunetsError as exc:
        print(f"aunets {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"aunets {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of stdout left (`| head`): end quietly, as a Unix filter does
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that the flush at exit does not fail again
        return 128 + signal.SIGPIPE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
