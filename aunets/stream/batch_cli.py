"""``aunets batch INPUTS... --out DIR``: a corpus of videos into one OpenFace-compatible CSV each, resumable."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from types import FrameType

from aunets.stream.cli_args import add_csv_style_argument, add_pipeline_arguments, pipeline_config_from_args


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="video files, folders (searched for videos) or CSV manifests (columns path[,subject,session])")
    p.add_argument("--out", type=Path, required=True,
                   help="output folder: one CSV (+ .config.json) per video and index.csv")
    p.add_argument("--workers", type=int, default=None,
                   help="local worker processes (default: one per core, each engine single-threaded)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run on a Dask cluster, e.g. tcp://HOST:8786 (needs the [dask] extra; shared storage)")
    add_csv_style_argument(p)
    p.add_argument("--retry-failed", action="store_true", help="redo videos that failed in an earlier run")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_pipeline_arguments(p)
    p.set_defaults(threads=1)  # batch: one single-threaded engine per worker, one worker per core
    for action in p._actions:  # the shared option's help names the default of `run` and `process`
        if action.dest == "threads":
            action.help = "engine (and OpenCV) threads per worker (default 1 in batch)"


class _Terminated(KeyboardInterrupt):
    """SIGTERM (`kill PID`): the batch stops as on Ctrl-C, and exits 143 as `aunets process` does."""


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise _Terminated


def run(args: argparse.Namespace) -> int:
    from aunets.core.errors import ConfigError
    from aunets.stream.outputs import OutputLock, check_paths

    if args.out.exists() and not args.out.is_dir():
        raise ConfigError(f"--out {args.out} is a file; pass a folder (it is created when missing)")
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {args.out}: cannot create it ({exc.strerror or exc}); choose another --out "
                          f"folder") from None  # fmt: skip
    # a manifest or video given as input is never overwritten by the index
    check_paths([("--out (its index.csv)", args.out / "index.csv")], inputs=[("INPUT", Path(i)) for i in args.inputs])
    with OutputLock(args.out / "index.csv", "--out"):  # a second batch on the same folder is refused, not raced
        try:
            return _batch(args)
        except _Terminated:
            print(f"aunets batch: stopped by SIGTERM; finished videos are kept and {args.out / 'index.csv'} says "
                  f"which are pending (run the same command again to resume)", file=sys.stderr)  # fmt: skip
            return 128 + signal.SIGTERM


def _batch(args: argparse.Namespace) -> int:
    from aunets.core.errors import ConfigError
    from aunets.stream.batch import BatchBackend, BatchConfig, engine_identity, run_batch
    from aunets.stream.corpus import plan_jobs

    if args.workers is not None and args.workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {args.workers}")
    if args.workers is not None and args.scheduler:
        raise ConfigError("--workers is for local workers; with --scheduler the cluster's workers run the videos")
    pipeline_config = pipeline_config_from_args(args)
    config = BatchConfig(pipeline=pipeline_config, engine_id=engine_identity(pipeline_config),
                         csv_style=args.csv_style)
    jobs = plan_jobs(args.inputs, args.out)
    backend: BatchBackend
    if args.scheduler:
        from aunets.stream.batch_dask import DaskBackend

        backend = DaskBackend(args.scheduler)
    else:
        from aunets.stream.batch_local import LocalBackend

        backend = LocalBackend(args.workers)
    previous = signal.signal(signal.SIGTERM, _terminate)  # `kill PID`: stop the workers, write the index
    try:
        summary = run_batch(jobs, config, backend, args.out / "index.csv", retry_failed=args.retry_failed,
                            show_progress=not args.no_progress)
    finally:
        signal.signal(signal.SIGTERM, previous)
        close = getattr(backend, "close", None)
        if close is not None:
            close()
    print(json.dumps({"index": str(args.out / "index.csv"), **summary.to_json()}))
    if summary.failed:
        print(f"aunets batch: {summary.failed} of {summary.videos} videos failed; their errors are in "
              f"{args.out / 'index.csv'} (fix them and re-run with --retry-failed)", file=sys.stderr)
        return 1
    return 0
