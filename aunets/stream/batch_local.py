"""Local worker processes for ``aunets batch``: N spawned processes, each with its own engine and detector.

The batch process hands each worker one video at a time over its own pipe and knows which video every worker
holds, so a worker that dies (a decoder crash, the OOM killer, ``kill -9``) fails only the video in its hands,
and a fresh worker takes its place for the videos still to run.

A worker ignores Ctrl-C (the batch process handles it and stops the workers), exits at once on SIGTERM, and
exits by itself within half a second when the batch process is gone (even killed with SIGKILL), so an
interrupted batch leaves no worker behind that could still write into the output folder.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

from aunets.stream.batch import BatchConfig, ProgressFn, VideoResult, VideoWorker, run_video
from aunets.stream.corpus import VideoJob

log = logging.getLogger(__name__)


def default_workers() -> int:
    """One worker per core this process may run on."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def _worker_main(config: BatchConfig, conn: Connection, parent: int) -> None:
    """A worker: load the engine once, then run the videos the batch process sends (None: stop). Sends
    ``("progress", frames)`` while a video runs and ``("result", VideoResult)`` when it ends."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(143))
    threading.Thread(target=_watch_parent, args=(parent,), name="aunets-parent-watch", daemon=True).start()
    worker: VideoWorker | None = None
    try:
        worker = VideoWorker(config)
    except Exception:  # every video of this worker then fails with the reason (see run_video)
        log.exception("worker %d could not load the engine", os.getpid())
    while True:
        try:
            job = conn.recv()
        except EOFError:  # the batch process is gone
            return
        if job is None:
            return
        result = run_video(worker, config, job, lambda n: conn.send(("progress", n)))
        conn.send(("result", result))


@dataclass
class _Slot:
    process: Any  # multiprocessing's SpawnProcess
    conn: Connection
    job: VideoJob | None = None


def _death(process: Any) -> str:
    code = process.exitcode
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit status {code}"


class LocalBackend:
    """``workers`` spawned processes on this machine (see :func:`default_workers`)."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or default_workers()

    def run(self, jobs: Sequence[VideoJob], config: BatchConfig, progress: ProgressFn) -> Iterator[VideoResult]:
        if not jobs:
            return
        ctx = mp.get_context("spawn")
        todo = deque(jobs)
        slots: list[_Slot] = []

        def start() -> _Slot:
            ours, theirs = ctx.Pipe()
            process = ctx.Process(target=_worker_main, args=(config, theirs, os.getpid()), name="aunets-batch-worker",
                                  daemon=True)  # fmt: skip
            process.start()
            theirs.close()
            return _Slot(process, ours)

        def hand_out(slot: _Slot) -> None:
            slot.job = todo.popleft() if todo else None
            with contextlib.suppress(OSError):  # a worker that died meanwhile is seen by its sentinel
                slot.conn.send(slot.job)

        def receive(slot: _Slot) -> Iterator[VideoResult]:
            while True:
                try:
                    if not slot.conn.poll():
                        return
                    kind, value = slot.conn.recv()
                except (EOFError, OSError):
                    return
                if kind == "progress":
                    progress(value)
                else:
                    slot.job = None
                    yield value
                    hand_out(slot)

        try:
            for _ in range(min(self.workers, len(jobs))):
                slot = start()
                slots.append(slot)
                hand_out(slot)
            while any(s.job is not None for s in slots):
                busy = [s for s in slots if s.job is not None]
                ready = wait([s.conn for s in busy] + [s.process.sentinel for s in busy], timeout=0.5)
                for slot in busy:
                    dead = slot.process.sentinel in ready or not slot.process.is_alive()
                    held = slot.job
                    if slot.conn in ready or dead:
                        yield from receive(slot)  # a dead worker's last messages are read too
                    if not dead:
                        continue
                    slot.process.join()
                    slot.conn.close()
                    slots.remove(slot)
                    if slot.job is not None and slot.job is not held:  # it died after its last result
                        todo.appendleft(slot.job)
                    elif slot.job is not None:  # it died with a video in its hands: that video alone fails
                        log.warning("worker %d died (%s) on %s; starting another", slot.process.pid,
                                    _death(slot.process), slot.job.video)  # fmt: skip
                        yield VideoResult(slot.job, "failed", error=f"the worker process died "
                                          f"({_death(slot.process)}) while on this video")  # fmt: skip
                    if todo:
                        fresh = start()
                        slots.append(fresh)
                        hand_out(fresh)
        finally:  # done, or interrupted: stop the workers now rather than after their current videos
            for slot in slots:
                if slot.job is None:
                    with contextlib.suppress(OSError):
                        slot.conn.send(None)
                else:
                    slot.process.terminate()
            for slot in slots:
                slot.process.join(timeout=5)
                if slot.process.is_alive():
                    slot.process.kill()
                    slot.process.join()
                slot.conn.close()
