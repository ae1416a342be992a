"""A corpus of videos for ``aunets batch``: video files, folders searched for videos, or CSV manifests.

A manifest is a CSV with a ``path`` column (relative paths are relative to the manifest's folder) and optional
``subject`` and ``session`` columns, copied into the batch index. Each video gets one output CSV under the
output folder, at its path relative to the folder all the videos share (``a/s1.mp4`` -> ``OUT/a/s1.csv``), so
the same inputs always map to the same outputs (which is what makes a batch resumable).
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aunets.core.errors import ConfigError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".mts")
MANIFEST_SUFFIXES = (".csv", ".tsv")


@dataclass(frozen=True)
class VideoJob:
    """One video of a corpus. ``index``: position in the corpus (0-based). ``video``: absolute path.
    ``csv``: the OpenFace-compatible CSV to write (its config JSON goes beside it)."""

    index: int
    video: Path
    csv: Path
    subject: str = ""
    session: str = ""

    @property
    def config_json(self) -> Path:
        """The config JSON beside the CSV (the same name ``aunets process`` uses)."""
        return self.csv.with_name(self.csv.name + ".config.json")


def _videos_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())


def _read_manifest(path: Path) -> list[tuple[Path, str, str]]:
    dialect = "excel-tab" if path.suffix.lower() == ".tsv" else "excel"
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh, dialect=dialect)
        columns = [c.strip().lower() for c in reader.fieldnames or []]
        if "path" not in columns:
            raise ConfigError(f"manifest {path} has no 'path' column (found {columns}); its first line must name "
                              f"the columns, e.g. path,subject,session")
        out = []
        for line, row in enumerate(reader, start=2):
            row = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k is not None}
            if not row.get("path"):
                raise ConfigError(f"manifest {path} line {line} has an empty path; fill it in or delete the line")
            video = Path(row["path"]).expanduser()
            video = video if video.is_absolute() else path.parent / video
            if not video.is_file():
                raise ConfigError(f"manifest {path} line {line}: video {video} does not exist; fix the path "
                                  f"(relative paths are relative to the manifest's folder)")
            out.append((video, row.get("subject", ""), row.get("session", "")))
    return out


def find_videos(inputs: Sequence[str | Path]) -> list[tuple[Path, str, str]]:
    """(absolute video path, subject, session) for every video in ``inputs``, in order, without duplicates."""
    found: list[tuple[Path, str, str]] = []
    for item in inputs:
        path = Path(item).expanduser()
        if path.is_dir():
            videos = _videos_in(path)
            if not videos:
                raise ConfigError(f"folder {path} has no videos ({', '.join(VIDEO_SUFFIXES)}); "
                                  f"pass another folder, the files themselves, or a CSV manifest")
            found += [(v, "", "") for v in videos]
        elif path.is_file() and path.suffix.lower() in MANIFEST_SUFFIXES:
            found += _read_manifest(path)
        elif path.is_file():
            found.append((path, "", ""))
        else:
            raise ConfigError(f"input {path} does not exist; pass video files, folders of videos or a CSV manifest "
                              f"(columns path[,subject,session])")
    seen: set[Path] = set()
    unique = []
    for video, subject, session in found:
        key = video.resolve()
        if key not in seen:
            seen.add(key)
            unique.append((key, subject, session))
    return unique


def plan_jobs(inputs: Sequence[str | Path], out: Path) -> list[VideoJob]:
    """The jobs of a batch: every video in ``inputs`` and its CSV under ``out`` (see the module docstring)."""
    videos = find_videos(inputs)
    if not videos:
        raise ConfigError("no videos given; pass video files, folders of videos or a CSV manifest")
    root = Path(os.path.commonpath([str(v.parent) for v, _, _ in videos]))
    relative = [v.relative_to(root) for v, _, _ in videos]
    stems = [r.with_suffix("") for r in relative]
    clash = {s for s, n in Counter(stems).items() if n > 1}  # a.mp4 and a.avi in one folder: keep the suffix
    jobs = []
    for i, ((video, subject, session), rel, stem) in enumerate(zip(videos, relative, stems, strict=True)):
        name = f"{rel.stem}_{rel.suffix.lstrip('.').lower()}.csv" if stem in clash else f"{rel.stem}.csv"
        jobs.append(VideoJob(i, video, out.resolve() / rel.parent / name, subject, session))
    return jobs
