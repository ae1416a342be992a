"""The warp-realism check: its arithmetic on known scores, and a reduced run (one person, AU12 and AU4 scripted) of
``aunets synth-photo`` scored by the bundled FaceLandmarker (skips without the real-face collection or mediapipe)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from aunets.core.au import BP4D_AUS, au_key
from aunets.models.data.realfaces import default_root
from aunets.models.teacher import AU_FROM_BLENDSHAPES
from aunets.models.warp_realism import read_labels, realism, script_for


def test_script_puts_each_au_alone_in_turn() -> None:
    script, seconds = script_for((12, 4))
    assert script == "12:0.50-0.90,4:1.70-2.10" and seconds == pytest.approx(3.2)  # the last ramp ends at 2.4 s


def test_realism_is_r_of_the_applied_intensity_against_the_blendshape_over_its_neutral() -> None:
    names = sorted({n for shapes in AU_FROM_BLENDSHAPES.values() for n in shapes} | {"mouthPucker"})
    rows, scores = [], []
    for seq, base in (("a", 0.3), ("b", 0.0)):  # person a rests at 0.3 on every blendshape: taken off
        for t in range(20):
            i12 = min(1.0, t / 10) if t < 15 else 0.0
            rows.append({"sequence": seq, **{f"{au_key(a)}_i": f"{i12 if a == 12 else 0.0:.3f}" for a in BP4D_AUS}})
            s = np.full(len(names), base, np.float32)
            s[names.index("mouthSmileLeft")] = s[names.index("mouthSmileRight")] = base + 0.5 * i12
            s[names.index("browInnerUp")] = base + (0.2 if t % 2 else 0.0)  # AU1's blendshape: noise, not AU1
            scores.append(s)
    out = realism(rows, names, np.stack(scores))
    assert out["per_au"]["AU12"]["r"] == pytest.approx(1.0) and out["per_au"]["AU12"]["meets"]
    assert out["per_au"]["AU12"]["apex_rise"] == pytest.approx(0.5 * np.mean([0.8, 0.9, 1, 1, 1, 1, 1]))
    assert out["per_au"]["AU01"]["r"] is None  # AU1 never applied: r undefined, listed as below
    assert "AU01" in out["below"] and "AU12" not in out["below"]
    assert set(out["per_au"]["AU24"]["alternatives"]) == {"mouthPucker", "mouthRoll"}


@pytest.mark.slow
@pytest.mark.skipif(not (default_root() / "london").is_dir(), reason="no real-face collection")
def test_a_scripted_smile_and_frown_are_read_by_mediapipe(tmp_path: Path) -> None:
    pytest.importorskip("mediapipe", reason="pip install -e '.[teacher]'")
    from aunets.models.warp_realism import blendshape_scores

    script, seconds = script_for((12, 4))
    out = tmp_path / "set"
    subprocess.run([sys.executable, "-m", "aunets", "synth-photo", "--out", str(out), "--people", "1",
                    "--sequences", "1", "--seconds", str(seconds), "--seed", "3", "--script", script, "--no-jitter",
                    "--no-crops", "--no-video", "--no-progress", "--workers", "1"], check=True,
                   timeout=300)  # fmt: skip
    rows = read_labels(out)
    names, scores = blendshape_scores(out, rows)
    result = realism(rows, names, scores, aus=(12, 4))
    assert result["faces_found"] == len(rows) == round(seconds * 25)
    assert result["per_au"]["AU12"]["r"] >= 0.6  # the smile warp is read as a smile (measured ~0.9)
    assert result["per_au"]["AU12"]["apex_rise"] > 0.1
