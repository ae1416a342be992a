"""The streaming loop shared by ``aunets run`` and ``aunets process``: capture -> pipeline -> sinks."""

from __future__ import annotations

import gc
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from aunets.stream.capture import Capture, CaptureConfig
from aunets.stream.messages import latency_percentiles
from aunets.stream.pipeline import Pipeline, PipelineConfig
from aunets.stream.publish import Sink
from aunets.stream.sources import SourceInfo

log = logging.getLogger(__name__)


class LatencyHistogram:
    """Latencies in ms, counted in fixed 0.05 ms bins up to 5 s (the last bin holds everything slower), so a
    run of any length keeps constant memory. Percentiles are bin centres: exact to 0.025 ms."""

    BIN_MS = 0.05
    MAX_MS = 5000.0

    def __init__(self) -> None:
        self.counts = np.zeros(int(self.MAX_MS / self.BIN_MS) + 1, dtype=np.int64)
        self.n = 0

    def add(self, ms: float) -> None:
        self.counts[min(int(max(ms, 0.0) / self.BIN_MS), len(self.counts) - 1)] += 1
        self.n += 1

    def merge(self, other: LatencyHistogram) -> None:
        self.counts += other.counts
        self.n += other.n

    def percentile(self, q: float) -> float | None:
        """The ``q``-th percentile in ms; None before the first latency (JSON ``null``, never NaN)."""
        if self.n == 0:
            return None
        index = int(np.searchsorted(np.cumsum(self.counts), max(1.0, q / 100.0 * self.n)))
        return (index + 0.5) * self.BIN_MS


@dataclass
class RunStats:
    """Counters and latencies of one run. Latency: capture timestamp -> results handed to the sinks, in ms."""

    frames: int = 0
    faces: int = 0
    no_face: int = 0
    dropped: int = 0
    seconds: float = 0.0
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    stage_s: dict[str, float] = field(default_factory=dict)
    publish_s: float = 0.0
    startup: dict[str, float] = field(default_factory=dict)
    """Start-up seconds: import_s, load_s, warmup_s (:attr:`Pipeline.startup`), first_result_s (stream start
    -> first result handed to the sinks)."""
    frame_ms_max_after_first: float = 0.0
    """The slowest ``Pipeline.process`` call after the first frame, ms."""

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def percentile(self, q: float) -> float | None:
        return self.latency.percentile(q)

    def summary(self) -> dict[str, Any]:
        return {
            "frames": self.frames,
            "faces": self.faces,
            "no_face": self.no_face,
            "dropped": self.dropped,
            "seconds": round(self.seconds, 3),
            "fps": round(self.fps, 2),
            "latency_ms": {"p50": _ms(self.percentile(50)), "p99": _ms(self.percentile(99))},
            "stage_ms_per_frame": {k: round(1000 * v / max(1, self.frames), 3) for k, v in self.stage_s.items()},
            "startup_s": dict(self.startup),
            "frame_ms_max_after_first": round(self.frame_ms_max_after_first, 3),
        }


def save_config(path: Path, capture: CaptureConfig, pipeline: PipelineConfig, extra: dict[str, Any]) -> Path:
    """Write the resolved configuration of a run as JSON beside its output."""
    from aunets.stream.outputs import write_json

    data = {"capture": capture.__dict__, "pipeline": pipeline.to_json(), **extra}
    write_json(path, json.dumps(data, indent=2, default=str), "config")
    return path


