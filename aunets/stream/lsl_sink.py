"""Lab Streaming Layer output (extra ``[lsl]``): AU values and AU events as LSL streams.

Two outlets. ``<name>`` (type ``AU``, float32): per AU, channels in this order: ``AUxx`` (the raw probability,
0..1), then ``AUxx_smoothed`` (after calibration and the sliding median, 0..1), ``AUxx_state`` (the on/off state
as 0/1, as ``au.frame``'s ``state``), ``AUxx_intensity`` (0..5, only for engines with an intensity output), then
``pose_pitch``, ``pose_yaw``, ``pose_roll`` (head pose in degrees, :mod:`aunets.core.headpose`; NaN when unknown)
and a last channel ``track`` (the face's track id). Every channel has a ``label``, ``unit``, ``type`` and
``description`` in the stream's ``desc/channels`` (what LabRecorder writes into the XDF file). One sample per
face per frame (with ``--max-faces N`` several samples share a frame's time stamp; split them by ``track``), and
one all-NaN sample for a frame with no face. ``<name>-events`` (type ``Markers``): strings like
``"AU12 onset track 0"``.

``nominal_srate`` is the source's frame rate when it is known and one face is tracked (0, irregular, otherwise).
``source_id`` is derived from the machine and the source (:func:`source_id`), so it is the same after a restart
(LabRecorder picks a restarted stream up again) and differs between two instances on different sources.
Samples are stamped with the frame's **capture** time: LSL's clock (``pylsl.local_clock()``) and
``time.monotonic()`` are the same clock on Linux, so LabRecorder aligns them with other streams exactly. Frames of
a video file are stamped at the first frame's capture time plus their presentation time in the file, so the
stream keeps the file's own timing (variable frame rates too) rather than the capture process's jitter.
"""

from __future__ import annotations

import hashlib
import logging
import math
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aunets.core.au import AU_NAMES, au_key
from aunets.core.errors import MissingExtraError

if TYPE_CHECKING:
    from aunets.core.results import FaceResult

log = logging.getLogger(__name__)

# (label suffix, unit, type, description) of each AU's channels, in stream order
_KINDS = (
    ("", "probability", "AUProbability", "raw per-frame probability"),
    ("_smoothed", "probability", "AUProbabilitySmoothed", "probability after calibration and the sliding median"),
    ("_state", "boolean", "AUState", "on/off state (1 on), as au.frame's state and the CSV's AUxx_c"),
    ("_intensity", "FACS intensity 0-5", "AUIntensity", "intensity after the sliding median (OpenFace's AUxx_r)"),
)


_POSE = (("pose_pitch", "positive: chin down"), ("pose_yaw", "positive: the face turns to the image's left"),
         ("pose_roll", "positive: the head tilts to the image's right"))


def require_pylsl() -> None:
    """Raise :class:`MissingExtraError` now (before a run starts) when pylsl is not installed."""
    try:
        import pylsl  # noqa: F401
    except ImportError as exc:
        raise MissingExtraError("pylsl", "lsl") from exc


def source_id(source: str, name: str = "AUNets") -> str:
    """A stable LSL ``source_id`` for ``source`` (a camera index, a file, a URL, or ``serve``) on this machine:
    ``aunets-`` and 16 hex digits of the SHA-256 of the host name, the source (a file: its absolute path) and the
    stream name."""
    path = Path(source)
    resolved = str(path.resolve()) if not source.isdigit() and path.exists() else source
    digest = hashlib.sha256(f"{socket.gethostname()}\n{resolved}\n{name}".encode()).hexdigest()
    return f"aunets-{digest[:16]}"


def channel_labels(aus: Sequence[int], intensity: bool) -> list[str]:
    """The data stream's channel labels, in order."""
    kinds = _KINDS if intensity else _KINDS[:3]
    return [f"{au_key(a)}{suffix}" for suffix, *_ in kinds for a in aus] + [name for name, _ in _POSE] + ["track"]


class LslOutlet:
    """A :class:`~aunets.stream.publish.Sink` publishing to LSL.

    ``rate``: the nominal frame rate in Hz (0 = irregular). ``source``: what the stream comes from (a camera
    index, a path, a URL), for :func:`source_id`; ``intensity``: carry the ``AUxx_intensity`` channels.
    """

    def __init__(self, aus: Sequence[int], name: str = "AUNets", rate: float = 0.0, source: str = "",
                 intensity: bool = False) -> None:
        require_pylsl()
        import pylsl

        self.aus = tuple(aus)
        self.intensity = intensity
        self.source_id = source_id(source, name)
        labels = channel_labels(self.aus, intensity)
        self._width = len(labels)
        info = pylsl.StreamInfo(name, "AU", self._width, rate, pylsl.cf_float32, self.source_id)
        desc = info.desc()
        desc.append_child_value("manufacturer", "AUNets Live")
        desc.append_child_value("source", source)
        channels = desc.append_child("channels")
        for suffix, unit, kind, what in _KINDS if intensity else _KINDS[:3]:
            for au in self.aus:
                ch = channels.append_child("channel")
                ch.append_child_value("label", f"{au_key(au)}{suffix}")
                ch.append_child_value("unit", unit)
                ch.append_child_value("type", kind)
                ch.append_child_value("description", f"{AU_NAMES[au]}: {what}")
        for label, sign in _POSE:
            ch = channels.append_child("channel")
            ch.append_child_value("label", label)
            ch.append_child_value("unit", "degrees")
            ch.append_child_value("type", "HeadPose")
            ch.append_child_value("description", f"head pose from the face detector's landmarks, {sign}")
        ch = channels.append_child("channel")
        ch.append_child_value("label", "track")
        ch.append_child_value("unit", "id")
        ch.append_child_value("type", "TrackId")
        ch.append_child_value("description", "face track id (NaN: no face in this frame)")
        self._data = pylsl.StreamOutlet(info)
        markers = pylsl.StreamInfo(f"{name}-events", "Markers", 1, 0.0, pylsl.cf_string, f"{self.source_id}-events")
        markers.desc().append_child_value("source", source)
        self._events = pylsl.StreamOutlet(markers)
        log.info("LSL streams %r and %r (source_id %s, %.3g Hz)", name, f"{name}-events", self.source_id, rate)
        self._media_origin: float | None = None  # LSL time of a file's t_media = 0

    def _stamp(self, r: FaceResult) -> float:
        """The LSL time stamp of ``r``'s frame, in seconds."""
        if r.t_media is None:
            return r.t_capture_ns / 1e9
        if self._media_origin is None:
            self._media_origin = r.t_capture_ns / 1e9 - r.t_media
        return self._media_origin + r.t_media

    def publish_results(self, results: Sequence[FaceResult]) -> None:
        for r in results:
            stamp = self._stamp(r)
            for event in r.events:
                self._events.push_sample([f"{au_key(event.au)} {event.kind} track {event.track_id}"], stamp)
            if r.events_only:
                continue
            if r.no_face:
                values = [math.nan] * self._width
            else:
                values = [r.probabilities[a] for a in self.aus]
                values += [r.smoothed[a] for a in self.aus]
                values += [float(r.states[a]) for a in self.aus]
                if self.intensity:  # the GPU frame path computes none: NaN
                    values += [r.intensity.get(a, math.nan) for a in self.aus]
                values += list(r.pose.degrees()) if r.pose is not None else [math.nan] * 3
                values.append(math.nan if r.track_id is None else float(r.track_id))
            self._data.push_sample(values, stamp)

    def publish_status(self, status: Mapping[str, Any]) -> None:
        pass

    def close(self) -> None:
        del self._data
        del self._events
