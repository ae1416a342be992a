"""Plots of AU probabilities over time (from an OpenFace-compatible CSV written by ``aunets process``)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from aunets.core.au import AU_NAMES, parse_au
from aunets.stream.outputs import replace_when_whole


def plot_au_csv(csv_path: Path, out_png: Path, title: str | None = None) -> Path:
    """One row per AU: raw probability (line) and smoothed presence (shaded), against time in seconds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with Path(csv_path).open(newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r["face_id"] in ("0", "")]
    if not rows:
        raise ValueError(f"{csv_path} has no rows to plot")
    aus = [parse_au(c[:-2]) for c in rows[0] if c.endswith("_p")]
    t = np.array([float(r["timestamp"]) for r in rows])
    fig, axes = plt.subplots(len(aus), 1, figsize=(11, 0.75 * len(aus) + 1.2), sharex=True)
    axes = np.atleast_1d(axes)
    for ax, au in zip(axes, aus, strict=True):
        key = f"AU{au:02d}"
        p = np.array([float(r[f"{key}_p"]) if r[f"{key}_p"] else np.nan for r in rows])
        on = np.array([r[f"{key}_c"] == "1" for r in rows])
        ax.fill_between(t, 0, 1, where=on, color="tab:orange", alpha=0.25, step="mid", linewidth=0)
        ax.plot(t, p, color="tab:blue", linewidth=1.0)
        ax.set_ylim(0, 1)
        ax.set_yticks([])
        ax.set_ylabel(f"{key}\n{AU_NAMES.get(au, '')}", rotation=0, ha="right", va="center", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
    axes[-1].set_xlabel("time (s)")
    fig.suptitle(title or f"AU probability (line) and smoothed presence (shaded): {Path(csv_path).name}", fontsize=10)
    fig.tight_layout()
    out_png = Path(out_png)
    try:  # written beside and renamed into place when whole: never a torn or half-written plot
        with replace_when_whole(out_png, "--plot") as tmp:
            fig.savefig(tmp, dpi=110, format=out_png.suffix.lstrip(".").lower() or "png")
    finally:
        plt.close(fig)
    return out_png
