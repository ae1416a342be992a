"""Capture in its own process, frames handed over through shared memory (never pickled).

Sources (:mod:`aunets.stream.sources`): a webcam index (``"0"``), any video file or URL OpenCV opens, or a folder of
images. The capture process writes each frame into a slot of a shared-memory ring and passes only the slot
number and timestamps. Two policies:

- **live** sources (webcams, network streams): latest-frame. The consumer always gets the newest frame;
  frames it had no time for are dropped and counted (:attr:`Capture.dropped`), never queued.
- **file** sources (video files, image folders): lossless. Every frame is delivered in order; the capture
  process waits for a free slot. ``realtime=True`` hands each frame over at its presentation time (to
  simulate a live source and measure latency), still without losing frames.

The two processes share no condition variable: slot states change under a plain lock that the consumer only
takes with a timeout, and each side wakes the other through a pipe (one byte per change). The consumer also
waits on the capture process's sentinel, so the death of the capture process, at any moment (even while it
holds the lock), ends :meth:`Capture.frames` within a second with a :class:`SourceError`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import multiprocessing as mp
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing import connection, shared_memory
from typing import Any

import cv2
import numpy as np

from aunets.core.errors import SourceError
from aunets.core.face import Track
from aunets.core.frame import Frame
from aunets.stream.shutdown import ignore_stop_signals
from aunets.stream.sources import SourceInfo, make_source
from aunets.stream.tracking import FaceTracker, TrackerConfig
from aunets.stream.yunet_ort import OrtYuNetDetector

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class CaptureConfig:
    """``source``: camera index, file, URL or folder. ``realtime``: pace file sources to their presentation times.
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
_META = 4  # per slot: index, monotonic ns, wall time, presentation time (NaN: none)
_TRACK_FIELDS = 16  # track id, x, y, w, h, score, the 5 landmarks' x, y (NaN: none)
# counters (a RawArray of int64): written by one side, read by the other, no lock needed
_DROPPED, _ENDED, _TRACK_NS, _ERROR_SENT, _STOP = range(5)
_POLL_S = 0.05
"""Longest wait between two checks of the stop flag, the capture process's liveness and the idle callback."""


def _wake(conn: Any) -> None:
    """One byte into a wake-up pipe whose write end is non-blocking: a full pipe already holds a wake-up."""
    with contextlib.suppress(BlockingIOError, BrokenPipeError):
        os.write(conn.fileno(), b"\0")


def _drain(conn: Any) -> None:
    """Empty a wake-up pipe (non-blocking read end)."""
    with contextlib.suppress(BlockingIOError):
        while os.read(conn.fileno(), 4096):
            pass


def _capture_main(config: CaptureConfig, ctrl: Any, shared: dict[str, Any]) -> None:
    """Body of the capture process. It ignores SIGINT/SIGTERM (the parent stops it through ``stop``) and
    exits by itself within ~0.1 s of a frame when its parent dies, so it is never orphaned."""
    ignore_stop_signals()
    threading.Thread(target=_exit_with_parent, args=(os.getppid(),), name="aunets-parent-watch", daemon=True).start()
    lock, states, meta, counters = shared["lock"], shared["states"], shared["meta"], shared["counters"]
    track_meta, filled_w, freed_r = shared["tracks"], shared["filled_w"], shared["freed_r"]
    os.set_blocking(filled_w.fileno(), False)
    os.set_blocking(freed_r.fileno(), False)
    cv2.setNumThreads(1)  # this process has one core's worth of work; leave the other to the pipeline
    tracker = FaceTracker(OrtYuNetDetector(), config.tracker) if config.tracker else None
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
        while not counters[_STOP]:
            try:
                image = source.read()
            except SourceError as exc:
                ctrl.put(("error", str(exc)))
                counters[_ERROR_SENT] = 1  # tells the consumer to wait for the message: Queue.put is asynchronous
                break
            if image is None:
                break
            t_media = source.timestamp()
            if period:  # a file's frame is handed over at its presentation time (variable frame rates too)
                delay = t0 + (index * period if t_media is None else t_media) - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            t_ns, t_wall = time.monotonic_ns(), time.time()
            if image.shape != (info.height, info.width, 3) or image.nbytes != frame_bytes:
                image = cv2.resize(image, (info.width, info.height))
            tracks: list[Track] = []
            if tracker is not None:
                t_track = time.perf_counter_ns()
                tracks = tracker.update(image)
                counters[_TRACK_NS] += time.perf_counter_ns() - t_track
            slot = _free_slot(states, live, counters, lock, freed_r)
            if slot < 0:
                break
            ring[slot] = image
            with lock:
                meta[slot * _META : (slot + 1) * _META] = [
                    index, t_ns, t_wall, math.nan if t_media is None else t_media]
                base = slot * per_slot
                track_meta[base] = len(tracks)
                for k, t in enumerate(tracks):
                    track_meta[base + 1 + k * _TRACK_FIELDS : base + 1 + (k + 1) * _TRACK_FIELDS] = [
                        t.track_id, *t.box, t.score,
                        *(t.landmarks.reshape(10).tolist() if t.landmarks is not None else [math.nan] * 10)]
                states[slot] = _FILLED
            _wake(filled_w)
            index += 1
    finally:
        counters[_ENDED] = 1  # end of stream
        _wake(filled_w)
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


