"""The issue-24 targets on real faces: the figures' arithmetic on known outputs, and a reduced run of the default
engine on a few inter-faces test people (skips where ``../shared/realfaces`` is absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aunets.models.data.realfaces import RealItem, default_root, load_interfaces
from aunets.models.realface_benchmark import ClipOutput, clip_path, portrait_figures, run_engine
from aunets.models.realface_targets import cross_talk, intensity_at_rest, stillness, targets
from aunets.stream.pipeline import Pipeline, PipelineConfig

ROOT = default_root()
needs_collection = pytest.mark.skipif(not (ROOT / "interfaces").is_dir(), reason=f"no real-face collection at {ROOT}")
AUS = (1, 12)


def _out(raw: np.ndarray, intensity: np.ndarray | None = None) -> ClipOutput:
    return ClipOutput(AUS, raw, raw >= 0.5, raw, raw, intensity)


def _item(kind: str, name: str, expression: str = "") -> RealItem:
    return RealItem(kind, name, "test", (Path(f"{name}.jpg"),), expression)


def test_cross_talk_is_the_rise_over_the_same_persons_neutral_level() -> None:
    london = np.zeros((50, 2), np.float32)
    london[:25] = [0.1, 0.0]
    london[25:] = [0.3, 0.9]  # AU1 rises by 0.2 on the smile, AU12 by 0.9
    london[40] = np.nan  # no face: left out
    neutral_a, neutral_b = np.full((50, 2), 0.1, np.float32), np.full((50, 2), 0.3, np.float32)
    smiling = np.tile(np.float32([0.2, 0.8]), (50, 1))  # inter-faces: AU1 0.2 against the neutral mean 0.2
    outputs = {"l": _out(london), "n1": _out(neutral_a), "n2": _out(neutral_b), "s": _out(smiling)}
    items = {"l": _item("london", "l"), "n1": _item("interfaces", "n1", "N"), "n2": _item("interfaces", "n2", "N"),
             "s": _item("interfaces", "s", "L")}  # fmt: skip
    ct = cross_talk(outputs, items)
    assert ct["smiles"] == {"london": 1, "interfaces": 1} and ct["neutral_portraits"] == 2
    assert ct["per_au"]["AU01"]["london"] == pytest.approx(0.2)
    assert ct["per_au"]["AU01"]["interfaces"] == pytest.approx(0.0, abs=1e-6)
    assert ct["per_au"]["AU01"]["all"] == pytest.approx(0.1)
    assert ct["per_au"]["AU12"]["all"] == pytest.approx((0.9 + 0.6) / 2)
    assert ct["max_rise_checked"] == pytest.approx(0.1)  # AU12 may rise on a smile: not checked


def test_stillness_skips_the_first_frames_and_the_change_of_photo() -> None:
    still = np.zeros((50, 2), np.float32)
    still[0] = 1.0  # the first frames (no flow yet) are not counted
    still[2::2, 0] = 0.02  # AU1 alternates 0 / 0.02: |Δp| 0.02 on every pair
    london = np.zeros((50, 2), np.float32)
    london[25:] = 1.0  # the change of photo at frame 25 is not a still pair
    outputs = {"c": _out(still), "l": _out(london)}
    s = stillness(outputs, {"c": _item("canada", "c"), "l": _item("london", "l")})
    assert s["raw"]["pairs"] == 48 + 46
    assert s["raw"]["per_au"]["AU01"] == pytest.approx(0.02 * 48 / 94)
    assert s["raw"]["per_au"]["AU12"] == 0.0 and s["raw"]["max_au"] == pytest.approx(0.02 * 48 / 94)


def test_intensity_at_rest_counts_zero_as_the_csv_writes_it() -> None:
    raw = np.zeros((50, 2), np.float32)
    inten = np.zeros((50, 2), np.float32)
    inten[:, 1] = 0.0004  # written as 0.000: zero
    inten[10:20, 0] = 0.5  # 10 of the 45 scored frames (5-49) not zero
    outputs = {"n": _out(raw, inten), "s": _out(raw, np.ones((50, 2), np.float32))}
    rest = intensity_at_rest(outputs, {"n": _item("interfaces", "n", "N"), "s": _item("interfaces", "s", "S")})
    assert rest is not None and rest["frames"] == 45
    assert rest["per_au"] == {"AU01": pytest.approx(35 / 45), "AU12": 1.0}
    assert intensity_at_rest({"n": _out(raw)}, {"n": _item("interfaces", "n", "N")}) is None


def test_portrait_figures_and_the_targets_table() -> None:
    neutral = np.zeros((50, 2), np.float32)
    neutral[5:15, 0] = 0.9  # AU1 on in 10 of 45 scored frames of one neutral person
    outputs = {"n1": _out(neutral), "n2": _out(np.full((50, 2), 0.2, np.float32)),
               "s1": _out(np.tile(np.float32([0.0, 0.8]), (50, 1))), "s2": _out(np.full((50, 2), 0.1, np.float32))}
    items = {n: _item("interfaces", n, "N" if n.startswith("n") else "S") for n in outputs}
    f = portrait_figures(outputs, items)
    # AU12 means: neutral 0, 0.2; smiling 0.8, 0.1 -> 3 of 4 pairs ranked right
    assert f["smile_auc"] == {"AU12": 0.75, "neutral_people": 2, "smiling_people": 2}
    assert f["neutral_false_positive"]["per_au"]["AU01"] == pytest.approx(10 / 90)
    t = targets({"engine_on": {"interfaces": f, "interfaces_test": f}}, "engine_on")
    assert t["interfaces_auc"]["met"] == "not met" and t["interfaces_auc"]["shown"] == "0.75"
    assert t["interfaces_fp_max_au"]["value"] == pytest.approx(10 / 90) and t["interfaces_fp_max_au"]["goal"] == "≤ 5 %"
    assert t["interfaces_fp"]["met"] == "not met" and t["clip_mean_r"]["met"] == "n/a"  # no clip figures given
    assert t["order"][0] == "clip_mean_r" and all(k in t for k in t["order"])


def test_an_au_that_never_changes_on_the_clip_counts_as_no_agreement() -> None:
    """AU4 constant (r undefined): r = 0 in its own row, the lowest r and the mean, not left out as "n/a"."""
    per_au = {"AU01": {"r": 0.7}, "AU02": {"r": 0.5}, "AU04": {"r": None}}
    t = targets({"engine_on": {"clip": {"vs_openface_offline": {"mean_r": 0.6, "per_au": per_au}}}}, "engine_on")
    assert t["clip_au4_r"]["value"] == 0.0 and t["clip_au4_r"]["met"] == "not met"
    assert t["clip_min_r"]["value"] == 0.0 and t["clip_au1_r"]["met"] == "met"
    assert t["clip_mean_r"]["value"] == pytest.approx(0.4)  # (0.7 + 0.5 + 0) / 3, not the mean over defined r


@needs_collection
@pytest.mark.slow
def test_default_engine_on_a_few_inter_faces_test_people(tmp_path: Path) -> None:
    """Three neutral and two smiling test people: the figures exist and are in range; AU12 ranks the smiles."""
    test = [i for i in load_interfaces(ROOT) if i.split == "test"]
    people = [i for i in test if i.expression == "N"][:3] + [i for i in test if i.expression in ("S", "L")][:2]
    pipeline = Pipeline(PipelineConfig())
    outputs = {i.clip_name: run_engine(pipeline, clip_path(i, tmp_path)) for i in people}
    items = {i.clip_name: i for i in people}
    assert all(len(o.value) == 50 and o.raw is not None for o in outputs.values())
    f = portrait_figures(outputs, items)
    assert f["smile_auc"]["neutral_people"] == 3 and f["smile_auc"]["smiling_people"] == 2
    assert f["smile_auc"]["AU12"] >= 0.8  # a floor with margin (the default: real_faces.json, interfaces_test)
    s = stillness(outputs, items)
    assert s["raw"]["pairs"] >= 0.9 * 5 * 48 and 0.0 < s["raw"]["max_au"] < 0.2
    rest = intensity_at_rest(outputs, items)
    assert rest is not None and rest["frames"] >= 0.9 * 3 * 45
