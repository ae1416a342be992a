"""The JSON payloads of the published topics (schema version :data:`SCHEMA`); see ``docs/events.md``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from stream.au import au_key

if TYPE_CHECKING:
    from stream.pipeline import FaceResult
    from stream.temporal import AUEvent

SCHEMA = 1
TOPIC_FRAME = "au.frame"
TOPIC_EVENT = "au.event"
TOPIC_STATUS = "au.status"
TOPICS = (TOPIC_FRAME, TOPIC_EVENT, TOPIC_STATUS)


def frame_payload(result: FaceResult, seq: int, t_publish: float) -> dict[str, Any]:
    """``au.frame``: one processed frame of one face track (or ``no_face``). Times in seconds since the epoch."""
    return {
        "schema": SCHEMA,
        "seq": seq,
        "frame": result.frame_index,
        "t_capture": result.t_wall,
        "t_publish": t_publish,
        "no_face": result.track_id is None,
        "track_id": result.track_id,
        "box": [round(v, 1) for v in result.box] if result.box else None,
        "confidence": round(result.confidence, 4),
        "view": result.view,
        "probability": {au_key(a): round(p, 4) for a, p in result.probabilities.items()},
        "smoothed": {au_key(a): round(p, 4) for a, p in result.smoothed.items()},
        **({"intensity": {au_key(a): round(v, 3) for a, v in result.intensity.items()}} if result.intensity else {}),
        "state": {au_key(a): int(s) for a, s in result.states.items()},
    }


def event_payload(event: AUEvent, seq: int, t_publish: float) -> dict[str, Any]:
    """``au.event``: an AU onset or offset."""
    return {
        "schema": SCHEMA,
        "seq": seq,
        "type": event.kind,
        "au": au_key(event.au),
        "frame": event.frame_index,
        "t": event.t_wall,
        "t_publish": t_publish,
        "track_id": event.track_id,
        "peak_probability": round(event.peak_probability, 4),
        "duration_s": round(event.duration_s, 3),
    }


def status_payload(status: Mapping[str, Any], seq: int, t_publish: float) -> dict[str, Any]:
    """``au.status``: the 1 Hz heartbeat (fps, drops, latency percentiles in ms, ...)."""
    return {"schema": SCHEMA, "seq": seq, "t": t_publish, **status}
