"""AU on/off states and onset/offset events of one track, from its smoothed per-frame probabilities.

A state that flickers around the threshold makes a poor trigger, so the state has two guards:

- hysteresis: an AU turns on when its smoothed probability reaches ``threshold + on_delta`` and off only when it
  falls below ``threshold - off_delta`` (each AU's threshold is the engine's);
- minimum durations: the state turns on only after the probability has stayed on (by the hysteresis) for
  ``min_on_s`` seconds, and off only after it has stayed off for ``min_off_s`` seconds. An onset is therefore
  published ``min_on_s`` after the probability crossed, and no episode lasts less than ``min_off_s`` unless its
  track ends.

The defaults are chosen by ``benchmarks/event_hysteresis.py`` (see ``docs/events.md``).
"""

from __future__ import annotations

import numpy as np

from aunets.core.results import AUEvent
from aunets.stream.event_config import EventConfig

__all__ = ["EventConfig", "EventDetector"]

_EPS = 1e-6  # seconds: frame times are sums of 1/fps steps


class EventDetector:
    """Per-frame states and onset/offset events, per AU, of one track.

    ``thresholds``: (K,) each AU's threshold on the smoothed probability.
    """

    def __init__(self, aus: tuple[int, ...], track_id: int, thresholds: np.ndarray | None = None,
                 config: EventConfig | None = None) -> None:
        self.aus = aus
        self.track_id = track_id
        self.config = config or EventConfig()
        k = len(aus)
        self._thr = np.full(k, 0.5) if thresholds is None else np.asarray(thresholds, dtype=np.float64)
        self._above = np.zeros(k, dtype=bool)  # the probability's side of the hysteresis band
        self._since = np.zeros(k, dtype=np.float64)  # when it got there (stream seconds)
        self._on = np.zeros(k, dtype=bool)  # the published state
        self._peak = np.zeros(k, dtype=np.float64)
        self._start = np.zeros(k, dtype=np.float64)

    def update(self, smoothed: np.ndarray, probs: np.ndarray, frame_index: int, t_wall: float,
               t: float | None = None) -> tuple[np.ndarray, list[AUEvent]]:
        """One frame: ``smoothed`` (K,) probabilities to threshold, ``probs`` (K,) raw ones (for the peaks).
        ``t``: the frame's time in seconds that the minimum durations are measured in (a file's video time;
        default ``t_wall``). Returns the (K,) bool states and the events at this frame (stamped ``t_wall``)."""
        c = self.config
        t = t_wall if t is None else t
        above = np.where(self._above, smoothed >= self._thr - c.off_delta, smoothed >= self._thr + c.on_delta)
        self._since[above != self._above] = t
        self._above = above
        held = t - self._since + _EPS
        state = np.where(self._on, above | (held < c.min_off_s), above & (held >= c.min_on_s))
        return state, self._events(state, probs, frame_index, t_wall)

    def _events(self, state: np.ndarray, probs: np.ndarray, frame_index: int, t_wall: float) -> list[AUEvent]:
        events = []
        for i, au in enumerate(self.aus):
            if state[i] and not self._on[i]:
                self._peak[i] = probs[i]
                self._start[i] = t_wall
                events.append(AUEvent(au, "onset", frame_index, t_wall, self.track_id, float(probs[i])))
            elif state[i]:
                self._peak[i] = max(self._peak[i], probs[i])
            elif self._on[i]:
                events.append(
                    AUEvent(au, "offset", frame_index, t_wall, self.track_id, float(self._peak[i]),
                            max(0.0, t_wall - self._start[i]))
                )
        self._on = state.astype(bool).copy()
        return events

    def close(self, frame_index: int, t_wall: float) -> list[AUEvent]:
        """Offsets for every AU still on (the face was lost or the stream ended)."""
        k = len(self.aus)
        self._above = np.zeros(k, dtype=bool)
        return self._events(np.zeros(k, dtype=bool), np.zeros(k), frame_index, t_wall)
