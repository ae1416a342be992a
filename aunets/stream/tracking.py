"""Face detection (YuNet) and tracking across frames.

Boxes are ``(x, y, w, h)`` in frame pixels (floats); the types are in :mod:`aunets.core.face`, the crop in
:mod:`aunets.core.crop`.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from aunets.core.crop import shrink
from aunets.core.errors import ConfigError
from aunets.core.face import Box, Detection, Track, iou

log = logging.getLogger(__name__)


def default_yunet_path() -> Path:
    """Path of the bundled YuNet model (Apache-2.0, see ``aunets/stream/assets/yunet/LICENSE``)."""
    return Path(str(resources.files("aunets.stream") / "assets" / "yunet" / "face_detection_yunet_2023mar.onnx"))


class FaceDetector(Protocol):
    """Finds faces in a BGR ``uint8`` HxWx3 frame."""

    def detect(self, frame: np.ndarray) -> list[Detection]: ...


class YuNetDetector:
    """YuNet through ``cv2.FaceDetectorYN``, run on a copy of the frame scaled to ``input_width`` pixels wide.

    One network is kept per input size (the tracker alternates full frames and small regions).
    """

    def __init__(
        self,
        model: Path | None = None,
        score_threshold: float = 0.6,
        nms_threshold: float = 0.3,
        input_width: int = 320,
    ) -> None:
        path = model or default_yunet_path()
        if not Path(path).is_file():
            raise ConfigError(f"YuNet model {path} not found; reinstall aunets (it ships in aunets/stream/assets)")
        self._path = str(path)
        self._score = score_threshold
        self._nms = nms_threshold
        self._input_width = input_width
        self._detectors: dict[tuple[int, int], cv2.FaceDetectorYN] = {}

    def detect(self, frame: np.ndarray) -> list[Detection]:
        H, W = frame.shape[:2]
        scale = min(1.0, self._input_width / W)
        size = (max(1, round(W * scale)), max(1, round(H * scale)))
        small = frame if scale == 1.0 else shrink(frame, *size)
        detector = self._detectors.get(size)
        if detector is None:
            _quiet_opencv()
            detector = cv2.FaceDetectorYN.create(self._path, "", size, self._score, self._nms, 50)
            self._detectors[size] = detector
        _, faces = detector.detect(small)
        if faces is None:
            return []
        inv = 1.0 / scale
        out = []
        for row in faces:
            box = (float(row[0]) * inv, float(row[1]) * inv, float(row[2]) * inv, float(row[3]) * inv)
            out.append(Detection(box=box, score=float(row[14]), landmarks=row[4:14].reshape(5, 2) * inv))
        return out


@dataclass(frozen=True)
class TrackerConfig:
    """Face tracking.

    Every ``detect_every`` frames (or when there is no track) the detector runs on the whole frame, to find
    new faces. On the other frames each track is re-detected inside a region around it (``roi_scale`` times
    the box side, resized to ``roi_size`` px): cheap, and it confirms that a face is still there, so AU values
    are never computed on background; a track the full-frame pass misses (a small or partly hidden face) is
    looked for in its region too. A missed track is not reported for that frame, but keeps its id (and, in
    the pipeline, its median and AU states) through up to ``max_misses`` missed frames in a row (12: 0.48 s
    at 25 fps: a hand passing, a blink of the detector); after that it ends, and a face that comes back later
    gets a new id. ``smoothing``: weight of the new detection in the exponential box smoothing (1 = none).
    ``hold``: a detection whose centre is within this fraction of the box side of the track's box, and whose
    side is within twice it, leaves the box where it is, so a still face's crop stays still: on a still face the
    full-frame and the region passes disagree by ~2.5 % of the side in centre and ~5 % in side, and the crop
    following them moves every AU output (benchmarks/stillness.py). A slow drift moves the box once it adds up to
    more (0 = always follow).
    ``max_faces``: tracks reported per frame, largest first.
    """

    detect_every: int = 5
    smoothing: float = 0.6
    hold: float = 0.04
    max_misses: int = 12
    iou_match: float = 0.3
    roi_scale: float = 2.0
    roi_size: int = 128
    max_faces: int = 1

    def __post_init__(self) -> None:
        if self.detect_every < 1:
            raise ConfigError(f"detect_every must be >= 1, got {self.detect_every}")
        if not 0 < self.smoothing <= 1:
            raise ConfigError(f"smoothing must be in (0, 1], got {self.smoothing}")
        if not 0 <= self.hold < 0.5:
            raise ConfigError(f"hold must be in [0, 0.5) (a fraction of the box side), got {self.hold}")
        if self.max_faces < 1:
            raise ConfigError(f"max_faces must be >= 1, got {self.max_faces}")
        if self.max_misses < 0:
            raise ConfigError(f"max_misses must be >= 0, got {self.max_misses}")


class FaceTracker:
    """Full-frame detection every N frames, per-track region re-detection in between, IoU matching, smoothing."""

    def __init__(self, detector: FaceDetector, config: TrackerConfig | None = None) -> None:
        self.detector = detector
        self.config = config or TrackerConfig()
        self.tracks: list[Track] = []
        self._next_id = 0
        self._since_full = 0

    def reset(self) -> None:
        self.tracks = []
        self._since_full = 0

    def update(self, frame: np.ndarray) -> list[Track]:
        """Advance one frame; returns the tracks seen in it (largest first, at most ``max_faces``)."""
        cfg = self.config
        if not self.tracks or self._since_full + 1 >= cfg.detect_every:
            for track in self._associate(self.tracks, self.detector.detect(frame), new_tracks=True):
                # missed by the full-frame pass (small or partly hidden faces): look again in its region
                track.misses -= 1
                self._associate([track], self._detect_around(frame, track.box), new_tracks=False)
            self._since_full = 0
        else:
            self._since_full += 1
            for track in list(self.tracks):
                self._associate([track], self._detect_around(frame, track.box), new_tracks=False)
        self.tracks = _unique([t for t in self.tracks if t.misses <= cfg.max_misses])
        for t in self.tracks:
            t.age += 1
        seen = [t for t in self.tracks if t.misses == 0]
        return sorted(seen, key=lambda t: -t.area)[: cfg.max_faces]

    def _detect_around(self, frame: np.ndarray, box: Box) -> list[Detection]:
        cfg = self.config
        H, W = frame.shape[:2]
        side = cfg.roi_scale * max(box[2], box[3])
        cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
        x0, y0 = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
        x1, y1 = int(min(W, cx + side / 2)), int(min(H, cy + side / 2))
        if x1 - x0 < 8 or y1 - y0 < 8:
            return []
        roi = frame[y0:y1, x0:x1]
        scale = cfg.roi_size / max(roi.shape[:2])
        small = shrink(roi, max(1, round(roi.shape[1] * scale)), max(1, round(roi.shape[0] * scale)))
        inv = 1.0 / scale
        return [
            Detection((d.box[0] * inv + x0, d.box[1] * inv + y0, d.box[2] * inv, d.box[3] * inv), d.score,
                      d.landmarks * inv + np.array([x0, y0], dtype=np.float32))
            for d in self.detector.detect(small)
        ]

    def _associate(self, tracks: list[Track], detections: list[Detection], new_tracks: bool) -> list[Track]:
        """Match detections to ``tracks`` (largest first, by IoU); returns the tracks that got none."""
        cfg = self.config
        unmatched = list(detections)
        missed = []
        for track in sorted(tracks, key=lambda t: -t.area):
            best, best_iou = None, cfg.iou_match
            for det in unmatched:
                overlap = iou(track.box, det.box)
                if overlap > best_iou:
                    best, best_iou = det, overlap
            if best is None:
                track.misses += 1
                missed.append(track)
                continue
            unmatched.remove(best)
            if not _within(best.box, track.box, cfg.hold):
                a = cfg.smoothing
                track.box = tuple(a * n + (1 - a) * o for n, o in zip(best.box, track.box, strict=True))  # type: ignore[assignment]
            track.score = best.score
            track.landmarks = best.landmarks
            track.misses = 0
        if new_tracks:
            for det in unmatched:
                self.tracks.append(Track(track_id=self._next_id, box=det.box, score=det.score,
                                         landmarks=det.landmarks))
                self._next_id += 1
        return missed


def _within(new: Box, old: Box, fraction: float) -> bool:
    """Whether ``new``'s centre is within ``fraction`` of ``old``'s side of ``old``'s centre, and its side within
    twice that."""
    side = max(old[2], old[3])
    shift = max(abs(new[0] + new[2] / 2 - old[0] - old[2] / 2), abs(new[1] + new[3] / 2 - old[1] - old[3] / 2))
    return shift < fraction * side and abs(max(new[2], new[3]) - side) < 2 * fraction * side


def _unique(tracks: list[Track], overlap: float = 0.5) -> list[Track]:
    """Drop a track whose box overlaps an older one's (IoU > ``overlap``): one face, one track."""
    kept: list[Track] = []
    for track in sorted(tracks, key=lambda t: t.track_id):
        if all(iou(track.box, k.box) <= overlap for k in kept):
            kept.append(track)
    return [t for t in tracks if t in kept]


def _quiet_opencv() -> None:
    """OpenCV 5's DNN engine warns on every model load that it ignores preferable targets; hide that."""
    with contextlib.suppress(AttributeError):  # older OpenCV has no cv2.utils.logging
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


