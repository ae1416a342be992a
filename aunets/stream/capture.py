"""Capture in its own process, frames handed over through shared memory (never pickled).

Sources (:mod:`aunets.stream.sources`): a webcam index (``"0"``), any video file or URL OpenCV opens, or a folder of
images. The capture process writes each frame into a slot of a shared-memory ring and passes only the slot
number and timestamps. Two policies:

- **live** sources (webcams, network streams): latest-frame. The consumer always gets the newest frame;
  frames it had no time for are dropped and counted (:attr:`Capture.dropped`), never queued.
- **file** sources (video files, image folders): lossless. Every frame is delivered in order; the capture
  process waits for a free slot. ``realtime=True`` paces reading to the file's frame rate (to simulate a
  live source and measure latency), still without losing frames.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing import shared_memory
from typing import Any

import cv2
import numpy as np

from aunets.core.errors import SourceError
from aunets.core.face import Track
from aunets.core.frame import Frame
from aunets.stream.shutdown import ignore_stop_signals
from aunets.stream.sources import SourceInfo, make_source
from aunets.stream.tracking import FaceTracker, TrackerConfig, YuNetDetector

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class CaptureConfig:
    """``source``: camera index, file, URL or folder. ``realtime``: pace file sources to their frame rate.
    ``slots``: frames in the shared ring (>= 3). ``live``: force the latest-frame policy (None: by source kind).
    ``tracker``: when set, the capture process also tracks faces (YuNet) and hands the tracks over with each
    frame, so detection runs on the second core, in parallel with the pipeline's flow and engine.
    """

    source: str
    realtime: bool = False
    slots: int = 4
    live: bool | None = None
    start_timeout_s: float = 30.0
    tracker: TrackerConfig | None = None


# slot states
_FREE, _FILLED, _READING, _WRITING = 0, 1, 2, 3
_TRACK_FIELDS = 6  # track id, x, y, w, h, score


def _capture_main(config: CaptureConfig, ctrl: Any, shared: dict[str, Any]) -> None:
    """Body of the capture process. It ignores SIGINT/SIGTERM (the parent stops it through ``stop``) and
    exits by itself within ~0.1 s of a frame when its parent dies, so it is never orphaned."""
    ignore_stop_signals()
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), name="aunets-parent-watch", daemon=True).start()
    cond, states, meta, counters = shared["cond"], shared["states"], shared["meta"], shared["counters"]
    track_meta = shared["tracks"]
    cv2.setNumThreads(1)  # this process has one core's worth of work; leave the other to the pipeline
    tracker = FaceTracker(YuNetDetector(), config.tracker) if config.tracker else None
    per_slot = 1 + (config.tracker.max_faces if config.tracker else 0) * _TRACK_FIELDS
    source = make_source(config.source)
    try:
        info = source.open()
    except SourceError as exc:
        ctrl.put(("error", str(exc)))
        return
    live = info.live if config.live is None else config.live
    ctrl.put(("info", info))
    reply = ctrl_wait(shared["reply"])
    if reply is None:
        source.close()
        return
    shm = shared_memory.SharedMemory(name=reply)
    frame_bytes = info.width * info.height * 3
    ring = np.ndarray((config.slots, info.height, info.width, 3), dtype=np.uint8, buffer=shm.buf)
    period = 1.0 / info.fps if (config.realtime and info.fps > 0) else 0.0
    t0 = time.monotonic()
    index = 0
    try:
        while not shared["stop"].is_set():
            if period:
                delay = t0 + index * period - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            try:
                image = source.read()
            except SourceError as exc:
                ctrl.put(("error", str(exc)))
                counters[3] = 1  # tells the consumer to wait for the message: Queue.put is asynchronous
                break
            if image is None:
                break
            t_ns, t_wall = time.monotonic_ns(), time.time()
            if image.shape != (info.height, info.width, 3) or image.nbytes != frame_bytes:
                image = cv2.resize(image, (info.width, info.height))
            tracks: list[Track] = []
            if tracker is not None:
                t_track = time.perf_counter_ns()
                tracks = tracker.update(image)
                counters[2] += time.perf_counter_ns() - t_track
            with cond:
                slot = _free_slot(states, live, counters, cond, shared["stop"])
                if slot < 0:
                    break
                states[slot] = _WRITING
            ring[slot] = image
            with cond:
                meta[slot * 3] = index
                meta[slot * 3 + 1] = t_ns
                meta[slot * 3 + 2] = t_wall
                base = slot * per_slot
                track_meta[base] = len(tracks)
                for k, t in enumerate(tracks):
                    track_meta[base + 1 + k * _TRACK_FIELDS : base + 1 + (k + 1) * _TRACK_FIELDS] = [
                        t.track_id, *t.box, t.score]
                states[slot] = _FILLED
                cond.notify_all()
            index += 1
    finally:
        with cond:
            counters[1] = 1  # end of stream
            cond.notify_all()
        source.close()
        del ring
        shm.close()


def ctrl_wait(reply: Any) -> str | None:
    try:
        value: str | None = reply.get(timeout=30.0)
        return value
    except queue.Empty:
        return None


def _exit_with_parent(parent: int, poll_s: float = 0.1) -> None:
    """Watchdog thread of the capture process: exit at once when the parent is gone (killed with SIGKILL or
    without cleanup), wherever the main thread is blocked (a camera read, a lock the dead parent held). The
    shared memory and semaphores are then unlinked by multiprocessing's resource tracker, which outlives
    its last user by design."""
    while os.getppid() == parent:
        time.sleep(poll_s)
    os._exit(0)


@contextlib.contextmanager
def _held(cond: Any, alive: Callable[[], bool], source: str) -> Iterator[None]:
    """Hold ``cond``, never waiting forever for a lock a killed capture process held."""
    while not cond.acquire(timeout=0.5):
        if not alive():
            raise SourceError(f"{source}: the capture process died")
    try:
        yield
    finally:
        cond.release()


def _free_slot(states: Any, live: bool, counters: Any, cond: Any, stop: Any) -> int:
    """Under ``cond``: a free slot; live sources reclaim the oldest unread frame (a drop), files wait."""
    while True:
        for i in range(len(states)):
            if states[i] == _FREE:
                return i
        if live:
            filled = [i for i in range(len(states)) if states[i] == _FILLED]
            if filled:
                counters[0] += 1
                return filled[0]
        if stop.is_set():
            return -1
        cond.wait(0.1)


class Capture:
    """A capture process and the consumer side of its shared-memory ring. Use as a context manager.

    Iterating yields :class:`Frame` objects whose ``image`` is a view into shared memory, valid until the
    next frame is requested.
    """

    def __init__(self, config: CaptureConfig) -> None:
        if config.slots < 3:
            raise SourceError(f"capture needs at least 3 slots, got {config.slots}")
        self.config = config
        self._ctx = mp.get_context("spawn")
        self.info: SourceInfo | None = None
        self._proc: Any = None
        self._shm: shared_memory.SharedMemory | None = None
        self.error: str | None = None
        self._per_slot = 1 + (config.tracker.max_faces if config.tracker else 0) * _TRACK_FIELDS

    @property
    def dropped(self) -> int:
        """Frames a live source produced that were replaced by newer ones before being processed."""
        return int(self._shared["counters"][0]) if self._proc is not None else 0

    @property
    def detect_seconds(self) -> float:
        """Time the capture process spent tracking faces (with ``tracker`` set), in seconds."""
        return int(self._shared["counters"][2]) / 1e9 if self._proc is not None else 0.0

    def start(self) -> SourceInfo:
        ctx = self._ctx
        slots = self.config.slots
        self._ctrl = ctx.Queue()
        self._shared = {
            "cond": ctx.Condition(),
            "states": ctx.RawArray("b", slots),
            "meta": ctx.RawArray("d", slots * 3),
            "counters": ctx.RawArray("q", 4),  # dropped, end of stream, tracking ns, error sent
            "tracks": ctx.RawArray("d", slots * self._per_slot),
            "stop": ctx.Event(),
            "reply": ctx.Queue(),
        }
        self._proc = ctx.Process(
            target=_capture_main, args=(self.config, self._ctrl, self._shared), name="aunets-capture", daemon=True
        )
        self._proc.start()
        try:
            kind, payload = self._ctrl.get(timeout=self.config.start_timeout_s)
        except queue.Empty:
            self.close()
            raise SourceError(f"{self.config.source}: the capture process did not start in time") from None
        if kind == "error":
            self.close()
            raise SourceError(payload)
        info: SourceInfo = payload
        self.info = info
        self.live = info.live if self.config.live is None else self.config.live
        self._shm = shared_memory.SharedMemory(create=True, size=slots * info.width * info.height * 3)
        self._ring = np.ndarray((slots, info.height, info.width, 3), dtype=np.uint8, buffer=self._shm.buf)
        self._shared["reply"].put(self._shm.name)
        return info

    def frames(self, stop: threading.Event | None = None) -> Iterator[Frame]:
        """Frames in order (files) or newest first (live sources) until the source ends (or ``stop`` is set
        while waiting for the next frame)."""
        if self.info is None:
            self.start()
        sh = self._shared
        cond, states, meta, counters = sh["cond"], sh["states"], sh["meta"], sh["counters"]
        reading = -1
        while True:
            with _held(cond, self._proc.is_alive, self.config.source):
                if reading >= 0:
                    states[reading] = _FREE
                    cond.notify_all()
                    reading = -1
                while True:
                    filled = [i for i in range(len(states)) if states[i] == _FILLED]
                    if filled:
                        break
                    if counters[1]:
                        self._check_error()
                        return
                    if stop is not None and stop.is_set():
                        return
                    cond.wait(0.05)
                    if not self._proc.is_alive() and not any(states[i] == _FILLED for i in range(len(states))):
                        self._check_error()
                        if not counters[1]:
                            raise SourceError(f"{self.config.source}: the capture process died")
                        return
                order = sorted(filled, key=lambda i: meta[i * 3])
                if self.live:
                    reading = order[-1]
                    for stale in order[:-1]:
                        states[stale] = _FREE
                        counters[0] += 1
                else:
                    reading = order[0]
                states[reading] = _READING
                index, t_ns, t_wall = int(meta[reading * 3]), int(meta[reading * 3 + 1]), float(meta[reading * 3 + 2])
                tracks = self._tracks(reading) if self.config.tracker else None
            yield Frame(index=index, t_capture_ns=t_ns, t_wall=t_wall, image=self._ring[reading], tracks=tracks)

    def _tracks(self, slot: int) -> tuple[Track, ...]:
        data = self._shared["tracks"]
        base = slot * self._per_slot
        out = []
        for k in range(int(data[base])):
            f = data[base + 1 + k * _TRACK_FIELDS : base + 1 + (k + 1) * _TRACK_FIELDS]
            out.append(Track(track_id=int(f[0]), box=(f[1], f[2], f[3], f[4]), score=f[5]))
        return tuple(out)

    def _check_error(self) -> None:
        wait = 10.0 if self._shared["counters"][3] else 0.0
        try:
            while self.error is None:
                kind, payload = self._ctrl.get(timeout=wait) if wait else self._ctrl.get_nowait()
                if kind == "error":
                    self.error = str(payload)
        except queue.Empty:
            pass
        if self.error:
            raise SourceError(self.error)

    def close(self) -> None:
        if self._proc is not None:
            self._shared["stop"].set()
            cond = self._shared["cond"]
            if cond.acquire(timeout=1.0):  # a child killed while holding it leaves it locked for good
                try:
                    cond.notify_all()
                finally:
                    cond.release()
            self._proc.join(timeout=5.0)
            if self._proc.is_alive():
                self._proc.terminate()
                self._proc.join(timeout=2.0)
        if self._shm is not None:
            if hasattr(self, "_ring"):
                del self._ring
            self._shm.close()
            with contextlib.suppress(FileNotFoundError):
                self._shm.unlink()
            self._shm = None

    def __enter__(self) -> Capture:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
