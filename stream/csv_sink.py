"""OpenFace-compatible CSV output.

Columns: ``frame`` (1-based, as OpenFace), ``face_id``, ``timestamp`` (seconds: the frame's time in the video,
``index / fps``, for files; seconds since the first captured frame for live sources),
``confidence``, ``success``, then ``AUxx_c`` (0/1 presence after the median) for each AU, then ``AUxx_p`` (raw
probability), then, for engines with an intensity output, ``AUxx_r`` (intensity 0..5 after the median, OpenFace's
column name and scale). OpenFace and py-feat readers load it. A no-face frame is a row with ``success`` 0 and empty
AU values. Rows are flushed as they are written, so an error mid-file loses nothing already computed.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stream.au import au_key

if TYPE_CHECKING:
    from stream.pipeline import FaceResult


def csv_columns(aus: Sequence[int], intensity: bool = False) -> list[str]:
    return (
        ["frame", "face_id", "timestamp", "confidence", "success"]
        + [f"{au_key(a)}_c" for a in aus]
        + [f"{au_key(a)}_p" for a in aus]
        + ([f"{au_key(a)}_r" for a in aus] if intensity else [])
    )


class OpenFaceCsvWriter:
    """A :class:`~stream.publish.Sink` writing one row per frame and face."""

    def __init__(self, path: Path | str, aus: Sequence[int], flush_every: int = 25, fps: float | None = None,
                 intensity: bool = False) -> None:
        self.path = Path(path)
        self.aus = tuple(aus)
        self.intensity = intensity
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = self.path.open("w", newline="", encoding="utf-8")
        self._writer = csv.writer(self._fh)
        self._writer.writerow(csv_columns(self.aus, intensity))
        self._t0_ns: int | None = None
        self._flush_every = flush_every
        self._fps = fps if fps and fps > 0 else None
        self.rows = 0

    def publish_results(self, results: Sequence[FaceResult]) -> None:
        for r in results:
            if r.events_only:
                continue
            if self._t0_ns is None:
                self._t0_ns = r.t_capture_ns
            row: list[Any] = [r.frame_index + 1, r.track_id if r.track_id is not None else 0]
            seconds = r.frame_index / self._fps if self._fps else (r.t_capture_ns - self._t0_ns) / 1e9
            row.append(f"{seconds:.3f}")
            if r.no_face:
                row += ["0.00", 0] + [""] * ((3 if self.intensity else 2) * len(self.aus))
            else:
                row += [f"{r.confidence:.2f}", 1]
                row += [int(r.states[a]) for a in self.aus]
                row += [f"{r.probabilities[a]:.4f}" for a in self.aus]
                if self.intensity:
                    row += [f"{r.intensity[a]:.3f}" for a in self.aus]
            self._writer.writerow(row)
            self.rows += 1
            if self.rows % self._flush_every == 0:
                self._fh.flush()

    def publish_status(self, status: Mapping[str, Any]) -> None:
        pass

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()
