"""Face detection (YuNet), tracking across frames, and the square face crop.

Boxes are ``(x, y, w, h)`` in frame pixels (floats). The crop is a square of side ``margin * max(w, h)``
centred on the box, resized to ``size x size``; the part outside the frame is filled by replicating the
border. The same :func:`crop_square` is used by the runtime, the synthetic generator and training.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from stream.errors import ConfigError

log = logging.getLogger(__name__)

Box = tuple[float, float, float, float]


def default_yunet_path() -> Path:
    """Path of the bundled YuNet model (Apache-2.0, see ``stream/assets/yunet/LICENSE``)."""
    return Path(str(resources.files("stream") / "assets" / "yunet" / "face_detection_yunet_2023mar.onnx"))


def crop_square(frame: np.ndarray, box: Box, margin: float = 1.3, size: int = 224) -> np.ndarray:
    """Square crop around ``box`` (x, y, w, h in pixels) of side ``margin * max(w, h)``, resized to ``size``.

    Works for any number of channels (BGR, RGB or grayscale). Area outside the frame is border-replicated.
    Returns a new ``uint8`` array of shape (size, size[, C]).
    """
    x, y, w, h = box
    side = max(2.0, margin * max(w, h))
    cx, cy = x + w / 2.0, y + h / 2.0
    x0, y0 = round(cx - side / 2.0), round(cy - side / 2.0)
    s = round(side)
    x1, y1 = x0 + s, y0 + s
    H, W = frame.shape[:2]
    ix0, iy0, ix1, iy1 = max(0, x0), max(0, y0), min(W, x1), min(H, y1)
    if ix1 <= ix0 or iy1 <= iy0:
        raise ValueError(f"face box {box} lies outside the {W}x{H} frame")
    patch = frame[iy0:iy1, ix0:ix1]
    if (ix0, iy0, ix1, iy1) != (x0, y0, x1, y1):
        patch = cv2.copyMakeBorder(patch, iy0 - y0, y1 - iy1, ix0 - x0, x1 - ix1, cv2.BORDER_REPLICATE)
    elif s == size:  # already the size: a copy, never a view into the frame (flow needs contiguous arrays)
        return patch.copy()
    return shrink(patch, size, size)


def shrink(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize to ``width`` x ``height``: area averaging when shrinking, bilinear when enlarging.

    Large reductions first halve the image with OpenCV's integer-factor area path (dropping an odd last
    row/column): 2.5x faster than one large INTER_AREA step and within 1 grey level of it on average.
    """
    while image.shape[1] >= 2 * width and image.shape[0] >= 2 * height:
        h, w = image.shape[0] // 2, image.shape[1] // 2
        image = cv2.resize(image[: 2 * h, : 2 * w], (w, h), interpolation=cv2.INTER_AREA)
    if (image.shape[1], image.shape[0]) == (width, height):
        return image
    interp = cv2.INTER_AREA if image.shape[1] > width else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interp)


@dataclass(frozen=True)
class Detection:
    """One detected face: ``box`` (x, y, w, h) px, ``score`` in [0, 1], ``landmarks`` (5, 2) px."""

    box: Box
    score: float
    landmarks: np.ndarray = field(repr=False, compare=False)


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
            raise ConfigError(f"YuNet model {path} not found; reinstall aunets (it ships in stream/assets/yunet)")
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
    ``max_faces``: tracks reported per frame, largest first.
    """

    detect_every: int = 5
    smoothing: float = 0.6
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
        if self.max_faces < 1:
            raise ConfigError(f"max_faces must be >= 1, got {self.max_faces}")
        if self.max_misses < 0:
            raise ConfigError(f"max_misses must be >= 0, got {self.max_misses}")


@dataclass
class Track:
    """A face followed across frames; ``box`` is the smoothed box, ``misses`` consecutive failed detections."""

    track_id: int
    box: Box
    score: float
    misses: int = 0
    age: int = 0

    @property
    def area(self) -> float:
        return self.box[2] * self.box[3]


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
            a = cfg.smoothing
            track.box = tuple(a * n + (1 - a) * o for n, o in zip(best.box, track.box, strict=True))  # type: ignore[assignment]
            track.score = best.score
            track.misses = 0
        if new_tracks:
            for det in unmatched:
                self.tracks.append(Track(track_id=self._next_id, box=det.box, score=det.score))
                self._next_id += 1
        return missed


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


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0
