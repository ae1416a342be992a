"""``aunets cache [--clear]``: show (or empty) the folder of compiled GPU-path artefacts kept between runs."""

from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--clear", action="store_true", help="delete the cached compiled artefacts")


def run(args: argparse.Namespace) -> int:
    from aunets.core.compile_cache import clear, usage

    held = clear() if args.clear else usage()
    print(json.dumps({"path": str(held.path), "files": held.files, "bytes": held.bytes,
                      "cleared": bool(args.clear)}))
    return 0
