"""The reduced real-face benchmark (a few test-split people and one talking clip, default engine), so a regression on
real faces fails CI; and the figures' arithmetic on known inputs. Skips where ``../shared/realfaces`` is absent.

The floors and ceilings are what the default engine achieves on these people (see the comments), with a margin.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aunets.models.data.realfaces import default_root, load_realfaces
from aunets.models.realface_benchmark import ClipOutput, auc, clip_path, on_rate, read_openface, run_engine, smile_auc
from aunets.stream.pipeline import Pipeline, PipelineConfig

ROOT = default_root()
needs_collection = pytest.mark.skipif(not (ROOT / "london").is_dir(), reason=f"no real-face collection at {ROOT}")

# the default engine with the default calibration (on) on these 4 + 2 + 1 measured AU12 AUC 0.875 (0.875 with
# calibration off), neutral false positives 2.5 % (8.8 % off) and AU12 on in 0 % of the talking frames
AU12_AUC_FLOOR = 0.75
NEUTRAL_FP_CEILING = 0.06
TALKING_AU12_CEILING = 0.05


def test_auc_and_on_rate_arithmetic() -> None:
    assert auc([0.1, 0.2], [0.3, 0.4]) == 1.0
    assert auc([0.3, 0.4], [0.1, 0.2]) == 0.0
    assert auc([0.2, 0.5], [0.2, 0.6]) == pytest.approx(0.625)  # one tie counted half, 2.5 of 4 pairs
    value = np.zeros((50, 2), np.float32)
    value[30:, 0] = 1.0
    value[5] = np.nan  # no face: left out
    o = ClipOutput((12, 6), value, value >= 0.5)
    r = on_rate({"c": o}, {"c": range(0, 40)}, [12, 6])
    assert r["frames"] == 39 and r["per_au"]["AU12"] == pytest.approx(10 / 39) and r["per_au"]["AU06"] == 0.0
    assert smile_auc({"a": o, "b": ClipOutput((12, 6), np.zeros((50, 2), np.float32), np.zeros((50, 2), bool))}
                     )["AU12"] == 0.75  # fmt: skip


@needs_collection
def test_per_person_clips_are_made_as_the_collection_says_and_deterministically(tmp_path: Path) -> None:
    import cv2

    london = next(i for i in load_realfaces(ROOT) if i.set == "london" and i.split == "test")
    a, b = clip_path(london, tmp_path / "a"), clip_path(london, tmp_path / "b")
    assert a.read_bytes() == b.read_bytes()
    cap = cv2.VideoCapture(str(a))
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (480, 480)
    assert cap.get(cv2.CAP_PROP_FPS) == 25 and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 50
    frames = [cap.read()[1].astype(np.float32) for _ in range(50)]
    cap.release()
    assert np.abs(frames[24] - frames[0]).mean() < 2 < np.abs(frames[25] - frames[24]).mean()  # neutral, smiling
    assert len(read_openface(ROOT / "openface" / "offline" / f"{london.clip_name}.csv").value) == 50


@needs_collection
@pytest.mark.slow
def test_default_engine_on_a_few_test_people_and_a_talking_clip(tmp_path: Path) -> None:
    items = [i for i in load_realfaces(ROOT) if i.split == "test"]
    london = [i for i in items if i.set == "london"][:4]
    canada = [i for i in items if i.set == "canada"][:2]
    grid = [i for i in items if i.set == "grid"][:1]
    pipeline = Pipeline(PipelineConfig())
    out = {i.clip_name: run_engine(pipeline, clip_path(i, tmp_path)) for i in london + canada + grid}
    assert all(len(out[i.clip_name].value) == 50 for i in london + canada)
    auc12 = smile_auc({i.clip_name: out[i.clip_name] for i in london})
    neutral = on_rate({i.clip_name: out[i.clip_name] for i in london + canada},
                      {i.clip_name: range(5, 25) if i.set == "london" else range(5, 50) for i in london + canada},
                      list(pipeline.aus))  # fmt: skip
    talking = on_rate({grid[0].clip_name: out[grid[0].clip_name]}, None, [12, 14, 23, 24])
    assert neutral["frames"] >= 0.9 * (4 * 20 + 2 * 45)  # faces found on (almost) every neutral frame
    assert auc12["people"] == 4 and auc12["AU12"] >= AU12_AUC_FLOOR
    assert neutral["rate"] <= NEUTRAL_FP_CEILING
    assert talking["per_au"]["AU12"] <= TALKING_AU12_CEILING

