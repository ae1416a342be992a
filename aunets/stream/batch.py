"""``aunets batch``: a whole corpus of videos, one OpenFace-compatible CSV each, resumable.

Each video runs through the same :class:`~aunets.stream.pipeline.Pipeline` and
:class:`~aunets.stream.csv_sink.OpenFaceCsvWriter` as ``aunets process``, so its CSV has the same rows and columns.
A worker (:class:`VideoWorker`) loads the engine and the face detector once and then runs videos one after
another; it decodes and tracks in its own process (no capture process per video: pool and cluster workers may
not start children, and a worker then uses one core).

Resuming: a video's CSV is written as ``NAME.csv.partial`` and renamed to ``NAME.csv`` when the video ends;
then its config JSON (``NAME.csv.config.json``: pipeline config, engine, input size and mtime, frames, rows,
CSV size, status) is written. A later run skips a video whose JSON matches the current configuration and
input and whose CSV has the recorded size and last frame; anything else is redone. A video that failed
(damaged, unreadable) is recorded as failed (the rows before the damage are kept) and skipped by a re-run of
the same configuration unless ``retry_failed``. ``OUT/index.csv`` lists every video (see :data:`INDEX_COLUMNS`).
"""

from __future__ import annotations

import csv
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from aunets.stream.corpus import VideoJob
from aunets.stream.pipeline import PipelineConfig

log = logging.getLogger(__name__)

INDEX_COLUMNS = ("input", "output", "subject", "session", "frames", "faces", "seconds", "status", "error")
"""``frames``: frames read from the video; ``faces``: frames with a face; ``seconds``: processing wall time;
``status``: ``done``, ``failed`` or ``pending`` (not run yet, or in flight when the batch was interrupted)."""

ProgressFn = Callable[[int], None]
"""Called by a worker with the number of frames processed since its last call."""


@dataclass(frozen=True)
class BatchConfig:
    """What every video of a batch is processed with (saved, with the engine's identity, beside each CSV).

    ``engine_id``: the engine's name and the sha256 of its weight files, as the submitting machine sees them;
    a worker whose bundle differs refuses to run (cluster workers must have the same engine).
    ``csv_style``: one of :data:`aunets.stream.csv_sink.CSV_STYLES`.
    """

    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    engine_id: dict[str, Any] = field(default_factory=dict)
    csv_style: str = "openface"

    def key(self) -> dict[str, Any]:
        """What must match for an existing CSV to count as done (JSON-normalised)."""
        data: dict[str, Any] = json.loads(json.dumps(
            {"pipeline": self.pipeline.to_json(), "engine": self.engine_id, "csv_style": self.csv_style}, default=str))
        return data


def engine_identity(config: PipelineConfig) -> dict[str, Any]:
    """The engine's name and weight-file hashes from its manifest (no weights are read)."""
    from aunets.engines.engine import default_engine_path
    from aunets.engines.manifest import load_manifest

    manifest = load_manifest(config.engine or default_engine_path(), verify_files=False)
    return {"name": manifest.name, "files": dict(sorted(manifest.files.items()))}


@dataclass(frozen=True)
class VideoResult:
    """The outcome of one video. ``frames``: frames read; ``faces``: frames with a face; ``rows``: CSV rows;
    ``seconds``: wall time of the video's processing; ``skipped``: already done by an earlier run."""

    job: VideoJob
    status: str
    frames: int = 0
    faces: int = 0
    rows: int = 0
    seconds: float = 0.0
    error: str = ""
    skipped: bool = False


