"""Evaluation: scores match hand-computed F1 values; the CLI runs an engine bundle on a dataset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from aunets.engines.manifest import Manifest
from aunets.models.data.sample import FrameRecord, FrameSet
from aunets.models.evaluate import score
from tests.conftest import build_tiny_engine


def _frames(labels: list[int], views: list[int], seq_len: int) -> FrameSet:
    recs = tuple(
        FrameRecord(sequence=f"q{i // seq_len}", subject="s", frame=i % seq_len, image=Path("x.jpg"),
                    labels=(lab,), view=v)
        for i, (lab, v) in enumerate(zip(labels, views, strict=True))
    )
    return FrameSet(aus=(12,), records=recs, kind="test", source="hand")


def test_score_matches_hand_computed_f1() -> None:
    frames = _frames([0, 1, 1, 1, 0, 0], [4] * 6, 6)
    manifest = Manifest(name="hand", architecture="x", aus=(12,), detectors={4: "d.onnx"}, files={"d.onnx": "0"},
                        thresholds={12: 0.5}, median_window=3)
    probs = np.array([[0.2], [0.9], [0.1], [0.8], [0.7], [0.1]], dtype=np.float32)
    vp = np.zeros((6, 9), dtype=np.float32)
    vp[:, 4] = 0.6
    vp[:, 3] = 0.4
    vp[0, 3], vp[0, 4] = 0.9, 0.1  # one frame wrong, the video right
    pred = {"probs": probs, "view_probs": vp, "used_view": np.full(6, 4), "sequence_ids": np.zeros(6, dtype=int)}
    r = score(frames, manifest, pred)
    # no median: decisions 0 1 0 1 1 0 -> TP 2, FP 1, FN 1 -> F1 4/6; accuracy 4/6
    assert r["per_au"]["AU12"]["f1"]["none"] == pytest.approx(4 / 6, abs=1e-6)
    assert r["per_au"]["AU12"]["accuracy"]["none"] == pytest.approx(4 / 6, abs=1e-6)
    # causal median (w=3): .2 .55 .2 .8 .7 .7 -> 0 1 0 1 1 1 -> TP 2, FP 2, FN 1 -> F1 4/7
    assert r["per_au"]["AU12"]["f1"]["causal"] == pytest.approx(4 / 7, abs=1e-6)
    assert r["mean_f1"] == pytest.approx(4 / 7, abs=1e-6)
    # centred median: .55 .2 .8 .7 .7 .4 -> 1 0 1 1 1 0 -> TP 2, FP 2, FN 1 -> 4/7; accuracy 3/6
    assert r["mean_f1_centred"] == pytest.approx(4 / 7, abs=1e-6)
    assert r["per_au"]["AU12"]["accuracy"]["centred"] == pytest.approx(3 / 6, abs=1e-6)
    assert r["view_accuracy_frame"] == pytest.approx(5 / 6, abs=1e-6)
    assert r["view_accuracy_video"] == 1.0
    assert r["view_classifier"]["frame"]["recall"]["4"] == pytest.approx(5 / 6, abs=1e-6)
    assert r["per_view"]["4"]["mean_f1"]["causal"] == pytest.approx(4 / 7, abs=1e-6)


@pytest.mark.slow
def test_eval_cli_on_synthetic_set(tmp_path: Path) -> None:
    from aunets.cli import main
    from tests.test_data_synthetic import make_synth

    data = make_synth(tmp_path / "synth", subjects=4, views=2, seconds=0.6)
    engine = build_tiny_engine(tmp_path / "engine", size=48)
    out = tmp_path / "eval.json"
    rc = main(["eval", "--data", str(data), "--engine", str(engine), "--split", "all", "--json", str(out),
               "--no-progress"])
    assert rc == 0
    report = json.loads(out.read_text())
    assert {"mean_f1", "mean_f1_centred", "mean_f1_none", "view_accuracy_video", "per_au", "per_view"} <= set(report)
    assert report["frames"] == 4 * 2 * 15
    assert set(report["per_view"]) == {"4", "0"} or len(report["per_view"]) == 2
    assert (tmp_path / "eval.png").is_file()
    f1s = [v["f1"]["causal"] for v in report["per_au"].values() if v["f1"]["causal"] is not None]
    assert report["mean_f1"] == pytest.approx(float(np.mean(f1s)), abs=1e-5)
