"""OpenFace-compatible CSV output.

Columns: ``frame`` (1-based, as OpenFace), ``face_id``, ``timestamp`` (seconds: the frame's presentation time
in the video for files, read from the container, so variable-frame-rate files are right too; seconds since the
first captured frame for live sources),
``confidence``, ``success``, then ``AUxx_c`` (0/1 presence after the median) for each AU, then ``AUxx_p`` (raw
probability), then, for engines with an intensity output, ``AUxx_r`` (intensity 0..5 after the median, OpenFace's
column name and scale). OpenFace and py-feat readers load it. A no-face frame is a row with ``success`` 0 and empty
AU values. Rows are flushed to the operating system after every frame, so an error, a signal or even SIGKILL
loses nothing already handed to the writer; when a write fails (a full disk) the file is cut back to its last
complete row and the error names the file.
"""

from __future__ import annotations

import contextlib
import csv
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aunets.core.au import au_key
from aunets.core.errors import AunetsError

if TYPE_CHECKING:
    from aunets.core.results import FaceResult


def csv_columns(aus: Sequence[int], intensity: bool = False) -> list[str]:
    return (
        ["frame", "face_id", "timestamp", "confidence", "success"]
        + [f"{au_key(a)}_c" for a in aus]
        + [f"{au_key(a)}_p" for a in aus]
        + ([f"{au_key(a)}_r" for a in aus] if intensity else [])
    )


class OpenFaceCsvWriter:
    """A :class:`~aunets.stream.publish.Sink` writing one row per frame and face."""

    def __init__(self, path: Path | str, aus: Sequence[int], fps: float | None = None, intensity: bool = False) -> None:
        self.path = Path(path)
        self.aus = tuple(aus)
        self.intensity = intensity
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
        self._writer = csv.writer(self._fh)
        self._writer.writerow(csv_columns(self.aus, self.intensity))
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
            if r.no_face:
                row += ["0.00", 0] + [""] * ((3 if self.intensity else 2) * len(self.aus))
            else:
                row += [f"{r.confidence:.2f}", 1]
                row += [int(r.states[a]) for a in self.aus]
                row += [f"{r.probabilities[a]:.4f}" for a in self.aus]
                if self.intensity:
                    # the GPU frame path computes no intensity: empty cells, as for a no-face row
                    row += [f"{r.intensity[a]:.3f}" if a in r.intensity else "" for a in self.aus]
            self._writer.writerow(row)
            self.rows += 1
        self._flush()

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
