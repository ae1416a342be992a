"""The default CSV is a drop-in for OpenFace 2.2's FeatureExtraction CSV: its header, separator and column order,
read with the idioms OpenFace users write (``df[" AU12_r"]``, ``df[" success"]``) and with the reader the project
uses on real OpenFace files; ``--csv-style compact`` keeps the plain layout.

The reference is a real OpenFace 2.2 output in ``../shared/realfaces/openface`` (its AU names and their order) and
FeatureExtraction's own header rule (OpenFace's ``RecorderCSV::Open``: ``"frame, face_id, timestamp, confidence,
success"``, then each ``", " + name``: with ``-pose`` ``pose_Tx, pose_Ty, pose_Tz, pose_Rx, pose_Ry, pose_Rz``
(we have no translation: the ``pose_R`` ones), the ``_r`` names sorted, then the ``_c`` names sorted). The collection's
files carry OpenFace's AU columns as it wrote them, but their header was re-joined with ``","`` and has no
``face_id``, so the leading columns and the separator are checked against the rule, not that file.
"""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from aunets.core.au import au_key
from aunets.core.headpose import HeadPose
from aunets.core.results import FaceResult
from aunets.models.data.realfaces import default_root
from aunets.models.realface_benchmark import OPENFACE_AUS, read_openface
from aunets.stream.csv_sink import OpenFaceCsvWriter, csv_columns

AUS = (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24)
OPENFACE_OUTPUTS = default_root() / "openface" / "offline"
needs_openface = pytest.mark.skipif(not OPENFACE_OUTPUTS.is_dir(), reason=f"no OpenFace outputs at {OPENFACE_OUTPUTS}")


def _results(n: int = 6, no_face: tuple[int, ...] = (2,)) -> list[FaceResult]:
    """``n`` frames of one face at 25 fps, with distinct values per AU and frame; frames in ``no_face`` have none."""
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        t_ns = 1_000_000_000 + i * 40_000_000
        if i in no_face:
            out.append(FaceResult(i, t_ns, 1e9 + i * 0.04))
            continue
        p = rng.uniform(0.01, 0.99, len(AUS))
        out.append(FaceResult(
            i, t_ns, 1e9 + i * 0.04, track_id=0, box=(10.0, 20.0, 100.0, 120.0), confidence=0.93, view=4,
            probabilities=dict(zip(AUS, p.tolist(), strict=True)), smoothed=dict(zip(AUS, p.tolist(), strict=True)),
            states={a: bool(v >= 0.5) for a, v in zip(AUS, p, strict=True)},
            intensity={a: float(5 * v) for a, v in zip(AUS, p, strict=True)},
            pose=HeadPose(0.1 * i, -0.2, 0.05),
        ))  # fmt: skip
    return out


def _write(path: Path, results: list[FaceResult], style: str = "openface") -> Path:
    writer = OpenFaceCsvWriter(path, AUS, fps=25.0, intensity=True, style=style)
    writer.publish_results(results)
    writer.close()
    return path


def _feature_extraction_header(reg: list[str], cls: list[str], pose: list[str]) -> str:
    """The header line OpenFace 2.2's FeatureExtraction writes for a sequence with the pose (``pose`` of its
    columns) and the AUs (``-pose -aus``)."""
    line = "frame, face_id, timestamp, confidence, success" + "".join(f", {name}" for name in pose)
    line += "".join(f", {name}_r" for name in sorted(reg))
    return line + "".join(f", {name}_c" for name in sorted(cls))


@needs_openface
def test_header_is_openface_feature_extractions_for_our_aus_then_the_probabilities(tmp_path: Path) -> None:
    real = sorted(OPENFACE_OUTPUTS.glob("*.csv"))[0]
    real_names = real.read_text(encoding="utf-8").splitlines()[0].split(",")
    reg = [c[:-2] for c in real_names if c.endswith("_r")]
    cls = [c[:-2] for c in real_names if c.endswith("_c")]
    assert "AU12" in reg and "AU28" in cls and "AU28" not in reg  # really OpenFace's AU set
    # OpenFace wrote every _r before every _c, each sorted by name, as its header rule says
    assert real_names.index(f"{reg[-1]}_r") < real_names.index(f"{cls[0]}_c")
    assert reg == sorted(reg) and cls == sorted(cls)

    ours = {au_key(a) for a in AUS}
    # our AUs that OpenFace has keep OpenFace's names and places; AU24 (not in OpenFace) sorts in among them
    expected = _feature_extraction_header([n for n in reg if n in ours] + ["AU24"], [n for n in cls if n in ours]
                                          + ["AU24"], ["pose_Rx", "pose_Ry", "pose_Rz"])  # fmt: skip
    expected += "".join(f", {au_key(a)}_p" for a in AUS)
    header = _write(tmp_path / "o.csv", _results()).read_text(encoding="utf-8").splitlines()[0]
    assert header == expected
    assert header.split(", ") == csv_columns(AUS, intensity=True)


