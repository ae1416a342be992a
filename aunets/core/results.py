"""What the pipeline produces and every sink consumes: one face's result per frame, and AU events."""

from __future__ import annotations

from dataclasses import dataclass, field

from aunets.core.face import Box
from aunets.core.headpose import HeadPose


@dataclass(frozen=True)
class AUEvent:
    """An AU turning on (``onset``) or off (``offset``) in the smoothed state.

    ``frame_index`` and ``t_wall`` (seconds since the epoch, capture time) are those of the frame where the
    state changed. ``peak_probability`` is the highest raw probability since the onset (for an onset: at
    the onset frame). ``duration_s`` is the episode length for offsets (0 for onsets).
    """

    au: int
    kind: str
    frame_index: int
    t_wall: float
    track_id: int
    peak_probability: float
    duration_s: float = 0.0


@dataclass(frozen=True)
class FaceResult:
    """The result for one face track in one frame, or a ``no_face`` frame (``track_id`` None).

    ``box``: (x, y, w, h) in frame pixels. ``probabilities``: AU -> raw probability of this frame.
    ``smoothed``: AU -> median-filtered probability (re-based first when calibration is on). ``states``: AU ->
    on/off (smoothed against the threshold, with hysteresis and minimum durations). ``intensity``: AU ->
    median-filtered intensity 0..5 (FACS A..E, OpenFace's ``AUxx_r``), 0 while the AU's state is off; empty when
    the engine has no intensity output. ``events``: onsets/offsets at this frame. When a track ends, its open AUs
    get offsets in an extra :attr:`events_only` result (no probabilities; sinks publish only its events).
    ``t_capture_ns`` (monotonic) and ``t_wall`` (epoch seconds) are the capture times of this frame;
    ``t_media`` its presentation time in seconds in a video file (None for live sources). ``pose``: the head pose
    from the detector's landmarks (:mod:`aunets.core.headpose`; None when they are not known).
    """

    frame_index: int
    t_capture_ns: int
    t_wall: float
    track_id: int | None = None
    box: Box | None = None
    confidence: float = 0.0
    view: int | None = None
    probabilities: dict[int, float] = field(default_factory=dict)
    smoothed: dict[int, float] = field(default_factory=dict)
    states: dict[int, bool] = field(default_factory=dict)
    events: tuple[AUEvent, ...] = ()
    intensity: dict[int, float] = field(default_factory=dict)
    t_media: float | None = None
    pose: HeadPose | None = None

    @property
    def no_face(self) -> bool:
        return self.track_id is None

    @property
    def events_only(self) -> bool:
        """A track ended: this result only carries the offsets of AUs that were still on (no frame data)."""
        return self.track_id is not None and not self.probabilities
