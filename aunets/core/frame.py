"""A captured video frame with its index and capture timestamps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from aunets.core.face import Track


@dataclass(frozen=True, eq=False)
class Frame:
    """One frame from a capture source.

    ``index``: 0-based position in the source (gaps mean dropped frames on live sources).
    ``t_capture_ns``: ``time.monotonic_ns()`` right after the frame was read (the same clock in every process).
    ``t_wall``: ``time.time()`` at the same moment, in seconds since the epoch.
    ``image``: ``uint8`` HxWx3, BGR (OpenCV order). When the frame comes from the capture process
    (:mod:`aunets.stream.capture`) it is a view into shared memory, valid until the next frame is requested:
    copy what you keep.
    ``tracks``: the faces tracked in this frame when the capture process tracked them (largest first), else
    None and the pipeline tracks faces itself.
    ``t_media``: the frame's presentation time in a video file or image folder, in seconds from its first frame
    (the container's real time stamps, also on variable-frame-rate files); None for live sources.
    """

    index: int
    t_capture_ns: int
    t_wall: float
    image: np.ndarray
    tracks: tuple[Track, ...] | None = None
    t_media: float | None = None
