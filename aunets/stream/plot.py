"""Plots of AU probabilities over time (from an OpenFace-compatible CSV written by ``aunets process``).

One column of panels per face (``face_id``), one panel per AU: the raw probability (line, y axis 0..1), the
smoothed presence (shaded) and the engine's threshold (dashed), against the time in seconds. A face's line is
broken where it is not in the frame.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from aunets.core.au import AU_NAMES, parse_au
from aunets.stream.outputs import replace_when_whole

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MAX_FACES = 8
"""Faces plotted side by side at most (the largest number of rows first); more are named in the title."""


def _read_rows(csv_path: Path) -> list[dict[str, str]]:
    """The CSV's rows with the column names stripped, so OpenFace's ``", "``-separated header reads too."""
    with Path(csv_path).open(newline="", encoding="utf-8") as fh:
        return [{k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
                for row in csv.DictReader(fh, skipinitialspace=True)]


def au_figure(csv_path: Path, title: str | None = None, thresholds: Mapping[int, float] | None = None) -> Figure:
    """The figure (see the module): axes ``[AU row, face column]``. ``thresholds``: AU -> the threshold the
    presence is decided with (on the median-smoothed probability), drawn as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = _read_rows(csv_path)
    if not rows:
        raise ValueError(f"{csv_path} has no rows to plot")
    aus = [parse_au(c[:-2]) for c in rows[0] if c.endswith("_p") and c.startswith("AU")]
    frames = sorted({int(r["frame"]) for r in rows})
    time_of = {int(r["frame"]): float(r["timestamp"]) for r in rows}
    t = np.array([time_of[f] for f in frames])
    column = {f: i for i, f in enumerate(frames)}
    found = [r for r in rows if r["success"] == "1"]
    counts: dict[str, int] = {}
    for r in found:
        counts[r["face_id"]] = counts.get(r["face_id"], 0) + 1
    faces = sorted(counts, key=lambda f: (-counts[f], int(f)))
    shown = sorted(faces[:MAX_FACES], key=int) or ["0"]
    n = len(shown)
    fig, axes = plt.subplots(len(aus), n, figsize=(max(11.0, 4.2 * n + 1.5), 0.8 * len(aus) + 1.4),
                             sharex=True, sharey=True, squeeze=False)
    for j, face in enumerate(shown):
        mine = [r for r in found if r["face_id"] == face]
        axes[0, j].set_title(f"face {face} ({len(mine)} of {len(frames)} frames)", fontsize=9)
        for i, au in enumerate(aus):
            key = f"AU{au:02d}"
            p = np.full(len(frames), np.nan)
            on = np.zeros(len(frames), dtype=bool)
            for r in mine:
                k = column[int(r["frame"])]
                p[k] = float(r[f"{key}_p"]) if r[f"{key}_p"] else np.nan
                on[k] = r.get(f"{key}_c") == "1"
            ax = axes[i, j]
            ax.fill_between(t, 0, 1, where=on, color="tab:orange", alpha=0.3, step="mid", linewidth=0)
            ax.plot(t, p, color="tab:blue", linewidth=1.0)
            if thresholds and au in thresholds:
                ax.axhline(thresholds[au], color="tab:red", linestyle="--", linewidth=0.8)
            ax.set_ylim(0, 1)
            ax.set_yticks([0.0, 0.5, 1.0])
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
            if j == 0:
                ax.set_ylabel(f"{key}\n{AU_NAMES.get(au, '')}", rotation=0, ha="right", va="center", fontsize=8)
        axes[-1, j].set_xlabel("time (s)")
    legend = "probability (line, 0..1), smoothed presence (shaded)"
    if thresholds:
        legend += ", threshold (dashed)"
    more = f"; {len(faces) - n} more faces not shown" if len(faces) > n else ""
    fig.suptitle(f"{title or Path(csv_path).name}\n{legend}{more}", fontsize=10)
    fig.tight_layout()
    return fig


def plot_au_csv(csv_path: Path, out_png: Path, title: str | None = None,
                thresholds: Mapping[int, float] | None = None) -> Path:
    """Write :func:`au_figure` of ``csv_path`` to ``out_png``."""
    import matplotlib.pyplot as plt

    fig = au_figure(csv_path, title, thresholds)
    out_png = Path(out_png)
    try:  # written beside and renamed into place when whole: never a torn or half-written plot
        with replace_when_whole(out_png, "--plot") as tmp:
            fig.savefig(tmp, dpi=100, format=out_png.suffix.lstrip(".").lower() or "png")
    finally:
        plt.close(fig)
    return out_png
