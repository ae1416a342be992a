"""Lab Streaming Layer output (extra ``[lsl]``): AU probabilities and AU events as LSL streams.

Two outlets: ``<name>`` (type ``AU``), one float32 channel per AU holding the raw probability, then a last
channel ``track`` holding the face's track id: one sample per face per frame (with ``--max-faces N`` several
samples share a frame's time stamp; split them by ``track``), and one all-NaN sample for a frame with no face;
and ``<name>-events`` (type ``Markers``), strings like ``"AU12 onset track 0"``.
Samples are stamped with the frame's **capture** time: LSL's clock (``pylsl.local_clock()``) and
``time.monotonic()`` are the same clock on Linux, so LabRecorder aligns them with other streams exactly. Frames of
a video file are stamped at the first frame's capture time plus their presentation time in the file, so the
stream keeps the file's own timing (variable frame rates too) rather than the capture process's jitter.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from aunets.core.au import AU_NAMES, au_key
from aunets.core.errors import MissingExtraError

if TYPE_CHECKING:
    from aunets.core.results import FaceResult

log = logging.getLogger(__name__)


class LslOutlet:
    """A :class:`~aunets.stream.publish.Sink` publishing to LSL.

    ``rate``: the nominal frame rate in Hz (0 = irregular).
    """

    def __init__(self, aus: Sequence[int], name: str = "AUNets", rate: float = 0.0, source_id: str = "aunets") -> None:
        try:
            import pylsl
        except ImportError as exc:
            raise MissingExtraError("pylsl", "lsl") from exc
        self._pylsl = pylsl
        self.aus = tuple(aus)
        info = pylsl.StreamInfo(name, "AU", len(self.aus) + 1, rate, pylsl.cf_float32, source_id)
        channels = info.desc().append_child("channels")
        for au in self.aus:
            ch = channels.append_child("channel")
            ch.append_child_value("label", au_key(au))
            ch.append_child_value("description", AU_NAMES[au])
            ch.append_child_value("unit", "probability")
        ch = channels.append_child("channel")
        ch.append_child_value("label", "track")
        ch.append_child_value("description", "face track id (NaN: no face in this frame)")
        ch.append_child_value("unit", "id")
        self._data = pylsl.StreamOutlet(info)
        markers = pylsl.StreamInfo(f"{name}-events", "Markers", 1, 0.0, pylsl.cf_string, f"{source_id}-events")
        self._events = pylsl.StreamOutlet(markers)
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
                values = [math.nan] * (len(self.aus) + 1)
            else:
                track = math.nan if r.track_id is None else float(r.track_id)
                values = [*(r.probabilities[a] for a in self.aus), track]
            self._data.push_sample(values, stamp)

    def publish_status(self, status: Mapping[str, Any]) -> None:
        pass

    def close(self) -> None:
        del self._data
        del self._events

