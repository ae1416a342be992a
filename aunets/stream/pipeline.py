"""The per-frame pipeline: face tracking -> crop -> optical flow -> engine -> sliding median -> results.

One :class:`Pipeline` holds the state of one stream (tracks, previous frame, medians). It does no I/O:
capture feeds it :class:`~aunets.core.frame.Frame` objects and sinks publish what it returns.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from aunets.core.crop import crop_square
from aunets.core.errors import ConfigError
from aunets.core.face import Box, Track
from aunets.core.flow import compute_flows, encode_flow
from aunets.core.flow_registry import create_flow_backend
from aunets.core.frame import Frame
from aunets.core.headpose import HeadPose, estimate_head_pose
from aunets.core.median import SlidingMedian, check_window
from aunets.core.results import FaceResult
from aunets.engines.engine import AUEngine, load_engine
from aunets.engines.preprocess import compose_input, normalise
from aunets.stream.calibration import CalibrationConfig, OnlineBaseline
from aunets.stream.events import EventConfig, EventDetector
from aunets.stream.tracking import FaceDetector, FaceTracker, TrackerConfig
from aunets.stream.yunet_ort import OrtYuNetDetector

if TYPE_CHECKING:
    from aunets.stream.gpu_path import GpuFramePath

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PipelineConfig:
    """Everything that shapes the per-frame computation (saved beside outputs).

    ``engine``: bundle directory (None: the embedded default). ``runtime``: ``onnx`` | ``torch`` | ``cuda`` |
    ``trt``. ``flow``: flow backend name (None: the one in the manifest). ``median_window``: odd window in
    frames (None: the manifest's). ``lookahead``: frames of look-ahead of the median, 0 = causal.
    ``margin``: crop side / face box side. ``view_every``: run the view classifier every N frames per track, on
    the frames whose index mod N is ``view_phase`` (None: N // 2, half way between the tracker's full-frame passes,
    which fall on index mod ``tracker.detect_every`` == 0 while a face is tracked, so the two never add up on one
    frame's latency).
    ``threads``: engine intra-op threads (2: the capture process leaves most of the second core free).
    ``device``: ``cpu``, or ``cuda`` for the GPU frame path (crop, TV-L1
    flow, normalisation and the detectors on the GPU; see ``docs/gpu.md``), or ``torch-cpu`` for that same
    path on torch's CPU device (what CI runs of it).
    ``calibration``: online per-track neutral baseline applied to the probabilities before the median and the
    thresholds (:mod:`aunets.stream.calibration`); the results' ``probabilities`` stay raw.
    ``events``: hysteresis and minimum durations of the on/off states (:mod:`aunets.stream.events`).
    """

    engine: Path | None = None
    runtime: str = "onnx"
    flow: str | None = None
    median_window: int | None = None
    lookahead: int = 0
    margin: float = 1.3
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    view_every: int = 5
    view_phase: int | None = None
    threads: int = 2
    device: str = "cpu"
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    events: EventConfig = field(default_factory=EventConfig)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["engine"] = str(self.engine) if self.engine else None
        return data


_FrameMeta = tuple[int, int, float, float | None]
"""A frame's index, capture ns (monotonic), wall time (s) and presentation time (s, None for live sources)."""


@dataclass
class _Pending:
    frame: _FrameMeta
    box: Box
    confidence: float
    view: int
    probs: np.ndarray
    pose: HeadPose | None = None


class _TrackState:
    def __init__(self, track_id: int, aus: tuple[int, ...], window: int, lookahead: int,
                 calibration: CalibrationConfig | None = None, thresholds: np.ndarray | None = None,
                 events: EventConfig | None = None) -> None:
        self.median = SlidingMedian(window, lookahead)
        self.baseline = OnlineBaseline(len(aus), calibration) if calibration and calibration.enabled else None
        self.events = EventDetector(aus, track_id, thresholds, events)
        self.pending: deque[_Pending] = deque()
        self.view_probs: np.ndarray | None = None
        self.last_seen: _FrameMeta = (0, 0, 0.0, None)


class Pipeline:
    """Face -> flow -> engine -> median, one frame at a time. Not thread-safe: one per stream."""

    def __init__(
        self,
        config: PipelineConfig | None = None,
        engine: AUEngine | None = None,
        detector: FaceDetector | None = None,
    ) -> None:
        t_load = time.perf_counter()
        self.config = config or PipelineConfig()
        # on the GPU path the detectors run in GpuFramePath; the engine here only gives the view classifier
        self.engine = engine or load_engine(self.config.engine, self.config.runtime, self.config.threads,
                                            detectors=self.config.device == "cpu")
        m = self.engine.manifest
        self.aus = m.aus
        self.window = self.config.median_window or m.median_window
        check_window(self.window, self.config.lookahead)
        if self.config.view_every < 1:
            raise ConfigError(f"view_every must be >= 1, got {self.config.view_every}")
        phase = self.config.view_phase
        self._view_phase = self.config.view_every // 2 if phase is None else phase % self.config.view_every
        self.thresholds = np.array([m.threshold(a) for a in m.aus], dtype=np.float32)
        self.flow_config = m.flow
        self.flow = create_flow_backend(self.config.flow or m.flow.backend)
        self.gpu: GpuFramePath | None = None
        if self.config.device != "cpu":
            from aunets.stream.frame_path_start import open_frame_path

            self.gpu = open_frame_path(self.engine.path, self.config.device, self.config.margin, self.config.threads,
                                       self.config.flow)
        self.tracker = FaceTracker(detector or OrtYuNetDetector(), self.config.tracker)
        import_s = self.gpu.startup.get("import_s", 0.0) if self.gpu is not None else 0.0
        self.startup: dict[str, float] = {"import_s": import_s,
                                          "load_s": round(time.perf_counter() - t_load - import_s, 3)}
        """Start-up seconds: ``import_s`` (torch, for the frame path), ``load_s`` (engine, detectors, tracker);
        :meth:`warmup` adds ``warmup_s``."""
        self.tracking_in_capture = detector is None
        """The default YuNet tracking can run in the capture process (see :func:`aunets.stream.runner.run_stream`)."""
        self.frame_rate: float | None = None
        """A file's frame rate: the events' minimum durations count its frames (index / rate) instead of
        capture time, so a file gives the same states at any processing speed. None: capture time (live)."""
        self._prev_gray: np.ndarray | None = None
        self._tracks: dict[int, _TrackState] = {}
        self.timings: dict[str, float] = {"detect": 0.0, "flow": 0.0, "view": 0.0, "engine": 0.0, "median": 0.0}
        """Seconds spent per stage over the stream; ``flow`` includes cropping, ``view`` the view classifier."""

    def warmup(self, frame_shape: tuple[int, ...]) -> float:
        """Before the first frame of a stream of ``frame_shape`` (H, W, 3) frames: compile and capture what the
        frame path needs for up to ``tracker.max_faces`` faces (see :meth:`GpuFramePath.warmup`); the CPU
        path's engine is already warm. Returns the seconds spent."""
        seconds = self.gpu.warmup(frame_shape, self.config.tracker.max_faces) if self.gpu is not None else 0.0
        self.startup["warmup_s"] = round(seconds, 3)
        return seconds

    @property
    def latency_frames(self) -> int:
        """Frames of delay added by the median's look-ahead."""
        return self.config.lookahead

    def process(self, frame: Frame) -> list[FaceResult]:
        """Process one frame; returns the results that became final (frame ``index - lookahead``)."""
        m = self.engine.manifest
        spec = m.input
        t0 = time.perf_counter()
        tracks = list(frame.tracks) if frame.tracks is not None else self.tracker.update(frame.image)
        t1 = time.perf_counter()
        meta = (frame.index, frame.t_capture_ns, frame.t_wall, frame.t_media)
        results: list[FaceResult] = []
        live_ids = {t.track_id for t in tracks}
        for track_id, state in list(self._tracks.items()):
            # a track missed in this frame keeps its median and events until the tracker would have dropped it
            if track_id not in live_ids and frame.index - state.last_seen[0] > self.config.tracker.max_misses:
                results.extend(self._end_track(track_id))
        height, width = frame.image.shape[:2]
        poses = [None if t.landmarks is None else estimate_head_pose(t.landmarks, width, height) for t in tracks]
        if self.gpu is not None:
            return results + self._process_gpu(frame, tracks, meta, t0, t1, poses)
        # the previous frame is only needed (in grey) for the flow of engines that use it
        gray = cv2.cvtColor(frame.image, cv2.COLOR_BGR2GRAY) if spec.uses_flow else None
        if not tracks:
            self._prev_gray = gray
            self.timings["detect"] += t1 - t0
            results.append(FaceResult(frame.index, frame.t_capture_ns, frame.t_wall, t_media=frame.t_media))
            return results

        prev = self._prev_gray if self._prev_gray is not None else gray
        rgbs = [cv2.cvtColor(crop_square(frame.image, t.box, self.config.margin, spec.height), cv2.COLOR_BGR2RGB)
                for t in tracks]
        flow_imgs: list[np.ndarray | None] = [None] * len(tracks)
        if prev is not None:  # the engine uses flow: every face's pair in one call where the backend batches
            fc = self.flow_config
            prevs = [crop_square(prev, t.box, self.config.margin, spec.height) for t in tracks]
            curs = [cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY) for rgb in rgbs]
            flow_imgs = [encode_flow(f, fc.encoding, fc.clip_fraction) for f in compute_flows(self.flow, prevs, curs)]
        samples = np.stack([compose_input(rgb, f, spec) for rgb, f in zip(rgbs, flow_imgs, strict=True)])
        t2 = time.perf_counter()
        views = self._views(tracks, rgbs, frame.index)
        t3 = time.perf_counter()
        probs, intensity = self.engine.infer(samples, views)  # one batched call for every track of the frame
        t4 = time.perf_counter()
        results.extend(self._smooth(tracks, views, probs, meta, intensity, poses))
        t5 = time.perf_counter()
        self._prev_gray = gray
        self.timings["detect"] += t1 - t0
        self.timings["flow"] += t2 - t1
        self.timings["view"] += t3 - t2
        self.timings["engine"] += t4 - t3
        self.timings["median"] += t5 - t4
        return results

    def _smooth(self, tracks: list[Track], views: list[int], probs: np.ndarray, meta: _FrameMeta,
                intensity: np.ndarray | None = None,
                poses: list[HeadPose | None] | None = None) -> list[FaceResult]:
        """Push one frame's probabilities (N, K), and intensities (N, K) when given, into each track's median
        (one median over both, side by side); the results that became final."""
        results = []
        for i, track in enumerate(tracks):
            state = self._state(track.track_id)
            pose = poses[i] if poses else None
            state.pending.append(_Pending(meta, track.box, track.score, views[i], probs[i], pose))
            state.last_seen = meta
            p = probs[i] if state.baseline is None else state.baseline.update(probs[i])
            out = state.median.push(p if intensity is None else np.concatenate([p, intensity[i]]))
            if out is not None:
                results.append(self._finish(track.track_id, state, out[1]))
        return results

    def _process_gpu(self, frame: Frame, tracks: list[Track], meta: _FrameMeta, t0: float,
                     t1: float, poses: list[HeadPose | None]) -> list[FaceResult]:
        """The GPU frame path: one upload, crop/flow/normalise/detectors on the GPU, probabilities back."""
        assert self.gpu is not None
        if not tracks:
            self.gpu.infer(frame.image, [])  # keeps the frame as the previous one
            self.timings["detect"] += t1 - t0
            return [FaceResult(frame.index, frame.t_capture_ns, frame.t_wall, t_media=frame.t_media)]
        size = self.engine.manifest.input.height
        rgbs = [cv2.cvtColor(crop_square(frame.image, t.box, self.config.margin, size), cv2.COLOR_BGR2RGB)
                if self.engine.has_view_classifier else None for t in tracks]
        views = self._views(tracks, rgbs, frame.index)
        t2 = time.perf_counter()
        probs, intensity = self.gpu.infer_full(frame.image, [t.box for t in tracks], views)
        t3 = time.perf_counter()
        results = self._smooth(tracks, views, probs, meta, intensity, poses=poses)
        self.timings["detect"] += t1 - t0
        self.timings["engine"] += t3 - t2
        self.timings["median"] += time.perf_counter() - t3
        return results

    def flush(self) -> list[FaceResult]:
        """End of stream: the results still held back by the look-ahead, and offsets of AUs still on."""
        results: list[FaceResult] = []
        for track_id in list(self._tracks):
            results.extend(self._end_track(track_id))
        self.tracker.reset()
        self._prev_gray = None
        if self.gpu is not None:
            self.gpu.reset()
        return results

    def _views(self, tracks: list[Track], rgbs: list[np.ndarray] | list[np.ndarray | None], index: int) -> list[int]:
        """Each track's view id. The classifier runs, in one batched call, on the RGB crops (``uint8`` HxWx3) of
        the tracks that are new or due (every ``view_every`` frames, see ``view_phase``); each track averages its own
        view probabilities over time, so a face turning away changes only its own view."""
        m = self.engine.manifest
        states = [self._state(t.track_id) for t in tracks]
        due = [i for i, (st, rgb) in enumerate(zip(states, rgbs, strict=True))
               if rgb is not None and self.engine.has_view_classifier
               and (st.view_probs is None or index % self.config.view_every == self._view_phase)]
        if due:
            batch = []
            for i in due:
                rgb = rgbs[i]
                assert rgb is not None
                if rgb.shape[:2] != (m.input.height, m.input.width):
                    rgb = cv2.resize(rgb, (m.input.width, m.input.height))
                batch.append(normalise(rgb, m.input))
            probs = self.engine.classify_view(np.stack(batch))
            assert probs is not None
            for row, i in enumerate(due):
                st = states[i]
                st.view_probs = probs[row] if st.view_probs is None else 0.5 * st.view_probs + 0.5 * probs[row]
        return [m.default_view if st.view_probs is None else int(np.argmax(st.view_probs)) for st in states]

    def _state(self, track_id: int) -> _TrackState:
        if track_id not in self._tracks:
            self._tracks[track_id] = _TrackState(track_id, self.aus, self.window, self.config.lookahead,
                                                 self.config.calibration, self.thresholds, self.config.events)
        return self._tracks[track_id]

    def _finish(self, track_id: int, state: _TrackState, smoothed: np.ndarray) -> FaceResult:
        p = state.pending.popleft()
        k = len(self.aus)
        smoothed, intensity = smoothed[:k], smoothed[k:]
        index, t_ns, t_wall, t_media = p.frame
        # durations count in the file's own time (its presentation times, else frames / rate), wall time live
        t = t_media if t_media is not None else index / self.frame_rate if self.frame_rate else t_wall
        on, events = state.events.update(smoothed, p.probs, index, t_wall, t)
        if len(intensity):  # OpenFace's AUxx_r: 0 while the AU is absent (state off), the head's intensity while on
            intensity = np.where(on, np.maximum(intensity, 0.0), 0.0)
        return FaceResult(
            frame_index=index,
            t_capture_ns=t_ns,
            t_wall=t_wall,
            track_id=track_id,
            box=p.box,
            confidence=p.confidence,
            view=p.view,
            probabilities={a: float(v) for a, v in zip(self.aus, p.probs, strict=True)},
            smoothed={a: float(v) for a, v in zip(self.aus, smoothed, strict=True)},
            states={a: bool(v) for a, v in zip(self.aus, on, strict=True)},
            events=tuple(events),
            intensity={a: float(v) for a, v in zip(self.aus, intensity, strict=True)} if len(intensity) else {},
            t_media=t_media,
            pose=p.pose,
        )

    def _end_track(self, track_id: int) -> list[FaceResult]:
        """Results held back by the look-ahead, then an events-only result with offsets of AUs still on."""
        state = self._tracks.pop(track_id)
        results = [self._finish(track_id, state, smoothed) for _, smoothed in state.median.flush()]
        index, t_ns, t_wall, t_media = state.last_seen
        closing = state.events.close(index, t_wall)
        if closing:
            results.append(FaceResult(index, t_ns, t_wall, track_id=track_id, events=tuple(closing), t_media=t_media))
        return results
