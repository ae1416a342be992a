"""FERA 2017: per-view frame folders and AU occurrence CSVs.

Layout::

    ROOT/<Split>/frames/<subject>_<task>_<view>/<frame>.jpg     Split: Train, Valid, Test; view 1..9
    ROOT/<Split>/occ/<subject>_<task>.csv                       one CSV per session, shared by the 9 views

Folder and CSV names may carry the challenge's ``FERA17_TR_`` / ``FERA17_VA_`` / ``FERA17_TE_`` prefix and
the CSV an ``_Occ`` suffix. A CSV's first column is the frame number (``Frame``), then one column per AU named
``1``, ``AU1`` or ``AU01``; values 1 present, 0 absent, 9 unknown. Frame images are named by their frame
number (``00001.jpg`` or ``1.jpg``; leading zeros ignored) and are taken as face crops (run a face detector
beforehand, or use a CSV manifest with boxes). FERA view ``v`` (1..9) becomes view id ``view_map[v]``, by
default ``v - 1``.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping
from pathlib import Path

from aunets.core.errors import ConfigError
from aunets.models.data.sample import FrameRecord, FrameSet

SPLIT_DIRS: dict[str, str] = {"train": "Train", "val": "Valid", "test": "Test"}
_SESSION = re.compile(r"^(?:FERA17_[A-Z]{2}_)?(?P<subject>[^_]+)_(?P<task>[^_]+)(?:_Occ)?$", re.IGNORECASE)
_VIEW_DIR = re.compile(r"^(?:FERA17_[A-Z]{2}_)?(?P<subject>[^_]+)_(?P<task>[^_]+)_(?P<view>\d)$", re.IGNORECASE)
_AU_HEADER = re.compile(r"^(?:AU)?0*(\d+)$", re.IGNORECASE)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def is_fera(root: Path) -> bool:
    root = Path(root)
    return any((root / d / "occ").is_dir() and (root / d / "frames").is_dir() for d in SPLIT_DIRS.values())


def load_fera(
    root: Path | str,
    splits: tuple[str, ...] = ("train", "val", "test"),
    view_map: Mapping[int, int] | None = None,
) -> FrameSet:
    """All frames of the given splits (records carry ``split``)."""
    root = Path(root)
    if not is_fera(root):
        raise ConfigError(
            f"{root} is not a FERA 2017 tree (<Split>/frames/<subj>_<task>_<view>/ and <Split>/occ/*.csv)"
        )
    aus: tuple[int, ...] | None = None
    records: list[FrameRecord] = []
    for split in splits:
        base = root / SPLIT_DIRS[split]
        if not base.is_dir():
            continue
        labels: dict[tuple[str, str], dict[int, list[int]]] = {}
        for path in sorted((base / "occ").glob("*.csv")):
            m = _SESSION.match(path.stem)
            if not m:
                raise ConfigError(f"unexpected FERA occurrence file name {path.name} (expected <subject>_<task>.csv)")
            file_aus, table = _read_occ(path)
            if aus is None:
                aus = file_aus
            elif file_aus != aus:
                raise ConfigError(f"{path} labels AUs {list(file_aus)}, other files label {list(aus)}")
            labels[(m["subject"], m["task"])] = table
        for folder in sorted(p for p in (base / "frames").iterdir() if p.is_dir()):
            m = _VIEW_DIR.match(folder.name)
            if not m:
                raise ConfigError(f"unexpected FERA frame folder {folder.name} (expected <subject>_<task>_<view>)")
            session = (m["subject"], m["task"])
            if session not in labels:
                raise ConfigError(f"{folder} has no occurrence CSV {base / 'occ'}/{session[0]}_{session[1]}.csv")
            fera_view = int(m["view"])
            view = view_map[fera_view] if view_map is not None else fera_view - 1
            frames = sorted(
                (int(re.sub(r"\D", "", p.stem) or "0"), p)
                for p in folder.iterdir()
                if p.suffix.lower() in IMAGE_SUFFIXES
            )
            prev: tuple[int, Path] | None = None
            sequence = f"{session[0]}_{session[1]}_{fera_view}"
            for number, image in frames:
                if number not in labels[session]:
                    continue  # frame without labels
                records.append(
                    FrameRecord(
                        sequence=sequence,
                        subject=session[0],
                        frame=number,
                        image=image,
                        labels=tuple(labels[session][number]),
                        view=view,
                        prev_image=prev[1] if prev is not None and prev[0] == number - 1 else None,
                        split=split,
                    )
                )
                prev = (number, image)
    if aus is None:
        raise ConfigError(f"no occurrence CSVs found under {root}/<Split>/occ")
    return FrameSet(aus=aus, records=tuple(records), kind="fera", source=str(root))


def _read_occ(path: Path) -> tuple[tuple[int, ...], dict[int, list[int]]]:
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        raise ConfigError(f"{path} is empty")
    header = [h.strip() for h in rows[0]]
    aus = []
    for h in header[1:]:
        m = _AU_HEADER.match(h)
        if not m:
            raise ConfigError(f"{path}: column {h!r} is not an AU (expected e.g. '1', 'AU1' or 'AU01')")
        aus.append(int(m.group(1)))
    table: dict[int, list[int]] = {}
    for row in rows[1:]:
        if not row:
            continue
        values = [int(float(v)) for v in row[1:]]
        table[int(float(row[0]))] = [v if v in (0, 1) else -1 for v in values]
    return tuple(aus), table
