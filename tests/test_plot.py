"""The ``--plot`` figure: a y axis, the thresholds, and one column of panels per face."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from aunets.core.au import BP4D_AUS
from aunets.core.results import FaceResult
from aunets.stream.csv_sink import OpenFaceCsvWriter
from aunets.stream.plot import au_figure, plot_au_csv

THRESHOLDS = {a: 0.3 + 0.02 * i for i, a in enumerate(BP4D_AUS)}


def _face(index: int, track: int, p: float) -> FaceResult:
    return FaceResult(index, index * 40_000_000, 0.0, track_id=track, box=(0.0, 0.0, 10.0, 10.0), confidence=0.9,
                      view=4, probabilities={a: p for a in BP4D_AUS}, smoothed={a: p for a in BP4D_AUS},
                      states={a: p >= THRESHOLDS[a] for a in BP4D_AUS}, t_media=index * 0.04)


def _two_face_csv(path: Path) -> dict[int, np.ndarray]:
    """20 frames: face 0 throughout (probability rising), face 3 in frames 5..14 only (0.8), frame 19 without a
    face. Returns each face's expected AU probability per frame (NaN where it is absent)."""
    expected = {0: np.full(20, np.nan), 3: np.full(20, np.nan)}
    writer = OpenFaceCsvWriter(path, BP4D_AUS, fps=25.0)
    for i in range(20):
        if i == 19:
            writer.publish_results([FaceResult(i, i * 40_000_000, 0.0, t_media=i * 0.04)])
            continue
        results = [_face(i, 0, i / 20)]
        expected[0][i] = round(i / 20, 4)
        if 5 <= i < 15:
            results.append(_face(i, 3, 0.8))
            expected[3][i] = 0.8
        writer.publish_results(results)
    writer.close()
    return expected


def _check(fig: object, expected: dict[int, np.ndarray]) -> None:
    axes = np.array(fig.axes).reshape(len(BP4D_AUS), 2)  # type: ignore[attr-defined]
    assert [ax.get_title().split(" (")[0] for ax in axes[0]] == ["face 0", "face 3"]
    assert "10 of 20 frames" in axes[0, 1].get_title()
    t = np.arange(20) * 0.04
    for j, face in enumerate((0, 3)):
        for i, au in enumerate(BP4D_AUS):
            ax = axes[i, j]
            curve, threshold = ax.get_lines()
            np.testing.assert_allclose(curve.get_xdata(), t)
            np.testing.assert_allclose(curve.get_ydata(), expected[face])  # NaN where the face is absent
            assert list(threshold.get_ydata()) == [THRESHOLDS[au]] * 2
            assert list(ax.get_yticks()) == [0.0, 0.5, 1.0] and ax.get_ylim() == (0.0, 1.0)
    fig.canvas.draw()  # type: ignore[attr-defined]
    assert [label.get_text() for label in axes[0, 0].get_yticklabels()] == ["0.0", "0.5", "1.0"]


def test_one_column_per_face_with_y_axis_and_thresholds(tmp_path: Path) -> None:
    table = tmp_path / "two.csv"
    expected = _two_face_csv(table)
    _check(au_figure(table, thresholds=THRESHOLDS), expected)
    png = plot_au_csv(table, tmp_path / "two.png", thresholds=THRESHOLDS)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_reads_openface_style_header(tmp_path: Path) -> None:
    """OpenFace's FeatureExtraction separates names and values with ", "."""
    table = tmp_path / "two.csv"
    expected = _two_face_csv(table)
    lines = table.read_text().splitlines()
    spaced = tmp_path / "spaced.csv"
    spaced.write_text("\n".join(", ".join(line.split(",")) for line in lines) + "\n")
    _check(au_figure(spaced, thresholds=THRESHOLDS), expected)


@pytest.mark.slow
def test_process_plots_every_face_of_a_real_clip(tiny_engine: Path, tmp_path: Path) -> None:
    """``aunets process --max-faces 3 --plot`` on the bundled three-person clip: three face columns."""
    from PIL import Image

    repo = Path(__file__).resolve().parents[1]
    table, png = tmp_path / "trio.csv", tmp_path / "trio.png"
    res = subprocess.run([sys.executable, "-m", "aunets.cli", "process", str(repo / "media" / "realfaces_trio.mp4"),
                          "--engine", str(tiny_engine), "--max-faces", "3", "--max-frames", "30", "--csv", str(table),
                          "--plot", str(png), "--no-progress"], capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr
    fig = au_figure(table)
    assert [ax.get_title().split(" (")[0] for ax in fig.axes[:3]] == ["face 0", "face 1", "face 2"]
    width, height = Image.open(png).size
    assert width > height  # three columns side by side