def _fingerprint(video: Path) -> dict[str, int]:
    st = video.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _last_frame(path: Path) -> int:
    """The ``frame`` value of the CSV's last row (0 for a header-only file), read from the end of the file."""
    with path.open("rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - 4096))
        lines = fh.read().decode("utf-8", "replace").strip().splitlines()
    if not lines or not lines[-1][:1].isdigit():
        return 0
    return int(lines[-1].split(",", 1)[0])  # both CSV styles: the first cell ends at the first ","


def recorded_result(job: VideoJob, config: BatchConfig, retry_failed: bool = False) -> VideoResult | None:
    """The result of an earlier run of ``job`` with this configuration on this same input, when its CSV is
    complete (or it failed and ``retry_failed`` is off); None when the video must be (re)done."""
    try:
        data = json.loads(job.config_json.read_text(encoding="utf-8"))
        batch = data["batch"]
        recorded = {"pipeline": data["pipeline"], "engine": batch["engine"], "csv_style": batch.get("csv_style")}
        if recorded != config.key():
            return None
        if batch["input"] != {"path": str(job.video), **_fingerprint(job.video)}:
            return None
        result = VideoResult(job, batch["status"], batch["frames"], batch["faces"], batch["rows"],
                             batch["seconds"], batch["error"], skipped=True)
        if result.status == "failed":
            return None if retry_failed else result
        if result.status != "done" or job.csv.stat().st_size != batch["csv_bytes"]:
            return None
        return result if result.rows == 0 or _last_frame(job.csv) == result.frames else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


class VideoWorker:
    """One engine and one face detector, loaded once, running videos one at a time (not thread-safe)."""

    def __init__(self, config: BatchConfig) -> None:
        import cv2

        from aunets.core.errors import EngineError
        from aunets.engines.engine import load_engine
        from aunets.stream.pipeline import Pipeline

        self.config = config
        cv2.setNumThreads(config.pipeline.threads)
        engine = load_engine(config.pipeline.engine, config.pipeline.runtime, config.pipeline.threads,
                             detectors=config.pipeline.device != "cuda")
        mine = {"name": engine.manifest.name, "files": dict(sorted(engine.manifest.files.items()))}
        if config.engine_id and mine != config.engine_id:
            raise EngineError(
                f"this worker's engine bundle {engine.path} ({mine['name']}) differs from the one the batch was "
                f"started with ({config.engine_id.get('name')}); install the same aunets on every worker or pass "
                f"--engine DIR on shared storage")
        # tracking runs here, not in a capture process (with the same detector): loaded once per worker
        self.pipeline = Pipeline(config.pipeline, engine=engine)

    def run(self, job: VideoJob, progress: ProgressFn | None = None, report_every_s: float = 0.5) -> VideoResult:
        """Process ``job``'s video into its CSV and config JSON; a bad video gives a ``failed`` result."""
        from aunets.core.errors import AunetsError
        from aunets.core.frame import Frame
        from aunets.stream.capture import CaptureConfig
        from aunets.stream.csv_sink import OpenFaceCsvWriter
        from aunets.stream.runner import save_config
        from aunets.stream.sources import make_source
        from aunets.stream.tracking import FaceTracker

        t0 = time.perf_counter()
        partial = job.csv.with_name(job.csv.name + ".partial")
        fingerprint = {"path": str(job.video), **_fingerprint(job.video)}
        frames = faces = reported = 0
        error = ""
        writer: OpenFaceCsvWriter | None = None
        last_face_frame = -1
        last_report = t0

        def deliver(results: Sequence[Any]) -> None:
            nonlocal faces, last_face_frame
            assert writer is not None
            writer.publish_results(results)
            for r in results:
                if not r.no_face and not r.events_only and r.frame_index != last_face_frame:
                    faces += 1
                    last_face_frame = r.frame_index

        # a fresh tracker on the loaded detector: face ids start at 0 in every CSV, as in `aunets process`
        self.pipeline.tracker = FaceTracker(self.pipeline.tracker.detector, self.config.pipeline.tracker)
        source = make_source(str(job.video))
        try:
            info = source.open()
            self.pipeline.frame_rate = info.fps if info.fps > 0 else None  # event durations in the video's frames
            writer = OpenFaceCsvWriter(partial, self.pipeline.aus, fps=info.fps,
                                       intensity=self.pipeline.engine.has_intensity, style=self.config.csv_style)
            while (image := source.read()) is not None:
                deliver(self.pipeline.process(Frame(frames, time.monotonic_ns(), time.time(), image,
                                                    t_media=source.timestamp())))
                frames += 1
                now = time.perf_counter()
                if progress is not None and now - last_report >= report_every_s:
                    progress(frames - reported)
                    reported, last_report = frames, now
        except AunetsError as exc:
            error = str(exc)
        finally:
            source.close()
            if writer is not None:
                deliver(self.pipeline.flush())
                writer.close()
            else:
                self.pipeline.flush()
        if progress is not None and frames > reported:
            progress(frames - reported)
        rows = writer.rows if writer is not None else 0
        if writer is not None:
            with partial.open("rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(partial, job.csv)  # a CSV under its final name is always whole
        seconds = time.perf_counter() - t0
        status = "failed" if error else "done"
        batch = {"status": status, "frames": frames, "faces": faces, "rows": rows, "seconds": round(seconds, 3),
                 "error": error, "input": fingerprint, "engine": self.config.engine_id,
                 "csv_style": self.config.csv_style,
                 "csv_bytes": job.csv.stat().st_size if writer is not None else 0,
                 "subject": job.subject, "session": job.session}
        job.csv.parent.mkdir(parents=True, exist_ok=True)
        tmp = job.config_json.with_name(job.config_json.name + ".partial")
        save_config(tmp, CaptureConfig(source=str(job.video), live=False), self.config.pipeline,
                    {"engine_manifest": self.pipeline.engine.manifest.name, "batch": batch})
        os.replace(tmp, job.config_json)
        if error:
            log.warning("%s failed after %d frames: %s", job.video, frames, error)
        return VideoResult(job, status, frames, faces, rows, round(seconds, 3), error)


def run_video(worker: VideoWorker | None, config: BatchConfig, job: VideoJob,
              progress: ProgressFn | None = None) -> VideoResult:
    """``worker.run(job)``, with any error (also one loading the worker: ``worker`` None) as a failed result,
    so that one video can never stop a batch."""
    try:
        if worker is None:
            worker = VideoWorker(config)
        return worker.run(job, progress)
    except Exception as exc:
        log.exception("%s failed", job.video)
        return VideoResult(job, "failed", error=f"{type(exc).__name__}: {exc}")


class BatchBackend(Protocol):
    """Runs jobs on some workers and yields their results as they finish (in any order)."""

    workers: int

    def run(self, jobs: Sequence[VideoJob], config: BatchConfig, progress: ProgressFn) -> Iterator[VideoResult]: ...


@dataclass
class BatchSummary:
    """What a batch did: ``ran`` videos processed now, ``skipped`` already done, ``failed`` among all."""

    videos: int = 0
    ran: int = 0
    skipped: int = 0
    done: int = 0
    failed: int = 0
    frames: int = 0
    seconds: float = 0.0
    interrupted: bool = False

    def to_json(self) -> dict[str, Any]:
        fps = self.frames / self.seconds if self.seconds > 0 else 0.0
        return {**self.__dict__, "seconds": round(self.seconds, 3), "fps": round(fps, 2)}


def write_index(path: Path, jobs: Sequence[VideoJob], results: dict[int, VideoResult]) -> None:
    """``path`` (``OUT/index.csv``), replaced atomically: one row per job, ``pending`` for those not run."""
    tmp = path.with_name(path.name + ".partial")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(INDEX_COLUMNS)
        for job in jobs:
            r = results.get(job.index) or VideoResult(job, "pending")
            out = job.csv if job.csv.exists() else ""
            w.writerow([job.video, out, job.subject, job.session, r.frames, r.faces, r.seconds, r.status,
                        r.error.replace("\n", " ")])
    os.replace(tmp, path)


def _frame_count(video: Path) -> int:
    import cv2

    cap = cv2.VideoCapture(str(video))
    try:
        return max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT))) if cap.isOpened() else 0
    finally:
        cap.release()


