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
from typing import TYPE_CHECKING

import numpy as np

from aunets.core.errors import EngineError
from aunets.core.face import Box
from aunets.stream.gpu_path import GpuFramePath

if TYPE_CHECKING:
    from torch import Tensor

log = logging.getLogger(__name__)

Rows = tuple[np.ndarray, "np.ndarray | None"]


@dataclass
class _Request:
    stream: int
    frame: np.ndarray
    boxes: list[Box]
    views: list[int] | None
    done: Future[Rows]


def infer_streams(paths: Sequence[GpuFramePath], frames: Sequence[np.ndarray], boxes: Sequence[Sequence[Box]],
                  views: Sequence[Sequence[int] | None] | None = None) -> list[tuple[np.ndarray, np.ndarray | None]]:
    """One frame of each of several streams through one engine: every stream's crops are cut on its own path
    (each keeps its previous frame), then the faces of all streams go through **one** flow call and **one**
    detector call per detector file. ``paths``: one per stream, made with :meth:`GpuFramePath.sibling` (they must
    share their detectors); ``frames[i]``: stream i's ``uint8`` HxWx3 BGR frame, ``boxes[i]`` its faces,
    ``views[i]`` their views (None: the default). Returns per stream ``(probabilities, intensities | None)``,
    each ``float32`` (len(boxes[i]), n_aus), as :meth:`GpuFramePath.infer_full` would. Runs eagerly (no CUDA
    graph: the batch changes with every stream's faces)."""
    first = paths[0]
    if any(p.runtimes != first.runtimes for p in paths):
        raise EngineError("infer_streams needs paths that share one engine: make them with GpuFramePath.sibling()")
    if not len(paths) == len(frames) == len(boxes):
        raise ValueError(f"{len(paths)} paths, {len(frames)} frames and {len(boxes)} box lists")
    m = first.manifest
    n_aus = len(m.aus)
    torch = first._torch
    counts: list[int] = []
    rgbs: list[Tensor] = []
    prevs: list[Tensor] = []
    curs: list[Tensor] = []
    resolved: list[int] = []
    with torch.inference_mode():
        for i, (path, frame_bgr, bx) in enumerate(zip(paths, frames, boxes, strict=True)):
            given = views[i] if views is not None else None
            vw = list(given) if given is not None else [m.default_view] * len(bx)
            if len(vw) != len(bx):
                raise ValueError(f"stream {i}: {len(bx)} boxes but {len(vw)} views")
            frame = path._upload(frame_bgr)
            counts.append(len(bx))
            if not bx:
                path._set_prev(frame)
                continue
            taps = path._tap_tensors(bx, frame_bgr.shape)
            if not path._has_prev:
                path._set_prev(frame)
            rgb, prev, cur = path._crops(frame, taps)
            rgbs.append(rgb)
            if prev is not None and cur is not None:
                prevs.append(prev)
                curs.append(cur)
            resolved += [v if v in m.detectors else m.default_view for v in vw]
        width = n_aus * (2 if m.intensity else 1)
        if not resolved:
            out = np.zeros((0, width), dtype=np.float32)
        else:
            flow_img = None
            if prevs:
                flow_img = first._encode(first._flow(torch.cat(prevs), torch.cat(curs)))
            x = first._compose(torch.cat(rgbs), flow_img)
            heads = torch.tensor([m.detector_heads.get(v, 0) for v in resolved], dtype=torch.int64, device=first.device)
            files = tuple(m.detectors[v] for v in resolved)
            out = np.asarray(first._infer(x, files, heads).cpu().numpy(), dtype=np.float32)
    results: list[tuple[np.ndarray, np.ndarray | None]] = []
    start = 0
    for n in counts:
        rows = out[start : start + n] if n else np.zeros((0, width), dtype=np.float32)
        results.append((rows[:, :n_aus], rows[:, n_aus:] if m.intensity else None))
        start += n
    return results


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
