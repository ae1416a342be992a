"""The JSON payloads of the published topics (schema version :data:`SCHEMA`); see ``docs/events.md``."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from aunets.core.au import au_key

if TYPE_CHECKING:
    from aunets.core.results import AUEvent, FaceResult

SCHEMA = 1
TOPIC_FRAME = "au.frame"
TOPIC_EVENT = "au.event"
TOPIC_STATUS = "au.status"
TOPICS = (TOPIC_FRAME, TOPIC_EVENT, TOPIC_STATUS)


def frame_payload(result: FaceResult, seq: int, t_publish: float) -> dict[str, Any]:
    """``au.frame``: one processed frame of one face track (or ``no_face``). ``t_capture``/``t_publish`` in
    seconds since the epoch; ``t_media`` the frame's presentation time in a video file, in seconds from its
    first frame (null for live sources)."""
    return {
        "schema": SCHEMA,
        "seq": seq,
        "frame": result.frame_index,
        "t_capture": result.t_wall,
        "t_publish": t_publish,
        "t_media": None if result.t_media is None else round(result.t_media, 6),
        "no_face": result.track_id is None,
        "track_id": result.track_id,
        "box": [round(v, 1) for v in result.box] if result.box else None,
        "confidence": round(result.confidence, 4),
        "view": result.view,
        "probability": {au_key(a): round(p, 4) for a, p in result.probabilities.items()},
        "smoothed": {au_key(a): round(p, 4) for a, p in result.smoothed.items()},
        **({"intensity": {au_key(a): round(v, 3) for a, v in result.intensity.items()}} if result.intensity else {}),
        "state": {au_key(a): int(s) for a, s in result.states.items()},
        "pose": (dict(zip(("pitch", "yaw", "roll"), (round(v, 1) for v in result.pose.degrees()), strict=True))
                 if result.pose is not None else None),
    }


def event_payload(event: AUEvent, seq: int, t_publish: float, t_media: float | None = None) -> dict[str, Any]:
    """``au.event``: an AU onset or offset. ``t_media``: its frame's presentation time in a video file (seconds
    from the first frame; null for live sources)."""
    return {
        "schema": SCHEMA,
        "seq": seq,
        "type": event.kind,
        "au": au_key(event.au),
        "frame": event.frame_index,
        "t": event.t_wall,
        "t_publish": t_publish,
        "t_media": None if t_media is None else round(t_media, 6),
        "track_id": event.track_id,
        "peak_probability": round(event.peak_probability, 4),
        "duration_s": round(event.duration_s, 3),
    }


def status_payload(status: Mapping[str, Any], seq: int, t_publish: float) -> dict[str, Any]:
    """``au.status``: the 1 Hz heartbeat (fps, drops, latency percentiles in ms, ...)."""
    return {"schema": SCHEMA, "seq": seq, "t": t_publish, **status}


def latency_percentiles(latencies_ms: Sequence[float]) -> dict[str, float | None]:
    """``{"p50": ms, "p99": ms}`` of ``latencies_ms``; ``null`` (None) for both when there are none."""
    if not latencies_ms:
        return {"p50": None, "p99": None}
    import numpy as np

    lat = np.asarray(latencies_ms)
    return {"p50": round(float(np.percentile(lat, 50)), 3), "p99": round(float(np.percentile(lat, 99)), 3)}


def to_json(payload: Any, indent: int | None = None) -> str:
    """Strict JSON (RFC 8259): a NaN or infinity anywhere becomes ``null`` (``json.dumps`` would write
    ``NaN``, which JavaScript, Go and Rust parsers reject)."""
    separators = (",", ":") if indent is None else None
    try:
        return json.dumps(payload, separators=separators, indent=indent, allow_nan=False)
    except ValueError:
        return json.dumps(_finite(payload), separators=separators, indent=indent, allow_nan=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
