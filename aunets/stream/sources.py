"""Capture sources: a webcam index (``"0"``), any video file or URL OpenCV opens, or a folder of images.

A source opens to a :class:`SourceInfo` and then yields BGR ``uint8`` HxWx3 frames until it ends; a file
that stops early is told apart from its end (:attr:`SourceInfo` carries the announced frame count). A file's
frames carry their real presentation times (:meth:`CaptureSource.timestamp`), which on a variable-frame-rate
file differ from ``index / fps`` by up to seconds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from aunets.core.errors import SourceError

log = logging.getLogger(__name__)


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_HINT = "mp4, avi, mkv, mov or webm (H.264/MPEG-4/MJPEG/VP8/VP9)"
END_TOLERANCE_FRAMES = 3
END_TOLERANCE_FRACTION = 0.02
"""A file that stops decoding at most max(3 frames, 2 %) before the frame count its container announces has
ended (ASF/WMV, MKV and WebM containers estimate the count from the duration); more is damage. On a
variable-frame-rate file the estimate (duration x nominal rate) can be off by far more, so the end is also judged
by time: the last frame's presentation time within the same tolerance of the announced duration is the end."""


@dataclass(frozen=True)
class SourceInfo:
    """What a source reports once open. ``fps`` is 0 when unknown; ``frame_count`` -1 when unknown/live."""

    description: str
    width: int
    height: int
    fps: float
    frame_count: int
    live: bool


class CaptureSource(Protocol):
    """A source of BGR ``uint8`` HxWx3 frames, opened and read inside the capture process."""

    def open(self) -> SourceInfo: ...

    def read(self) -> np.ndarray | None:
        """The next frame, or None at the end of the source. Raises :class:`SourceError` on a damaged frame."""
        ...

    def timestamp(self) -> float | None:
        """Presentation time of the frame last read, in seconds from the source's first frame; None for live
        sources (cameras, streams), whose frames are timed by their capture."""
        ...

    def close(self) -> None: ...


