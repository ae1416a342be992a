"""The Dask distributed backend of ``aunets batch`` (``pip install -e '.[dask]'``).

Each video is one task on the cluster; a Dask worker thread keeps one :class:`~aunets.stream.batch.VideoWorker`
(engine and detector loaded once) for the tasks it runs. Workers read the videos and write the CSVs at the
paths the client gives, so inputs and the output folder must be on storage every node mounts at the same
path; the engine is the one shipped in the workers' aunets package, or ``--engine DIR`` on shared storage
(a worker whose bundle differs from the client's fails its videos with a message that says so). Frame
progress comes back through Dask's event topics; a task lost with a worker is rerun by Dask elsewhere.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from aunets.core.errors import ConfigError, MissingExtraError
from aunets.stream.batch import BatchConfig, ProgressFn, VideoResult, VideoWorker, run_video
from aunets.stream.corpus import VideoJob

log = logging.getLogger(__name__)

_local = threading.local()


def _run_on_dask_worker(config: BatchConfig, job: VideoJob, topic: str) -> VideoResult:
    from distributed import get_worker

    worker: VideoWorker | None = getattr(_local, "worker", None)
    if worker is None or worker.config != config:
        try:
            worker = _local.worker = VideoWorker(config)
        except Exception as exc:
            return VideoResult(job, "failed", error=f"{type(exc).__name__}: {exc}")
    dask_worker = get_worker()
    return run_video(worker, config, job, lambda n: dask_worker.log_event(topic, n))


class DaskBackend:
    """Runs the batch on the Dask scheduler at ``address`` (``tcp://HOST:8786``)."""

    def __init__(self, address: str, timeout_s: float = 30.0) -> None:
        try:
            import distributed
        except ModuleNotFoundError as exc:
            raise MissingExtraError("distributed", "dask") from exc
        try:
            self.client = distributed.Client(address, timeout=timeout_s)
        except (OSError, TimeoutError) as exc:
            raise ConfigError(f"no Dask scheduler answers at {address} ({exc}); start one with `dask scheduler` "
                              f"and pass its address, e.g. --scheduler tcp://HOST:8786") from exc
        self.workers = max(1, sum(self.client.nthreads().values()))

    def run(self, jobs: Sequence[VideoJob], config: BatchConfig, progress: ProgressFn) -> Iterator[VideoResult]:
        import distributed

        if not jobs:
            return
        topic = f"aunets-batch-{uuid.uuid4().hex}"
        events: queue.Queue[int] = queue.Queue()
        self.client.subscribe_topic(topic, lambda event: events.put(int(event[1])))

        def drain() -> None:
            while True:
                try:
                    progress(events.get_nowait())
                except queue.Empty:
                    return

        pending: dict[Any, VideoJob] = {}
        try:
            for job in jobs:
                future = self.client.submit(_run_on_dask_worker, config, job, topic, pure=False,
                                            key=f"aunets-batch-{job.index}-{topic[-12:]}")
                pending[future] = job
            finished = distributed.as_completed(list(pending))
            while pending:
                done = finished.next_batch(block=False)
                drain()
                if not done:
                    time.sleep(0.25)
                for future in done:
                    job = pending.pop(future)
                    try:
                        yield future.result()
                    except Exception as exc:
                        yield VideoResult(job, "failed", error=f"Dask task failed: {type(exc).__name__}: {exc}")
        finally:
            if pending:
                self.client.cancel(list(pending))
            drain()
            self.client.unsubscribe_topic(topic)

    def close(self) -> None:
        self.client.close()