def run_batch(jobs: Sequence[VideoJob], config: BatchConfig, backend: BatchBackend, index: Path,
              retry_failed: bool = False, show_progress: bool = True, index_every_s: float = 2.0) -> BatchSummary:
    """Run every job not already done; ``index`` is rewritten as results come (at most every
    ``index_every_s``) and at the end, also when interrupted (KeyboardInterrupt is re-raised)."""
    summary = BatchSummary(videos=len(jobs))
    results: dict[int, VideoResult] = {}
    todo: list[VideoJob] = []
    for job in jobs:
        done = recorded_result(job, config, retry_failed)
        if done is None:
            todo.append(job)
        else:
            results[job.index] = done
    summary.skipped = len(results)
    index.parent.mkdir(parents=True, exist_ok=True)
    write_index(index, jobs, results)
    log.info("%d videos: %d already done, %d to run on %d workers", len(jobs), summary.skipped, len(todo),
             backend.workers)
    bars: list[Any] = []
    if todo and show_progress:
        from tqdm import tqdm

        total = sum(_frame_count(j.video) for j in todo)
        bars = [tqdm(total=len(todo), unit="video", desc="videos", position=0),
                tqdm(total=total or None, unit="frame", desc="frames", position=1, smoothing=0.05)]

    def on_frames(n: int) -> None:
        summary.frames += n
        if bars:
            bars[1].update(n)

    t0 = time.perf_counter()
    last_index = t0
    try:
        for result in backend.run(todo, config, on_frames):
            results[result.job.index] = result
            summary.ran += 1
            if bars:
                bars[0].update(1)
                bars[0].set_postfix(failed=sum(r.status == "failed" for r in results.values()), refresh=False)
            if time.perf_counter() - last_index >= index_every_s:
                write_index(index, jobs, results)
                last_index = time.perf_counter()
    except KeyboardInterrupt:
        summary.interrupted = True
        raise
    finally:
        summary.seconds = time.perf_counter() - t0
        for bar in bars:
            bar.close()
        write_index(index, jobs, results)
        summary.done = sum(r.status == "done" for r in results.values())
        summary.failed = sum(r.status == "failed" for r in results.values())
    return summary
