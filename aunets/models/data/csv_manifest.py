"""A generic CSV manifest: one row per frame, for any dataset not in a known layout.

Columns (header row required; paths relative to the CSV's directory or absolute):

``path`` (required)
    image file: a face crop, or a full frame when ``box_x, box_y, box_w, box_h`` are given.
``subject`` (required), ``view`` (optional int, empty = unknown), ``sequence`` and ``frame`` (optional: frames
    of one sequence are consecutive, which enables flow and the median; without them every row is its own
    one-frame sequence), ``split`` (optional: train/val/test), ``flow`` (optional precomputed flow image),
``AUxx`` columns: 1 present, 0 absent, empty or -1 unknown; optional ``AUxx_i`` (intensity in [0, 1]) and
``AUxx_soft`` (a soft presence target in [0, 1] from another detector, used by the loss only where ``AUxx`` is
unknown), empty = unknown.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from aunets.core.errors import ConfigError
from aunets.models.data.sample import FrameRecord, FrameSet

_AU_COLUMN = re.compile(r"^AU(\d+)$", re.IGNORECASE)


def load_csv_manifest(path: Path | str) -> FrameSet:
    """Read a CSV manifest (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"CSV manifest {path} does not exist")
    base = path.parent
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        fields = reader.fieldnames or []
        rows = list(reader)
    for required in ("path", "subject"):
        if required not in fields:
            raise ConfigError(f"CSV manifest {path} has no {required!r} column; columns: {fields}")
    au_cols = [(int(m.group(1)), name) for name in fields if (m := _AU_COLUMN.match(name))]
    if not au_cols:
        raise ConfigError(f"CSV manifest {path} has no AU columns (AU01, AU02, ...)")
    has_box = all(c in fields for c in ("box_x", "box_y", "box_w", "box_h"))

    def resolve(p: str) -> Path:
        q = Path(p)
        return q if q.is_absolute() else base / q

    parsed = []
    for i, row in enumerate(rows):
        seq = row.get("sequence") or f"row{i:08d}"
        frame = int(row["frame"]) if row.get("frame") else 0
        parsed.append((seq, frame, i, row))
    parsed.sort(key=lambda t: (t[0], t[1], t[2]))
    records = []
    prev: tuple[str, int, Path] | None = None
    for seq, frame, _, row in parsed:
        labels = []
        for _, col in au_cols:
            value = (row.get(col) or "").strip()
            labels.append(-1 if value in ("", "-1", "9") else int(float(value) >= 0.5))

        def floats(suffix: str, row: dict[str, str] = row) -> tuple[float, ...] | None:
            if not any(f"{col}{suffix}" in fields for _, col in au_cols):
                return None
            return tuple(float(v) if (v := (row.get(f"{col}{suffix}") or "").strip()) else float("nan")
                         for _, col in au_cols)

        box = None
        if has_box and row.get("box_w"):
            box = (float(row["box_x"]), float(row["box_y"]), float(row["box_w"]), float(row["box_h"]))
        image = resolve(row["path"])
        prev_image = prev[2] if prev is not None and prev[0] == seq and prev[1] == frame - 1 else None
        view = row.get("view", "")
        records.append(
            FrameRecord(
                sequence=seq,
                subject=row["subject"],
                frame=frame,
                image=image,
                labels=tuple(labels),
                view=int(view) if view not in ("", None) else None,
                box=box,
                prev_image=prev_image,
                flow_image=resolve(row["flow"]) if row.get("flow") else None,
                split=row.get("split", "") or "",
                intensities=floats("_i"),
                soft=floats("_soft"),
            )
        )
        prev = (seq, frame, image)
    return FrameSet(aus=tuple(a for a, _ in au_cols), records=tuple(records), kind="csv", source=str(path))
