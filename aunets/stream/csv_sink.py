"""OpenFace-compatible CSV output.

Columns: ``frame`` (1-based, as OpenFace), ``face_id``, ``timestamp`` (seconds: the frame's presentation time
in the video for files, read from the container, so variable-frame-rate files are right too; seconds since the
first captured frame for live sources), ``confidence``, ``success``, ``pose_Rx``, ``pose_Ry``, ``pose_Rz``
(head pitch, yaw, roll in radians, as OpenFace names them; see :mod:`aunets.core.headpose`), then per AU:
``AUxx_r`` (intensity 0..5 after the median, OpenFace's name and scale; only for engines with an intensity
output), ``AUxx_c`` (0/1 state after the median) and ``AUxx_p`` (raw probability, an extra column OpenFace does
not have).

Two styles (:data:`CSV_STYLES`):

- ``openface`` (default): as OpenFace 2.2's FeatureExtraction writes its CSV: names and values separated by
  ``", "`` (so ``pd.read_csv(path)[" AU12_r"]`` and ``[" success"]`` work as with OpenFace's files), every
  ``AUxx_r`` before every ``AUxx_c``, then the ``AUxx_p`` columns last. A no-face frame has ``success`` 0 and
  empty AU cells (written ``,`` without the space, so pandas reads NaN and the columns stay numeric).
- ``compact``: plain ``","`` CSV, ``AUxx_c``, then ``AUxx_p``, then ``AUxx_r``, then the pose; a no-face frame
  has empty AU values.

Both load with ``csv.DictReader(fh, skipinitialspace=True)``, as OpenFace's own files do. Rows are flushed to the
operating system after every frame, so an error, a signal or even SIGKILL loses nothing already handed to the
writer; when a write fails (a full disk) the file is cut back to its last complete row and the error names the file.
"""

from __future__ import annotations

import contextlib
import csv
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aunets.core.au import au_key
from aunets.core.errors import AunetsError, ConfigError

if TYPE_CHECKING:
    from aunets.core.results import FaceResult


CSV_STYLES = ("openface", "compact")
"""``openface``: OpenFace 2.2 FeatureExtraction's layout and ``", "`` separator (default); ``compact``: plain CSV."""

_LEADING = ["frame", "face_id", "timestamp", "confidence", "success"]
POSE_COLUMNS = ["pose_Rx", "pose_Ry", "pose_Rz"]
_SUFFIXES = {"openface": ("r", "c", "p"), "compact": ("c", "p", "r")}


def csv_columns(aus: Sequence[int], intensity: bool = False, style: str = "openface") -> list[str]:
    """The header of a CSV of ``aus`` in ``style`` (``AUxx_r`` only when ``intensity``)."""
    if style not in _SUFFIXES:
        raise ConfigError(f"unknown CSV style {style!r}; choose {' or '.join(CSV_STYLES)}")
    suffixes = [s for s in _SUFFIXES[style] if intensity or s != "r"]
    au_columns = [f"{au_key(a)}_{s}" for s in suffixes for a in aus]
    # OpenFace writes the pose before the AUs; the compact style keeps its older columns first
    return _LEADING + POSE_COLUMNS + au_columns if style == "openface" else _LEADING + au_columns + POSE_COLUMNS


class _OpenFaceRows:
    """Writes rows as OpenFace does: cells joined by ``", "`` (numbers only, so nothing needs quoting). An empty
    cell (no value) is written without the space, so pandas reads it as NaN and the column stays numeric."""

    def __init__(self, fh: Any) -> None:
        self._fh = fh

    def writerow(self, row: Sequence[Any]) -> None:
        cells = [str(c) for c in row]
        self._fh.write(cells[0] + "".join(f", {c}" if c else "," for c in cells[1:]) + "\n")


