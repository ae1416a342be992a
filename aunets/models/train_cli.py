"""``aunets train CONFIG``: train AU detectors (+ domain adaptation, view classifier); resumes when re-run."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", type=Path, help="training config (TOML), e.g. configs/default.toml")
    parser.add_argument("--out", type=Path, default=None, help="run directory (default runs/<config name>)")
    parser.add_argument("--data", default=None, help="override data.path")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None, help="override the config's device")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: the config's, 2)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set optim.epochs=3 (value parsed as TOML)")
    parser.add_argument("--engine-out", type=Path, default=None,
                        help="also build the engine bundle here when training ends (aunets build-engine)")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="pause (checkpointed) after this many minutes; re-run the command to resume")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def parse_overrides(items: list[str]) -> dict[str, object]:
    import tomllib

    from aunets.core.errors import ConfigError

    out: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set needs KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = value
    return out


def run(args: argparse.Namespace) -> int:
    from aunets.models.train import Trainer
    from aunets.models.train_config import load_config

    overrides = parse_overrides(args.set)
    if args.data:
        overrides["data.path"] = args.data
    if args.device:
        overrides["device"] = args.device
    if args.threads:
        overrides["threads"] = args.threads
    config = load_config(args.config, overrides)
    out = args.out or Path("runs") / args.config.stem
    final = Trainer(config, out, progress=not args.no_progress, max_minutes=args.max_minutes).run()
    print(f"training finished: {final} (curves: {out / 'curves.png'}, tuning: {out / 'tuning.json'})")
    if args.engine_out:
        from aunets.models.build import build_engine

        bundle = build_engine(out, args.engine_out, force=True)
        print(f"engine bundle: {bundle}")
    return 0