def test_pandas_idioms_of_openface_users_work(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas", reason="pandas is in the [dev] extra")
    results = _results()
    df = pd.read_csv(_write(tmp_path / "o.csv", results))
    assert list(df.columns[:8]) == ["frame", " face_id", " timestamp", " confidence", " success", " pose_Rx",
                                    " pose_Ry", " pose_Rz"]  # fmt: skip
    assert df[" success"].tolist() == [0 if r.no_face else 1 for r in results]
    assert df["frame"].tolist() == [r.frame_index + 1 for r in results]
    assert df[" timestamp"].tolist() == pytest.approx([r.frame_index / 25.0 for r in results])
    ok = df[df[" success"] == 1]
    face = [r for r in results if not r.no_face]
    # every AU column is numeric (a no-face row is NaN, not text that would make the column `object`)
    for column in (f" {au_key(a)}_{suffix}" for a in AUS for suffix in "rcp"):
        assert df[column].dtype.kind == "f", column
    assert ok[" AU12_r"].tolist() == pytest.approx([r.intensity[12] for r in face], abs=6e-4)
    assert ok[" AU12_c"].astype(int).tolist() == [int(r.states[12]) for r in face]
    assert ok[" AU12_p"].tolist() == pytest.approx([r.probabilities[12] for r in face], abs=6e-5)
    assert df[df[" success"] == 0][" AU12_r"].isna().all()
    assert ok[" pose_Rx"].tolist() == pytest.approx([r.pose.rx for r in face if r.pose], abs=6e-4)
    assert df[" pose_Ry"].dtype.kind == "f" and df[df[" success"] == 0][" pose_Ry"].isna().all()
    aus = [c.strip() for c in df.columns if c.strip().startswith("AU") and c.endswith("_r")]  # py-feat's way
    assert aus == [f"{au_key(a)}_r" for a in AUS]
    stripped = pd.read_csv(tmp_path / "o.csv", skipinitialspace=True)
    assert stripped["AU12_r"].tolist()[:2] == pytest.approx(df[" AU12_r"].tolist()[:2])


def test_the_reader_of_real_openface_files_reads_ours(tmp_path: Path) -> None:
    results = _results()
    out = read_openface(_write(tmp_path / "o.csv", results))
    assert out.aus == OPENFACE_AUS
    for r in results:
        row = out.value[r.frame_index + 1]  # our frames are 1-based, as FeatureExtraction's
        if r.no_face:
            assert np.isnan(row).all()
        else:
            assert row.tolist() == pytest.approx([r.intensity[a] for a in OPENFACE_AUS], abs=6e-4)
            assert out.on[r.frame_index + 1].tolist() == [r.states[a] for a in OPENFACE_AUS]


@needs_openface
def test_real_openface_file_and_ours_read_alike_with_csv_module() -> None:
    """The same ``csv.DictReader(fh, skipinitialspace=True)`` reads a real OpenFace output's AU columns."""
    real = sorted(OPENFACE_OUTPUTS.glob("*.csv"))[0]
    with real.open(newline="", encoding="utf-8") as fh:
        row = next(csv.DictReader(fh, skipinitialspace=True))
    assert all(not math.isnan(float(row[f"{au_key(a)}_r"])) for a in OPENFACE_AUS)


def test_compact_style_keeps_the_plain_layout(tmp_path: Path) -> None:
    results = _results()
    path = _write(tmp_path / "c.csv", results, style="compact")
    lines = path.read_text(encoding="utf-8").splitlines()
    assert ", " not in lines[0]
    header = lines[0].split(",")
    assert header == csv_columns(AUS, intensity=True, style="compact")
    assert header[5:8] == ["AU01_c", "AU02_c", "AU04_c"] and header[-4:] == ["AU24_r", "pose_Rx", "pose_Ry", "pose_Rz"]
    rows = list(csv.DictReader(path.open(newline="")))
    assert rows[2]["success"] == "0" and rows[2]["AU12_r"] == "" and rows[2]["AU12_p"] == ""
    assert float(rows[0]["AU12_p"]) == pytest.approx(results[0].probabilities[12], abs=6e-5)


def test_csv_style_option_is_checked_by_the_cli(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, "-m", "aunets.cli", "process", "x.mp4", "--csv", str(tmp_path / "o.csv"),
                          "--csv-style", "excel"], capture_output=True, text=True, timeout=60)  # fmt: skip
    assert res.returncode == 2 and "--csv-style" in res.stderr and "openface" in res.stderr