def run_stream(
    capture_config: CaptureConfig,
    pipeline: Pipeline,
    sinks: Sequence[Sink],
    max_frames: int | None = None,
    progress: bool = False,
    status_every_s: float = 1.0,
    stop: threading.Event | None = None,
    stats: RunStats | None = None,
    on_start: Callable[[SourceInfo], None] | None = None,
    freeze_gc: bool = True,
) -> RunStats:
    """Run until the source ends (or ``max_frames``, or ``stop`` is set: the run then ends as if the source
    had, see :mod:`aunets.stream.shutdown`). Sinks are flushed and closed by the caller.

    ``stats``: filled in place (so the caller has the counters also when this raises); ``on_start`` is
    called once the source is open (it may append sinks to ``sinks``, as ``aunets run --lsl`` does).

    ``freeze_gc``: before the first frame, ``gc.freeze()`` what start-up made (modules, engine, sinks: some 40,000
    objects), so the garbage collector's occasional full pass during the stream walks only what was made since
    (a full pass over everything stalls the frame it falls on by about 3 ms); undone when the run ends.

    Every ``status_every_s`` seconds each sink gets a status (fps, frames, drops, latency p50/p99 over the
    last interval). Raises :class:`~aunets.core.errors.SourceError` after handing every computed result to the
    sinks when the source fails mid-stream.
    """
    stats = stats if stats is not None else RunStats()
    recent: deque[float] = deque(maxlen=2000)
    bar = None
    if pipeline.tracking_in_capture and capture_config.tracker is None:
        # face tracking depends only on the frames: run it in the capture process, on the other core
        capture_config = replace(capture_config, tracker=pipeline.config.tracker)
    with Capture(capture_config, stop=stop) as cap:
        if cap.info is None:  # stopped while the source was opening
            return stats
        if pipeline.frame_rate is None and not cap.info.live and cap.info.fps > 0:
            pipeline.frame_rate = cap.info.fps  # a file: event durations in its own frames, at any speed
        if cap.info.width > 0 and cap.info.height > 0:  # compile/capture before the first frame, not on it
            pipeline.warmup((cap.info.height, cap.info.width, 3))
        stats.startup = dict(pipeline.startup)
        if on_start is not None:
            on_start(cap.info)
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=cap.info.frame_count if cap.info.frame_count > 0 else None, unit="frame", desc="frames")
        if freeze_gc:
            gc.freeze()
        t_start = time.perf_counter()
        beat = _Heartbeat(capture_config.source, sinks, stats, recent, cap, status_every_s, t_start)
        try:
            for frame in cap.frames(stop, on_idle=beat.idle):
                t_frame = time.perf_counter()
                results = pipeline.process(frame)
                if stats.frames > 0:
                    stats.frame_ms_max_after_first = max(stats.frame_ms_max_after_first,
                                                         1000.0 * (time.perf_counter() - t_frame))
                _deliver(results, sinks, stats, recent)
                if results and "first_result_s" not in stats.startup:
                    stats.startup["first_result_s"] = round(time.perf_counter() - t_start, 3)
                stats.frames += 1
                if bar is not None:
                    bar.update(1)
                beat.frame()
                if max_frames is not None and stats.frames >= max_frames:
                    break
                if stop is not None and stop.is_set():
                    break
        finally:
            _deliver(pipeline.flush(), sinks, stats, recent)
            stats.seconds = time.perf_counter() - t_start
            stats.dropped = cap.dropped
            detect = cap.detect_seconds if capture_config.tracker else 0.0
            stats.stage_s = {**pipeline.timings, "publish": stats.publish_s}
            stats.stage_s["detect"] += detect
            if bar is not None:
                bar.close()
            if freeze_gc:
                gc.unfreeze()
    return stats


class _Heartbeat:
    """The ``au.status`` of every ``every_s`` seconds, between frames and while the source gives none (a
    stalled camera, network stream or capture process): then ``stalled`` is true, and the console is told
    once when the stall begins and once when frames come again."""

    STALL_S = 1.0
    """Seconds without a frame after which the source counts as stalled."""

    def __init__(self, source: str, sinks: Sequence[Sink], stats: RunStats, recent: deque[float], cap: Capture,
                 every_s: float, t_start: float) -> None:
        self.source, self.sinks, self.stats, self.recent, self.cap = source, sinks, stats, recent, cap
        self.every_s = every_s
        self.last = t_start
        self.frames_at_last = 0
        self.stalled_s = 0.0

    def frame(self) -> None:
        if self.stalled_s:
            log.warning("%s: frames again after %.1f s without one", self.source, self.stalled_s)
            self.stalled_s = 0.0
        self._maybe_send(stalled=False)

    def idle(self, waited_s: float) -> None:
        """Called by :meth:`Capture.frames` while it waits ``waited_s`` seconds for a frame."""
        if waited_s >= self.STALL_S:
            if not self.stalled_s:
                log.warning("%s: no frame for %.1f s, the source is stalled; still waiting (Ctrl-C to stop)",
                            self.source, waited_s)
            self.stalled_s = waited_s
        self._maybe_send(stalled=bool(self.stalled_s))

    def _maybe_send(self, stalled: bool) -> None:
        now = time.perf_counter()
        if now - self.last < self.every_s:
            return
        self.stats.dropped = self.cap.dropped
        status = _status(self.stats, self.recent, (self.stats.frames - self.frames_at_last) / (now - self.last))
        status["stalled"] = stalled
        for sink in self.sinks:
            sink.publish_status(status)
        self.recent.clear()
        self.frames_at_last, self.last = self.stats.frames, now


def _deliver(results: Sequence[Any], sinks: Sequence[Sink], stats: RunStats, recent: deque[float]) -> None:
    if not results:
        return
    t0 = time.perf_counter()
    for sink in sinks:
        sink.publish_results(results)
    stats.publish_s += time.perf_counter() - t0
    now_ns = time.monotonic_ns()
    for r in results:
        if r.events_only:
            continue
        if r.no_face:
            stats.no_face += 1
        else:
            stats.faces += 1
        latency = (now_ns - r.t_capture_ns) / 1e6
        stats.latency.add(latency)
        recent.append(latency)


def _status(stats: RunStats, recent: deque[float], fps: float) -> dict[str, Any]:
    return {
        "fps": round(fps, 2),
        "frames": stats.frames,
        "dropped": stats.dropped,
        "no_face": stats.no_face,
        "latency_ms": latency_percentiles(recent),
    }


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