def _free_slot(states: Any, live: bool, counters: Any, lock: Any, freed_r: Any) -> int:
    """A slot marked ``_WRITING`` (-1: stopped): a free one; live sources reclaim the oldest unread frame (a
    drop), files wait for the consumer to free one."""
    while True:
        _drain(freed_r)
        with lock:
            for i in range(len(states)):
                if states[i] == _FREE:
                    states[i] = _WRITING
                    return i
            if live:
                filled = [i for i in range(len(states)) if states[i] == _FILLED]
                if filled:
                    counters[_DROPPED] += 1
                    states[filled[0]] = _WRITING
                    return filled[0]
        if counters[_STOP]:
            return -1
        connection.wait([freed_r], timeout=0.1)


class Capture:
    """A capture process and the consumer side of its shared-memory ring. Use as a context manager.

    Iterating yields :class:`Frame` objects whose ``image`` is a view into shared memory, valid until the
    next frame is requested.
    """

    def __init__(self, config: CaptureConfig, stop: threading.Event | None = None) -> None:
        """``stop``: set (by a signal handler) to give up waiting, while the source opens or between frames."""
        if config.slots < 3:
            raise SourceError(f"capture needs at least 3 slots, got {config.slots}")
        self.config = config
        self.stop = stop
        self.stopped = False
        """True when ``stop`` was set before the source opened (:meth:`start` then returns None)."""
        self._ctx = mp.get_context("spawn")
        self.info: SourceInfo | None = None
        self._proc: Any = None
        self._shm: shared_memory.SharedMemory | None = None
        self.error: str | None = None
        self._closed = False
        self._per_slot = 1 + (config.tracker.max_faces if config.tracker else 0) * _TRACK_FIELDS

    @property
    def dropped(self) -> int:
        """Frames a live source produced that were replaced by newer ones before being processed."""
        return int(self._shared["counters"][_DROPPED]) if self._proc is not None else 0

    @property
    def detect_seconds(self) -> float:
        """Time the capture process spent tracking faces (with ``tracker`` set), in seconds."""
        return int(self._shared["counters"][_TRACK_NS]) / 1e9 if self._proc is not None else 0.0

    def start(self) -> SourceInfo | None:
        """Start the capture process and open the source; None when ``stop`` was set first."""
        ctx = self._ctx
        slots = self.config.slots
        self._ctrl = ctx.Queue()
        filled_r, filled_w = ctx.Pipe(duplex=False)
        freed_r, freed_w = ctx.Pipe(duplex=False)
        for conn in (filled_r, filled_w, freed_r, freed_w):
            os.set_blocking(conn.fileno(), False)
        self._filled_r, self._freed_w = filled_r, freed_w
        self._shared = {
            "lock": ctx.Lock(),
            "states": ctx.RawArray("b", slots),
            "meta": ctx.RawArray("d", slots * _META),
            "counters": ctx.RawArray("q", 5),  # see _DROPPED ... _STOP
            "tracks": ctx.RawArray("d", slots * self._per_slot),
            "filled_w": filled_w,
            "freed_r": freed_r,
            "reply": ctx.Queue(),
        }
        self._proc = ctx.Process(
            target=_capture_main, args=(self.config, self._ctrl, self._shared), name="aunets-capture", daemon=True
        )
        self._proc.start()
        # the child has its own copies of its pipe ends: closing ours lets its death reach us as EOF too
        filled_w.close()
        freed_r.close()
        deadline = time.monotonic() + self.config.start_timeout_s
        while True:
            try:
                kind, payload = self._ctrl.get(timeout=_POLL_S)
                break
            except queue.Empty:
                pass
            if self.stop is not None and self.stop.is_set():
                self.stopped = True
                self.close()
                return None
            if not self._proc.is_alive() and self._ctrl.empty():
                error = self._death()
                self.close()
                raise SourceError(error)
            if time.monotonic() > deadline:
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

    def frames(self, stop: threading.Event | None = None,
               on_idle: Callable[[float], None] | None = None) -> Iterator[Frame]:
        """Frames in order (files) or newest first (live sources) until the source ends (or ``stop`` is set
        while waiting for the next frame). ``on_idle(seconds)`` is called about every 50 ms while no frame has
        come for ``seconds`` (a heartbeat keeps beating while the source stalls). Raises
        :class:`SourceError` within about 50 ms of the capture process's death."""
        if self.info is None and self.start() is None:
            return
        stop = stop if stop is not None else self.stop
        sh = self._shared
        lock, states, meta, counters = sh["lock"], sh["states"], sh["meta"], sh["counters"]
        reading = -1
        t_wait = time.monotonic()

        def wait(what: list[Any]) -> bool:
            """Wait up to 50 ms for ``what``; False when stopped; raises when the capture process died."""
            if stop is not None and stop.is_set():
                return False
            error = self._dead()
            if error:
                raise SourceError(error)
            connection.wait(what, timeout=_POLL_S)
            if on_idle is not None:
                on_idle(time.monotonic() - t_wait)
            return True

        def acquire() -> bool:
            """The slot lock, never waiting long for one a killed or stopped capture process holds."""
            while not lock.acquire(timeout=_POLL_S):
                if not wait([self._proc.sentinel]):
                    return False
            return True

        while True:
            t_wait = time.monotonic()
            if reading >= 0:
                if not acquire():
                    return
                states[reading] = _FREE
                lock.release()
                _wake(self._freed_w)
                reading = -1
            while True:
                _drain(self._filled_r)
                if not acquire():
                    return
                try:
                    ended = counters[_ENDED]  # read first: a frame filled before the end is then seen below
                    filled = [i for i in range(len(states)) if states[i] == _FILLED]
                    if filled:
                        order = sorted(filled, key=lambda i: meta[i * _META])
                        if self.live:
                            reading = order[-1]
                            for stale in order[:-1]:
                                states[stale] = _FREE
                                counters[_DROPPED] += 1
                        else:
                            reading = order[0]
                        states[reading] = _READING
                        index, t_ns, t_wall, t_media = meta[reading * _META : (reading + 1) * _META]
                        tracks = self._tracks(reading) if self.config.tracker else None
                finally:
                    lock.release()
                if filled:
                    break
                if ended:
                    self._check_error()
                    return
                if not wait([self._filled_r, self._proc.sentinel]):
                    return
            if self.live and len(filled) > 1:
                _wake(self._freed_w)
            yield Frame(index=int(index), t_capture_ns=int(t_ns), t_wall=float(t_wall), image=self._ring[reading],
                        tracks=tracks, t_media=None if math.isnan(t_media) else float(t_media))

    def _dead(self) -> str | None:
        """None while the capture process lives or ended the stream itself; else the error that says so."""
        if self._proc.is_alive() or self._shared["counters"][_ENDED]:
            return None
        return self._death()

    def _death(self) -> str:
        code = self._proc.exitcode
        how = (f"killed by {signal.Signals(-code).name}" if code is not None and code < 0 and -code in
               signal.valid_signals() else f"exit code {code}")  # fmt: skip
        return f"{self.config.source}: the capture process died ({how})"

    def _tracks(self, slot: int) -> tuple[Track, ...]:
        data = self._shared["tracks"]
        base = slot * self._per_slot
        out = []
        for k in range(int(data[base])):
            f = data[base + 1 + k * _TRACK_FIELDS : base + 1 + (k + 1) * _TRACK_FIELDS]
            points = np.array(f[6:16], dtype=np.float32).reshape(5, 2)
            out.append(Track(track_id=int(f[0]), box=(f[1], f[2], f[3], f[4]), score=f[5],
                             landmarks=points if np.isfinite(points).all() else None))
        return tuple(out)

    def _check_error(self) -> None:
        wait = 10.0 if self._shared["counters"][_ERROR_SENT] else 0.0
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
        if self._closed:
            return
        self._closed = True
        if self._proc is not None:
            self._shared["counters"][_STOP] = 1
            _wake(self._freed_w)
            self._proc.join(timeout=1.0)  # it checks the flag between frames and while it waits for a slot
            if self._proc.is_alive():  # stopped (SIGSTOP) or stuck in a read or open: it ignores SIGTERM
                self._proc.kill()
                self._proc.join(timeout=2.0)
            for conn in (self._filled_r, self._freed_w):
                conn.close()
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
