"""The streaming loop shared by ``aunets run`` and ``aunets process``: capture -> pipeline -> sinks."""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from stream.capture import Capture, CaptureConfig
from stream.pipeline import Pipeline, PipelineConfig
from stream.publish import Sink

log = logging.getLogger(__name__)


@dataclass
class RunStats:
    """Counters and latencies of one run. Latency: capture timestamp -> results handed to the sinks, in ms."""

    frames: int = 0
    faces: int = 0
    no_face: int = 0
    dropped: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    stage_s: dict[str, float] = field(default_factory=dict)
    publish_s: float = 0.0

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")

    def summary(self) -> dict[str, Any]:
        return {
            "frames": self.frames,
            "faces": self.faces,
            "no_face": self.no_face,
            "dropped": self.dropped,
            "seconds": round(self.seconds, 3),
            "fps": round(self.fps, 2),
            "latency_ms": {"p50": round(self.percentile(50), 3), "p99": round(self.percentile(99), 3)},
            "stage_ms_per_frame": {k: round(1000 * v / max(1, self.frames), 3) for k, v in self.stage_s.items()},
        }


def save_config(path: Path, capture: CaptureConfig, pipeline: PipelineConfig, extra: dict[str, Any]) -> Path:
    """Write the resolved configuration of a run as JSON beside its output."""
    data = {"capture": capture.__dict__, "pipeline": pipeline.to_json(), **extra}
    path.write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    return path


def run_stream(
    capture_config: CaptureConfig,
    pipeline: Pipeline,
    sinks: Sequence[Sink],
    max_frames: int | None = None,
    progress: bool = False,
    status_every_s: float = 1.0,
) -> RunStats:
    """Run until the source ends (or ``max_frames``). Sinks are flushed and closed by the caller.

    Every ``status_every_s`` seconds each sink gets a status (fps, frames, drops, latency p50/p99 over the
    last interval). Raises :class:`~stream.errors.SourceError` after handing every computed result to the
    sinks when the source fails mid-stream.
    """
    stats = RunStats()
    recent: deque[float] = deque(maxlen=2000)
    bar = None
    with Capture(capture_config) as cap:
        assert cap.info is not None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=cap.info.frame_count if cap.info.frame_count > 0 else None, unit="frame", desc="frames")
        t_start = time.perf_counter()
        last_status = t_start
        frames_at_status = 0
        try:
            for frame in cap.frames():
                results = pipeline.process(frame)
                _deliver(results, sinks, stats, recent)
                stats.frames += 1
                if bar is not None:
                    bar.update(1)
                now = time.perf_counter()
                if now - last_status >= status_every_s:
                    stats.dropped = cap.dropped
                    status = _status(stats, recent, (stats.frames - frames_at_status) / (now - last_status))
                    for sink in sinks:
                        sink.publish_status(status)
                    recent.clear()
                    frames_at_status, last_status = stats.frames, now
                if max_frames is not None and stats.frames >= max_frames:
                    break
        finally:
            _deliver(pipeline.flush(), sinks, stats, recent)
            stats.seconds = time.perf_counter() - t_start
            stats.dropped = cap.dropped
            stats.stage_s = {**pipeline.timings, "publish": stats.publish_s}
            if bar is not None:
                bar.close()
    return stats


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
        stats.latencies_ms.append(latency)
        recent.append(latency)


def _status(stats: RunStats, recent: deque[float], fps: float) -> dict[str, Any]:
    lat = np.asarray(recent) if recent else np.asarray([np.nan])
    return {
        "fps": round(fps, 2),
        "frames": stats.frames,
        "dropped": stats.dropped,
        "no_face": stats.no_face,
        "latency_ms": {"p50": round(float(np.percentile(lat, 50)), 3), "p99": round(float(np.percentile(lat, 99)), 3)},
    }
