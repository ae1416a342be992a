"""Camera views: a 3x3 grid of head yaw x pitch, as in FERA 2017 and the AUNets paper.

View ids run row-major over (pitch, yaw): ``view = pitch_index * n_yaw + yaw_index``. With the default
grid (yaw -40/0/+40 deg, pitch -20/0/+20 deg) the frontal view is id 4. Angles are in degrees; yaw > 0
means the subject turns to their left, pitch > 0 means chin down (the ICT-FaceKit convention).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ViewGrid:
    """Yaw and pitch centres of the views, in degrees."""

    yaws: tuple[float, ...] = (-40.0, 0.0, 40.0)
    pitches: tuple[float, ...] = (-20.0, 0.0, 20.0)

    @property
    def n_views(self) -> int:
        return len(self.yaws) * len(self.pitches)

    @property
    def frontal(self) -> int:
        """Id of the view closest to yaw 0, pitch 0."""
        return self.view_of(0.0, 0.0)

    def angles(self, view: int) -> tuple[float, float]:
        """(yaw, pitch) in degrees of view ``view``."""
        if not 0 <= view < self.n_views:
            raise ValueError(f"view {view} is outside 0..{self.n_views - 1}")
        pitch_index, yaw_index = divmod(view, len(self.yaws))
        return self.yaws[yaw_index], self.pitches[pitch_index]

    def view_of(self, yaw: float, pitch: float) -> int:
        """The view whose centre is nearest to (yaw, pitch) in degrees."""
        yaw_index = int(np.argmin(np.abs(np.asarray(self.yaws) - yaw)))
        pitch_index = int(np.argmin(np.abs(np.asarray(self.pitches) - pitch)))
        return pitch_index * len(self.yaws) + yaw_index

    def to_json(self) -> dict[str, list[float]]:
        return {"yaws": list(self.yaws), "pitches": list(self.pitches)}

    @classmethod
    def from_json(cls, data: dict[str, list[float]]) -> ViewGrid:
        return cls(yaws=tuple(float(v) for v in data["yaws"]), pitches=tuple(float(v) for v in data["pitches"]))


DEFAULT_VIEW_GRID = ViewGrid()
