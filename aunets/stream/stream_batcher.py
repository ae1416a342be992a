"""Several streams, one engine: a batcher thread that runs the frames of all streams together.

Each stream keeps its own :class:`~aunets.stream.pipeline.Pipeline` (tracking, views, medians, events) and its
own capture process; only the frame path is shared. A stream's pipeline gets a :class:`BatchedFramePath` in
place of its :class:`~aunets.stream.gpu_path.GpuFramePath`: its ``infer_full`` hands the frame to the
:class:`StreamBatcher` and waits. The batcher thread takes the first waiting frame, waits up to ``max_wait_s``
for every other live stream to hand in one too, then runs them all through
:func:`~aunets.stream.gpu_path.infer_streams` (one flow call, one detector call) and wakes each stream with its
rows. A stream thus waits at most ``max_wait_s`` plus one batch for its result, and the engine sees batches as
large as the number of streams.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

from aunets.core.face import Box
from aunets.stream.gpu_path import GpuFramePath, infer_streams

log = logging.getLogger(__name__)

Rows = tuple[np.ndarray, "np.ndarray | None"]


@dataclass
class _Request:
    stream: int
    frame: np.ndarray
    boxes: list[Box]
    views: list[int] | None
    done: Future[Rows]


class StreamBatcher:
    """Runs the frames that several streams hand in through one shared frame path, in batches.

    ``base``: the shared path (its detectors and flow solver serve every stream); ``max_wait_s``: how long the
    first frame of a batch waits for the other live streams' frames.
    """

    def __init__(self, base: GpuFramePath, max_wait_s: float = 0.005) -> None:
        self.base = base
        self.max_wait_s = max_wait_s
        self._paths: list[GpuFramePath] = []
        self._live: set[int] = set()
        self._pending: dict[int, _Request] = {}
        self._cond = threading.Condition()
        self._closed = False
        self.batches: list[int] = []
        """Streams per batch run so far (for tests and benchmarks)."""
        self._thread = threading.Thread(target=self._loop, name="aunets-stream-batcher", daemon=True)
        self._thread.start()

    def client(self) -> BatchedFramePath:
        """A frame path for one more stream (its own previous frame, the shared engine)."""
        with self._cond:
            stream = len(self._paths)
            self._paths.append(self.base if stream == 0 else self.base.sibling())
            self._live.add(stream)
        return BatchedFramePath(self, stream)

    def submit(self, stream: int, frame: np.ndarray, boxes: Sequence[Box], views: Sequence[int] | None) -> Rows:
        """Hand in stream ``stream``'s frame and wait for its (probabilities, intensities)."""
        done: Future[Rows] = Future()
        with self._cond:
            if self._closed:
                raise RuntimeError("the stream batcher is closed")
            self._pending[stream] = _Request(stream, frame, list(boxes), None if views is None else list(views), done)
            self._cond.notify_all()
        return done.result()

    def leave(self, stream: int) -> None:
        """Stream ``stream`` has ended: batches no longer wait for it."""
        with self._cond:
            self._live.discard(stream)
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=5.0)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if self._closed and not self._pending:
                    return
                deadline = time.monotonic() + self.max_wait_s
                while not self._live <= set(self._pending) and (left := deadline - time.monotonic()) > 0:
                    self._cond.wait(left)
                batch = [self._pending.pop(s) for s in sorted(self._pending)]
            try:
                rows = infer_streams([self._paths[r.stream] for r in batch], [r.frame for r in batch],
                                     [r.boxes for r in batch], [r.views for r in batch])
            except Exception as exc:  # handed to every waiting stream, which raises it
                for r in batch:
                    r.done.set_exception(exc)
                continue
            self.batches.append(len(batch))
            for r, out in zip(batch, rows, strict=True):
                r.done.set_result(out)


class BatchedFramePath:
    """What a stream's :class:`~aunets.stream.pipeline.Pipeline` uses as its frame path when it shares the engine
    through a :class:`StreamBatcher` (the subset of :class:`GpuFramePath` that the pipeline calls)."""

    def __init__(self, batcher: StreamBatcher, stream: int) -> None:
        self.batcher = batcher
        self.stream = stream
        self.startup: dict[str, float] = dict(batcher.base.startup)

    @property
    def has_intensity(self) -> bool:
        return self.batcher.base.has_intensity

    def infer_full(self, frame_bgr: np.ndarray, boxes: Sequence[Box], views: Sequence[int] | None = None) -> Rows:
        return self.batcher.submit(self.stream, frame_bgr, boxes, views)

    def infer(self, frame_bgr: np.ndarray, boxes: Sequence[Box], views: Sequence[int] | None = None) -> np.ndarray:
        return self.infer_full(frame_bgr, boxes, views)[0]

    def reset(self) -> None:
        self.batcher._paths[self.stream].reset()

    def warmup(self, frame_shape: tuple[int, ...], max_faces: int = 1) -> float:
        """Batches run eagerly (no graphs to capture); the shared detectors were warmed when loaded."""
        return 0.0