class VideoSource:
    """A video file, URL, or camera index through ``cv2.VideoCapture``."""

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self._cap: cv2.VideoCapture | None = None
        self._count = -1
        self._read = 0
        self._fps = 0.0
        self._pts: float | None = None

    @property
    def is_camera(self) -> bool:
        return self.spec.isdigit()

    @property
    def is_url(self) -> bool:
        return "://" in self.spec

    def open(self) -> SourceInfo:
        if self.is_camera:
            level = cv2.utils.logging.getLogLevel()
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # its raw [ERROR] lines: ours says it
            try:
                cap = cv2.VideoCapture(int(self.spec))
            finally:
                cv2.utils.logging.setLogLevel(level)
            if not cap.isOpened():
                raise SourceError(
                    f"camera {self.spec} does not open; check that it is connected and not used by another program, "
                    f"or pass a video file instead (e.g. media/pexels_wolfganglanger_expressions.mp4)"
                )
        else:
            if not self.is_url:
                path = Path(self.spec)
                if not path.exists():
                    raise SourceError(f"video file {path} does not exist; check the path")
                if not path.is_file():
                    raise SourceError(f"{path} is not a file; for a folder of images it must contain {IMAGE_SUFFIXES}")
            cap = cv2.VideoCapture(self.spec)
            if not cap.isOpened() and self.is_url:
                raise SourceError(
                    f"cannot open the stream {self.spec}: the server refused or did not answer, or it serves no "
                    f"video OpenCV reads; check that the server is running and the URL (try it in ffplay or VLC)"
                )
            if not cap.isOpened():
                raise SourceError(
                    f"OpenCV cannot open {self.spec}: not a supported video ({VIDEO_HINT}) or unreadable; "
                    f"convert it with `ffmpeg -i INPUT -c:v libx264 out.mp4`"
                )
        ok, first = cap.read()
        if not ok or first is None:
            cap.release()
            raise SourceError(
                f"{self.spec} opened but no frame could be decoded: unsupported codec or damaged file; "
                f"convert it with `ffmpeg -i INPUT -c:v libx264 out.mp4`"
            )
        self._cap = cap
        self._first: np.ndarray | None = first
        self._first_pts = self._position()
        self._count = -1 if self.is_camera or self.is_url else int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        fps = self._fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        return SourceInfo(self.spec, first.shape[1], first.shape[0], fps, self._count, self.is_camera or self.is_url)

    def read(self) -> np.ndarray | None:
        assert self._cap is not None
        if self._first is not None:
            frame, self._first = self._first, None
            self._read += 1
            self._pts = self._first_pts
            return frame
        ok, frame = self._cap.read()
        if not ok or frame is None:
            missing = self._count - self._read
            if (self._count > 0 and missing > max(END_TOLERANCE_FRAMES, END_TOLERANCE_FRACTION * self._count)
                    and not self._at_announced_duration()):
                raise SourceError(
                    f"{self.spec}: frame {self._read} of {self._count} could not be decoded (damaged file); the rows "
                    f"before it were kept; repair it with `ffmpeg -i INPUT -c:v libx264 out.mp4` and run again"
                )
            if self._count > 0 and missing > 0:
                log.warning("%s: the container announced %d frames and %d decoded: taken as the end of the file "
                            "(an estimated frame count, not damage)", self.spec, self._count, self._read)
            return None
        self._read += 1
        self._pts = self._position()
        return frame

    def _position(self) -> float | None:
        """The decoded frame's presentation time from the stream's start: OpenCV's FFmpeg backend reports it
        exactly (the same as PyAV's ``frame.time - stream.start_time`` on variable-frame-rate files, measured
        in tests/test_capture.py), falling back to ``index / fps`` where the container has none."""
        if self.is_camera or self.is_url:
            return None
        assert self._cap is not None
        ms = float(self._cap.get(cv2.CAP_PROP_POS_MSEC))
        return ms / 1000.0 if ms >= 0.0 else None

    def _at_announced_duration(self) -> bool:
        """Whether the last frame read is at the end of the duration the container announces (frame count /
        nominal rate, the estimate's own basis), within max(3 mean frame intervals, 2 %)."""
        if self._pts is None or self._fps <= 0 or self._read < 2:
            return False
        duration = self._count / self._fps
        interval = self._pts / (self._read - 1)
        return duration - self._pts <= max(END_TOLERANCE_FRAMES * interval, END_TOLERANCE_FRACTION * duration)

    def timestamp(self) -> float | None:
        return self._pts

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class ImageFolderSource:
    """A folder of images in name order; every image is resized to the first one's size if it differs."""

    def __init__(self, folder: str, fps: float = 25.0) -> None:
        self.folder = Path(folder)
        self.fps = fps
        self._files: list[Path] = []
        self._i = 0
        self._size: tuple[int, int] = (0, 0)
        self.videos: list[Path] = []
        """Videos beside the images (not read: a folder is one image sequence)."""

    def open(self) -> SourceInfo:
        self._files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        self.videos = videos_in(self.folder)
        if not self._files and self.videos:
            raise SourceError(f"folder {self.folder} has no images but {len(self.videos)} video(s) "
                              f"({_names(self.videos)}): give one video's path, or run them all with `aunets batch "
                              f"{self.folder} --out DIR`")  # fmt: skip
        if not self._files:
            raise SourceError(f"folder {self.folder} has no images ({', '.join(IMAGE_SUFFIXES)})")
        first = self._load(self._files[0])
        self._size = (first.shape[1], first.shape[0])
        return SourceInfo(str(self.folder), first.shape[1], first.shape[0], self.fps, len(self._files), False)

    def _load(self, path: Path) -> np.ndarray:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise SourceError(f"image {path} cannot be decoded (damaged or not an image); remove or replace it")
        return image

    def read(self) -> np.ndarray | None:
        if self._i >= len(self._files):
            return None
        image = self._load(self._files[self._i])
        self._i += 1
        if (image.shape[1], image.shape[0]) != self._size:
            image = cv2.resize(image, self._size)
        return image

    def timestamp(self) -> float | None:
        """Image ``i`` (0-based, name order) is at ``i / fps`` seconds."""
        return (self._i - 1) / self.fps if self._i > 0 else None

    def close(self) -> None:
        self._files = []


def probe(spec: str) -> SourceInfo:
    """Open ``spec`` in this process just to read its size, frame rate and length (files and folders)."""
    source = make_source(spec)
    try:
        info = source.open()
    finally:
        source.close()
    if isinstance(source, ImageFolderSource) and source.videos:
        log.warning("folder %s is read as a sequence of its %d image(s); its %d video(s) (%s) are not read: give "
                    "one video's path, or run them all with `aunets batch %s --out DIR`", spec, info.frame_count,
                    len(source.videos), _names(source.videos), spec)  # fmt: skip
    return info


def videos_in(folder: Path) -> list[Path]:
    """The video files directly in ``folder`` (by suffix, as ``aunets batch`` finds them), in name order."""
    from aunets.stream.corpus import VIDEO_SUFFIXES

    return sorted(p for p in folder.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())


def _names(paths: list[Path], most: int = 3) -> str:
    shown = ", ".join(p.name for p in paths[:most])
    return shown + (f" and {len(paths) - most} more" if len(paths) > most else "")


def make_source(spec: str) -> CaptureSource:
    """``"0"`` -> camera 0; a directory -> image folder; anything else -> video file or URL."""
    if not spec.isdigit() and Path(spec).is_dir():
        return ImageFolderSource(spec)
    return VideoSource(spec)
