"""One browser peer: its RTCPeerConnection, its pipeline, its worker thread and its counters.

The event loop only moves references: every received video frame replaces the one waiting (the replaced
frame is counted in :attr:`PeerSession.dropped`), and a single worker thread per peer converts the newest
frame, reads its id (:mod:`.marker`) and runs :meth:`Pipeline.process`. Results go to the data channel and
to the shared ZeroMQ publisher from the loop. :meth:`PeerSession.close` (data channel or peer connection
closed or failed, or server shutdown) cancels the tasks, closes the peer connection, flushes the pipeline
(the offsets of AUs still on are published) and stops the worker; the server then forgets the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from aunets.core.frame import Frame
from aunets.stream.messages import event_payload, frame_payload, latency_percentiles, to_json
from aunets.stream.webrtc.marker import read_marker, strip_rows
from aunets.stream.webrtc.saliency import SaliencyService, SessionSaliency, Snapshot

if TYPE_CHECKING:
    from aunets.core.results import FaceResult
    from aunets.stream.pipeline import Pipeline
    from aunets.stream.publish import Sink

log = logging.getLogger(__name__)

MAX_BUFFERED_BYTES = 256 * 1024
"""A result message is not sent while more than this is waiting in the data channel (counted as unsent)."""
ID_HORIZON = 256
"""Frames for which the frame-id of a processed frame is kept (more than any median look-ahead)."""


@dataclass(frozen=True)
class MarkerLayout:
    """The id strip the page draws (see :mod:`.marker`): ``rows`` at a canvas of ``width`` x ``height`` px.
    ``rows == 0``: the client sends the plain camera (no ids, no latency)."""

    rows: int = 0
    width: int = 0
    height: int = 0

    @classmethod
    def from_json(cls, data: Any) -> MarkerLayout:
        """Raises ValueError for anything but non-negative integers (a list, a string, -1)."""
        if not isinstance(data, dict):
            return cls()
        values = [data.get(k, 0) for k in ("rows", "width", "height")]
        if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 1 << 16 for v in values):
            raise ValueError(f"marker rows, width, height must be integers in 0..65536, got {values}")
        return cls(*values)


@dataclass(frozen=True)
class _Work:
    video_frame: Any  # av.VideoFrame
    index: int
    t_capture_ns: int
    t_wall: float


@dataclass(frozen=True)
class _Done:
    index: int
    frame_id: int | None
    size: tuple[int, int]
    results: list[FaceResult]
    process_ms: float
    snapshot: Snapshot | None = None


class PeerSession:
    """The server side of one browser tab.

    ``make_pipeline`` is called once, in the worker thread. ``publisher`` (shared by all sessions, used only
    from the loop) gets the same ``au.frame``/``au.event`` messages as ``aunets run`` and an ``au.status``
    per session every ``status_every_s`` s. ``on_closed`` is called once, after teardown.
    """

    def __init__(
        self,
        session_id: str,
        pc: Any,
        make_pipeline: Callable[[], Pipeline],
        publisher: Sink | None = None,
        marker: MarkerLayout | None = None,
        on_closed: Callable[[PeerSession], None] | None = None,
        status_every_s: float = 1.0,
        saliency: SaliencyService | None = None,
    ) -> None:
        self.id = session_id
        self.pc = pc
        self.marker = marker or MarkerLayout()
        self.channel: Any = None
        self.received = 0
        self.processed = 0
        self.dropped = 0
        self.unsent = 0
        self.no_face = 0
        self.browser_stats: dict[str, Any] = {}
        self.closed = asyncio.Event()
        self._make_pipeline = make_pipeline
        self._pipeline: Pipeline | None = None
        self._publisher = publisher
        self._on_closed = on_closed
        self._status_every_s = status_every_s
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"aunets-peer-{session_id}")
        self._pending: _Work | None = None
        self._ready = asyncio.Event()
        self._ids: dict[int, int | None] = {}
        self._server_ms: deque[float] = deque(maxlen=1000)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._t_start = time.perf_counter()
        self._prev_bgr: np.ndarray | None = None
        self.saliency = SessionSaliency(saliency, self._send)
        """The page's saliency overlay (:mod:`.saliency`): off the AU path, newest frame only."""
        pc.on("track", self._on_track)
        pc.on("datachannel", self._on_datachannel)
        pc.on("connectionstatechange", self._on_connection_state)
        self._spawn(self._process_loop(), "process")
        self._spawn(self._status_loop(), "status")

    # --- aiortc events -------------------------------------------------------------------------------------

    def _on_track(self, track: Any) -> None:
        if track.kind != "video":
            log.info("session %s: ignoring %s track", self.id, track.kind)
            return
        self._spawn(self._receive_loop(track), "receive")

    def _on_datachannel(self, channel: Any) -> None:
        if channel.ordered or channel.maxRetransmits != 0:
            log.warning("session %s: data channel %r is ordered=%s maxRetransmits=%s; the page should open it "
                        "unordered with maxRetransmits 0", self.id, channel.label, channel.ordered,
                        channel.maxRetransmits)  # fmt: skip
        self.channel = channel
        channel.on("message", self._on_message)
        channel.on("close", lambda: self.schedule_close("data channel closed"))

    def _on_connection_state(self) -> None:
        state = self.pc.connectionState
        log.info("session %s: connection %s", self.id, state)
        if state in ("failed", "closed"):
            self.schedule_close(f"connection {state}")

    def _on_message(self, message: str | bytes) -> None:
        try:
            data = json.loads(message)
        except ValueError:
            log.debug("session %s: ignoring a non-JSON message", self.id)
            return
        if not isinstance(data, dict):
            return
        if data.get("type") == "stats":
            self.browser_stats = {k: v for k, v in data.items() if k != "type"}
        elif data.get("type") == "marker":
            try:
                self.marker = MarkerLayout.from_json(data)
            except ValueError as exc:
                log.debug("session %s: ignoring a bad marker message: %s", self.id, exc)
        elif data.get("type") == "saliency":
            self.saliency.configure(data)

    # --- frames --------------------------------------------------------------------------------------------

    async def _receive_loop(self, track: Any) -> None:
        from aiortc.mediastreams import MediaStreamError

        while True:
            try:
                video_frame = await track.recv()
            except MediaStreamError:
                self.schedule_close("video track ended")
                return
            work = _Work(video_frame, self.received, time.monotonic_ns(), time.time())
            self.received += 1
            if self._pending is not None:
                self.dropped += 1  # the pipeline is behind: keep only the newest frame
            self._pending = work
            self._ready.set()

    async def _process_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._ready.wait()
            self._ready.clear()
            work, self._pending = self._pending, None
            if work is None:
                continue
            done = await loop.run_in_executor(self._executor, self._work, work, self.marker)
            self._deliver(done)

    def _work(self, work: _Work, marker: MarkerLayout) -> _Done:
        """Worker thread: decode -> read the id -> strip it -> pipeline."""
        t0 = time.perf_counter()
        if self._pipeline is None:
            self._pipeline = self._make_pipeline()
        bgr = work.video_frame.to_ndarray(format="bgr24")
        frame_id = None
        if marker.rows > 0:
            rows = strip_rows(bgr.shape[0], marker.height)
            frame_id = read_marker(bgr, rows)
            bgr = np.ascontiguousarray(bgr[rows:])
        results = self._pipeline.process(Frame(work.index, work.t_capture_ns, work.t_wall, bgr))
        boxes = {r.track_id: r.box for r in results if r.frame_index == work.index and r.track_id is not None
                 and r.box is not None and r.probabilities}  # fmt: skip
        views = {r.track_id: r.view for r in results if r.track_id in boxes and r.view is not None}
        snapshot = Snapshot(work.index, bgr, self._prev_bgr, boxes, views)
        self._prev_bgr = bgr
        return _Done(work.index, frame_id, (bgr.shape[1], bgr.shape[0]), results, 1000 * (time.perf_counter() - t0),
                     snapshot)  # fmt: skip

    def _deliver(self, done: _Done) -> None:
        self.processed += 1
        if done.snapshot is not None:
            self.saliency.offer(done.snapshot)
        self._ids[done.index] = done.frame_id
        self._publish(done.results)
        now_ns = time.monotonic_ns()
        for r in done.results:
            if not r.events_only:
                self._server_ms.append((now_ns - r.t_capture_ns) / 1e6)
        self._send(
            {
                "type": "result",
                "frame": done.index,
                "id": done.frame_id,
                "size": list(done.size),
                "process_ms": round(done.process_ms, 2),
                "received": self.received,
                "processed": self.processed,
                "dropped": self.dropped,
                **self._payloads(done.results),
            }
        )

    def _payloads(self, results: Sequence[FaceResult]) -> dict[str, Any]:
        now = time.time()
        frames: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        for r in results:
            if not r.events_only:
                if r.no_face:
                    self.no_face += 1
                payload = frame_payload(r, r.frame_index, now)
                payload["id"] = self._ids.get(r.frame_index)
                frames.append(payload)
            events.extend(event_payload(e, 0, now) for e in r.events)
        # forget the ids of frames older than any the look-ahead can still hold back
        horizon = max(self._ids, default=0) - ID_HORIZON
        for index in [i for i in self._ids if i < horizon]:
            del self._ids[index]
        return {"results": frames, "events": events}

    def _publish(self, results: Sequence[FaceResult]) -> None:
        if self._publisher is not None and results:
            self._publisher.publish_results(results)

    def _send(self, message: dict[str, Any]) -> None:
        channel = self.channel
        if channel is None or channel.readyState != "open":
            return
        if channel.bufferedAmount > MAX_BUFFERED_BYTES:
            self.unsent += 1
            return
        channel.send(to_json(message))

    # --- status --------------------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Counters of this session (the ``au.status`` payload, without schema/seq/t)."""
        seconds = max(1e-9, time.perf_counter() - self._t_start)
        return {
            "source": "webrtc",
            "session": self.id,
            "frames": self.processed,
            "received": self.received,
            "dropped": self.dropped,
            "unsent": self.unsent,
            "no_face": self.no_face,
            "fps": round(self.processed / seconds, 2),
            "latency_ms": latency_percentiles(self._server_ms),
            "browser": self.browser_stats,
            "saliency": {"au": self.saliency.au, "sent": self.saliency.sent, "skipped": self.saliency.skipped,
                         "rate": round(self.saliency.rate, 2)},
        }

    async def _status_loop(self) -> None:
        while True:
            await asyncio.sleep(self._status_every_s)
            status = self.status()
            if self._publisher is not None:
                self._publisher.publish_status(status)
            self._send({"type": "status", **status})
            self._server_ms.clear()

    # --- teardown ------------------------------------------------------------------------------------------

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=f"peer-{self.id}-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("session %s: task %s failed", self.id, task.get_name(), exc_info=task.exception())
            self.schedule_close(f"task {task.get_name()} failed")

    def schedule_close(self, reason: str) -> None:
        """Start :meth:`close` from a callback (idempotent)."""
        if self._closing:
            return
        log.info("session %s: closing (%s)", self.id, reason)
        asyncio.get_running_loop().create_task(self.close())

    @property
    def task_count(self) -> int:
        """Tasks still alive (0 after :meth:`close`)."""
        return len(self._tasks)

    async def close(self) -> None:
        """Cancel tasks, close the peer connection, flush the pipeline, stop the worker. Idempotent."""
        if self._closing:
            await self.closed.wait()
            return
        self._closing = True
        self.saliency.cancel()
        current = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not current]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.pc.close()
        loop = asyncio.get_running_loop()
        try:
            flushed = await loop.run_in_executor(self._executor, self._flush)
            self._publish(flushed)
        except Exception:
            log.exception("session %s: pipeline flush failed", self.id)
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._pending = None
        self._ids.clear()
        self.channel = None
        self.closed.set()
        if self._on_closed is not None:
            self._on_closed(self)
        log.info("session %s: closed after %d frames (%d dropped)", self.id, self.processed, self.dropped)

    def _flush(self) -> list[FaceResult]:
        pipeline, self._pipeline = self._pipeline, None
        return pipeline.flush() if pipeline is not None else []
