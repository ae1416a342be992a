"""One dataset layer over every supported layout: synthetic generator output, BP4D (AUNets lists), FERA 2017
and a generic CSV manifest. Everything is read into a :class:`~aunets.models.data.sample.FrameSet`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aunets.core.errors import ConfigError
from aunets.models.data.bp4d import is_bp4d, load_bp4d
from aunets.models.data.csv_manifest import load_csv_manifest
from aunets.models.data.fera import is_fera, load_fera
from aunets.models.data.sample import FrameRecord, FrameSet
from aunets.models.data.synthetic import is_synthetic, load_synthetic

LAYOUTS: tuple[str, ...] = ("synthetic", "bp4d", "fera", "csv")

__all__ = ["LAYOUTS", "FrameRecord", "FrameSet", "detect_layout", "load_dataset"]


def detect_layout(path: Path | str) -> str:
    """Which layout ``path`` holds: ``synthetic``, ``bp4d``, ``fera`` or ``csv`` (a ``.csv`` file)."""
    p = Path(path)
    if p.is_file() and p.suffix.lower() == ".csv":
        return "csv"
    if not p.exists():
        raise ConfigError(f"dataset {p} does not exist")
    if is_synthetic(p):
        return "synthetic"
    if is_fera(p):
        return "fera"
    if is_bp4d(p):
        return "bp4d"
    if (p / "manifest.csv").is_file():
        return "csv"
    raise ConfigError(
        f"cannot tell the layout of {p}: expected a synthetic set (manifest.json + labels.csv from `aunets synth`), "
        f"a BP4D tree (<mode>/fold_<k>/AU<xx>/train.txt), a FERA 2017 tree (Train/frames, Train/occ) or a CSV "
        f"manifest (a .csv file or DIR/manifest.csv)"
    )


def load_dataset(path: Path | str, kind: str = "auto", **options: Any) -> FrameSet:
    """Read a dataset of any supported layout; ``options`` go to the layout's loader
    (bp4d: fold, mode, path_map; fera: view_map; synthetic: prefer)."""
    p = Path(path)
    layout = detect_layout(p) if kind == "auto" else kind
    if layout == "synthetic":
        return load_synthetic(p, **options)
    if layout == "bp4d":
        return load_bp4d(p, **options)
    if layout == "fera":
        return load_fera(p, **options)
    if layout == "csv":
        return load_csv_manifest(p if p.is_file() else p / "manifest.csv")
    raise ConfigError(f"unknown dataset layout {layout!r}; choose one of {('auto', *LAYOUTS)}")