class OpenFaceCsvWriter:
    """A :class:`~aunets.stream.publish.Sink` writing one row per frame and face; ``style``: one of
    :data:`CSV_STYLES`."""

    def __init__(self, path: Path | str, aus: Sequence[int], fps: float | None = None, intensity: bool = False,
                 style: str = "openface") -> None:
        self.path = Path(path)
        self.aus = tuple(aus)
        self.intensity = intensity
        self.style = style
        self.columns = csv_columns(self.aus, intensity, style)
        self._fh: Any = None
        self._good = 0  # bytes of complete rows on disk
        self._good_rows = 0
        self._failed = False
        self._t0_ns: int | None = None
        self._fps = fps if fps and fps > 0 else None
        self.rows = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # a buffer larger than any frame's rows: each frame reaches the file in one write() at _flush, so a
            # kill (even SIGKILL) between frames never leaves a torn row
            self._fh = self.path.open("w", newline="", encoding="utf-8", buffering=1 << 20)
        except OSError as exc:
            raise self._error(exc) from None
        self._writer = _OpenFaceRows(self._fh) if style == "openface" else csv.writer(self._fh)
        self._writer.writerow(self.columns)
        self._flush()

    def _error(self, exc: OSError) -> AunetsError:
        return AunetsError(f"cannot write the CSV {self.path}: {exc.strerror or exc}; {self._good_rows} rows were "
                           f"written; free disk space or choose another --csv path")  # fmt: skip

    def _flush(self) -> None:
        try:
            self._fh.flush()
            self._good = self._fh.buffer.tell()
            self._good_rows = self.rows
        except OSError as exc:
            self._failed = True
            with contextlib.suppress(OSError):  # cut a half-written last row off
                os.truncate(self.path, self._good)
            self.rows = self._good_rows
            raise self._error(exc) from None

    def publish_results(self, results: Sequence[FaceResult]) -> None:
        if self._failed:  # the error was raised once; the run is ending
            return
        for r in results:
            if r.events_only:
                continue
            if self._t0_ns is None:
                self._t0_ns = r.t_capture_ns
            row: list[Any] = [r.frame_index + 1, r.track_id if r.track_id is not None else 0]
            if r.t_media is not None:
                seconds = r.t_media
            else:
                seconds = r.frame_index / self._fps if self._fps else (r.t_capture_ns - self._t0_ns) / 1e9
            row.append(f"{seconds:.3f}")
            row += ["0.00", 0] if r.no_face else [f"{r.confidence:.2f}", 1]
            self._writer.writerow(row + self._au_cells(r))
            self.rows += 1
        self._flush()

    def _au_cells(self, r: FaceResult) -> list[Any]:
        """The pose and AU cells of one row in :attr:`columns` order; no value (no face; no intensity on the GPU
        frame path; no landmarks) is an empty cell."""
        missing = ""
        cells: dict[str, Any] = dict.fromkeys(POSE_COLUMNS, missing)
        if r.pose is not None:
            cells.update(zip(POSE_COLUMNS, (f"{v:.3f}" for v in (r.pose.rx, r.pose.ry, r.pose.rz)), strict=True))
        for a in self.aus:
            key = au_key(a)
            if r.no_face:
                cells[f"{key}_c"] = cells[f"{key}_p"] = cells[f"{key}_r"] = missing
                continue
            cells[f"{key}_c"] = int(r.states[a])
            cells[f"{key}_p"] = f"{r.probabilities[a]:.4f}"
            cells[f"{key}_r"] = f"{r.intensity[a]:.3f}" if a in r.intensity else missing
        return [cells[c] for c in self.columns[len(_LEADING):]]

    def publish_status(self, status: Mapping[str, Any]) -> None:
        pass

    def close(self) -> None:
        if self._fh is None or self._fh.closed:
            return
        if self._failed:  # the buffer holds rows that could not be written: closing drops them (one error only)
            with contextlib.suppress(OSError, ValueError):
                self._fh.close()
            return
        self._flush()
        self._fh.close()
