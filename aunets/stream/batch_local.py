"""Local worker processes for ``aunets batch``: N spawned processes, each with its own engine and detector.

A worker ignores Ctrl-C (the batch process handles it and stops the workers), exits at once on SIGTERM, and
exits by itself within half a second when the batch process is gone (even killed with SIGKILL), so an
interrupted batch leaves no worker behind that could still write into the output folder.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any

from aunets.stream.batch import BatchConfig, ProgressFn, VideoResult, VideoWorker, run_video
from aunets.stream.corpus import VideoJob

log = logging.getLogger(__name__)

_worker: VideoWorker | None = None
_progress: Any = None


def default_workers() -> int:
    """One worker per core this process may run on."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def _init_worker(config: BatchConfig, progress: Any, parent: int) -> None:
    global _worker, _progress
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(143))
    threading.Thread(target=_watch_parent, args=(parent,), name="aunets-parent-watch", daemon=True).start()
    _progress = progress
    try:
        _worker = VideoWorker(config)
    except Exception:  # every video of this worker then fails with the reason (see run_video)
        log.exception("worker %d could not load the engine", os.getpid())


def _run_job(config: BatchConfig, job: VideoJob) -> VideoResult:
    pid = os.getpid()
    return run_video(_worker, config, job, lambda n: _progress.put((pid, n)))


class LocalBackend:
    """``workers`` spawned processes on this machine (see :func:`default_workers`)."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or default_workers()

    def run(self, jobs: Sequence[VideoJob], config: BatchConfig, progress: ProgressFn) -> Iterator[VideoResult]:
        if not jobs:
            return
        ctx = mp.get_context("spawn")
        progress_queue: Any = ctx.Queue()
        pool = ProcessPoolExecutor(min(self.workers, len(jobs)), mp_context=ctx, initializer=_init_worker,
                                   initargs=(config, progress_queue, os.getpid()))

        def drain() -> None:
            while True:
                try:
                    _, n = progress_queue.get_nowait()
                except queue.Empty:
                    return
                progress(n)

        pending: dict[Future[VideoResult], VideoJob] = {}
        try:
            pending = {pool.submit(_run_job, config, job): job for job in jobs}
            while pending:
                done, _ = wait(pending, timeout=0.25, return_when=FIRST_COMPLETED)
                drain()
                for future in done:
                    job = pending.pop(future)
                    try:
                        yield future.result()
                    except Exception as exc:  # the worker process died (e.g. a decoder crash)
                        yield VideoResult(job, "failed", error=f"worker process died: {type(exc).__name__}: {exc}")
        finally:
            if pending:  # interrupted: stop the workers now rather than after their current videos
                for process in list(pool._processes.values()):
                    process.terminate()
            pool.shutdown(wait=True, cancel_futures=True)
            drain()
            progress_queue.close()
