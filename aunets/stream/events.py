"""AU onset/offset events from the smoothed per-frame on/off states of one track."""

from __future__ import annotations

import numpy as np

from aunets.core.results import AUEvent


class EventDetector:
    """Turns per-frame smoothed on/off states into onset/offset events, per AU."""

    def __init__(self, aus: tuple[int, ...], track_id: int) -> None:
        self.aus = aus
        self.track_id = track_id
        self._on = np.zeros(len(aus), dtype=bool)
        self._peak = np.zeros(len(aus), dtype=np.float64)
        self._start = np.zeros(len(aus), dtype=np.float64)

    def update(self, states: np.ndarray, probs: np.ndarray, frame_index: int, t_wall: float) -> list[AUEvent]:
        """``states`` (K,) bool and ``probs`` (K,) raw probabilities of one frame -> events at that frame."""
        events = []
        for i, au in enumerate(self.aus):
            if states[i] and not self._on[i]:
                self._peak[i] = probs[i]
                self._start[i] = t_wall
                events.append(AUEvent(au, "onset", frame_index, t_wall, self.track_id, float(probs[i])))
            elif states[i]:
                self._peak[i] = max(self._peak[i], probs[i])
            elif self._on[i]:
                events.append(
                    AUEvent(au, "offset", frame_index, t_wall, self.track_id, float(self._peak[i]),
                            max(0.0, t_wall - self._start[i]))
                )
        self._on = states.astype(bool).copy()
        return events

    def close(self, frame_index: int, t_wall: float) -> list[AUEvent]:
        """Offsets for every AU still on (the face was lost or the stream ended)."""
        return self.update(np.zeros(len(self.aus), dtype=bool), np.zeros(len(self.aus)), frame_index, t_wall)
