"""Where the frame-to-frame jitter of the output on a still face comes from.

A still photo made into a clip (:func:`aunets.models.realface_benchmark.clip_path`) shows the same face in every
frame but for the codec; any change of the raw probability between its frames is jitter. The pipeline is run on
such a clip with one source of change removed at a time (:class:`StillCondition`):

* ``exact_frames``: the first decoded frame repeated bit for bit (no codec noise at all);
* ``tracker_hold``: the tracker's ``hold`` (:class:`~aunets.stream.tracking.TrackerConfig`; 0 = the box follows
  every detection, as before the hold existed; None = the default);
* ``hold_box``: frame 0's face box held for every frame (the crop no longer follows the detector's box jitter);
* ``zero_flow``: a flow of 0 everywhere (no flow computed on codec noise);
* ``runtime="torch"``: the float weights instead of the int8 ONNX model;
* ``fixed_view``: the view classifier runs on the first frame only (no view switching).

:func:`still_jitter` gives the mean |p(i) - p(i-1)| per AU over the still pairs (frames 2 on) and what moved
underneath: the box (|Δ| of x, y and side over the box side) and the flow (mean magnitude in crop pixels).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from aunets.core.frame import Frame

log = logging.getLogger(__name__)

FIRST_PAIR = 2
"""Pairs (i - 1, i) from this frame on are scored (frame 0 has no previous frame for the flow)."""


@dataclass(frozen=True)
class StillCondition:
    """One way of running the pipeline on a still clip; see the module docstring. ``name`` labels it."""

    name: str
    tracker_hold: float | None = None
    exact_frames: bool = False
    hold_box: bool = False
    zero_flow: bool = False
    runtime: str = "onnx"
    fixed_view: bool = False


class ZeroFlow:
    """A flow backend that reports no motion (float32 HxWx2 zeros): the ``zero_flow`` condition."""

    name = "zero"

    def compute(self, prev: np.ndarray, cur: np.ndarray) -> np.ndarray:
        return np.zeros((*cur.shape[:2], 2), np.float32)


class _MeasuredFlow:
    """Wraps a flow backend and keeps the mean flow magnitude (px) of every pair it computes."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name
        self.magnitudes: list[float] = []

    def compute(self, prev: np.ndarray, cur: np.ndarray) -> np.ndarray:
        flow = np.asarray(self.inner.compute(prev, cur))
        self.magnitudes.append(float(np.linalg.norm(flow, axis=-1).mean()))
        return flow


def decode(video: Path, limit: int = 50) -> list[np.ndarray]:
    """Up to ``limit`` BGR frames of ``video``."""
    cap = cv2.VideoCapture(str(video))
    frames: list[np.ndarray] = []
    while len(frames) < limit:
        ok, image = cap.read()
        if not ok:
            break
        frames.append(image)
    cap.release()
    if not frames:
        raise RuntimeError(f"cannot decode {video}")
    return frames


def still_jitter(video: Path, condition: StillCondition, engine: Path | None = None) -> dict[str, Any]:
    """The pipeline on the still clip ``video`` under ``condition``: ``dp`` (P, K) |Δ raw probability| of the
    still pairs, ``box_motion`` mean |Δ| of box x, y and side over the box side, ``flow_px`` mean flow magnitude in
    crop pixels (None under ``zero_flow``), ``aus``."""
    from aunets.core.face import Track
    from aunets.stream.pipeline import Pipeline, PipelineConfig
    from aunets.stream.tracking import TrackerConfig, YuNetDetector

    frames = decode(video)
    if condition.exact_frames:
        frames = [frames[0]] * len(frames)
    tracker = TrackerConfig() if condition.tracker_hold is None else TrackerConfig(hold=condition.tracker_hold)
    config = PipelineConfig(engine=engine, runtime=condition.runtime, tracker=tracker,
                            view_every=10**9 if condition.fixed_view else PipelineConfig.view_every)  # fmt: skip
    pipeline = Pipeline(config)
    measured = _MeasuredFlow(ZeroFlow() if condition.zero_flow else pipeline.flow)
    pipeline.flow = measured
    held: tuple[Track, ...] | None = None
    if condition.hold_box:
        faces = YuNetDetector().detect(frames[0])
        if not faces:
            raise RuntimeError(f"no face in the first frame of {video}")
        best = max(faces, key=lambda d: d.box[2] * d.box[3])
        held = (Track(0, best.box, best.score),)
    results = []
    for i, image in enumerate(frames):
        results += pipeline.process(Frame(i, i * 40_000_000, i / 25.0, image, held))
    results += pipeline.flush()
    rows = {r.frame_index: r for r in results if not r.no_face and not r.events_only}
    aus = tuple(pipeline.aus)
    raw = np.full((len(frames), len(aus)), np.nan)
    boxes = np.full((len(frames), 3), np.nan)
    for i, r in rows.items():
        raw[i] = [r.probabilities[a] for a in aus]
        assert r.box is not None
        x, y, w, h = r.box
        side = max(w, h)
        boxes[i] = (x + w / 2, y + h / 2, side)
    dp = np.abs(np.diff(raw, axis=0))[FIRST_PAIR - 1 :]
    db = np.abs(np.diff(boxes, axis=0))[FIRST_PAIR - 1 :] / boxes[FIRST_PAIR:, 2:3]
    return {"aus": aus, "dp": dp[~np.isnan(dp).any(axis=1)],
            "box_motion": float(np.nanmean(db)) if np.isfinite(db).any() else None,
            "flow_px": None if condition.zero_flow else float(np.mean(measured.magnitudes[FIRST_PAIR - 1 :]))}
