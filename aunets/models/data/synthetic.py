"""Reading the synthetic generator's output (``aunets synth``, :mod:`aunets.models.synth`).

Layout of ``DIR``::

    manifest.json   {"generator": "aunets-synth", "version": 2, "aus": [...], "fps": 25,
                     "splits": {"train": [...], "val": [...], "test": [...]}, "view_grid": {...}, ...}
    labels.csv      sequence,subject,split,view,frame,yaw,pitch,roll,box_x,box_y,box_w,box_h,crop,full,
                    AU01..AUnn (presence 0/1), AU01_i..AUnn_i (intensity)

``full`` and ``crop`` are JPEG paths relative to ``DIR`` (empty when not written). Full frames are
preferred (the crop and the flow are then made exactly as at run time, with the face box); otherwise the
224x224 crops are used as they are.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

from aunets.core.errors import ConfigError
from aunets.models.data.sample import FrameRecord, FrameSet

GENERATOR = "aunets-synth"
_AU_COLUMN = re.compile(r"^AU(\d+)$")


def is_synthetic(root: Path) -> bool:
    """True if ``root`` holds a synthetic generator output."""
    path = Path(root) / "manifest.json"
    if not path.is_file() or not (Path(root) / "labels.csv").is_file():
        return False
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("generator") == GENERATOR
    except (json.JSONDecodeError, AttributeError):
        return False


def load_synthetic(root: Path | str, prefer: str = "full") -> FrameSet:
    """All frames of a synthetic set (every split; filter with ``FrameSet.filter(split=...)``).

    ``prefer``: ``full`` (full frames + box when written, else crops) or ``crop`` (always the crops).
    """
    root = Path(root)
    if not is_synthetic(root):
        raise ConfigError(f"{root} is not a synthetic set (no manifest.json from {GENERATOR!r} + labels.csv); "
                          f"make one with `aunets synth --out {root}`")
    manifest: dict[str, Any] = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    with (root / "labels.csv").open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        fields = reader.fieldnames or []
        au_cols = [(int(m.group(1)), name) for name in fields if (m := _AU_COLUMN.match(name))]
        has_intensity = all(f"{name}_i" in fields for _, name in au_cols)
        rows = list(reader)
    if not au_cols:
        raise ConfigError(f"{root / 'labels.csv'} has no AUxx columns; regenerate it with `aunets synth`")
    aus = tuple(a for a, _ in au_cols)
    rows.sort(key=lambda r: (r["sequence"], int(r["frame"])))
    records: list[FrameRecord] = []
    prev_seq, prev_path = "", None
    for row in rows:
        full, crop = row.get("full", ""), row.get("crop", "")
        use_full = bool(full) and (prefer == "full" or not crop)
        rel = full if use_full else crop
        if not rel:
            raise ConfigError(f"labels.csv row {row['sequence']} frame {row['frame']} has neither a crop nor a full "
                              f"frame; regenerate with crops or full frames written")
        image = root / rel
        seq = row["sequence"]
        box = (
            (float(row["box_x"]), float(row["box_y"]), float(row["box_w"]), float(row["box_h"])) if use_full else None
        )
        records.append(
            FrameRecord(
                sequence=seq,
                subject=str(row["subject"]),
                frame=int(row["frame"]),
                image=image,
                labels=tuple(1 if float(row[c]) >= 0.5 else 0 for _, c in au_cols),
                intensities=tuple(float(row[f"{c}_i"]) for _, c in au_cols) if has_intensity else None,
                view=int(row["view"]),
                box=box,
                prev_image=prev_path if seq == prev_seq else None,
                split=row.get("split", ""),
            )
        )
        prev_seq, prev_path = seq, image
    n_views = 9
    grid = manifest.get("view_grid")
    if isinstance(grid, dict) and "yaws" in grid and "pitches" in grid:
        n_views = len(grid["yaws"]) * len(grid["pitches"])
    return FrameSet(aus=aus, records=tuple(records), kind="synthetic", source=str(root), n_views=n_views,
                    info={"manifest": manifest})
