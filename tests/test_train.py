"""Training: a tiny run on a small real synthetic set learns (F1 above chance on held-out subjects, through
the exported engine); an interrupted run resumes exactly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from aunets.models.sampling import balanced_weights
from aunets.models.train import Trainer, TrainingPaused
from aunets.models.train_config import TrainConfig, config_from_dict
from aunets.models.units import plan_units
from tests.test_data_synthetic import make_synth

AUS = [12, 4]
SCRIPT = "12:0.4-1.2,4:1.8-2.6"  # smile then brow lowerer, every sequence; identities, poses, lighting vary


def tiny_config(data_path: Path, **sections: Any) -> TrainConfig:
    raw: dict[str, Any] = {
        "name": "tiny",
        "seed": 0,
        "threads": 2,
        "data": {"path": str(data_path), "aus": AUS},
        "input": {"fusion": "horizontal", "size": 48, "pad": 1.15},
        "model": {"architecture": "mobilenetv2_horizontal", "pretrained": False, "kwargs": {"tiny": True}},
        "optim": {"epochs": 10, "batch_size": 16, "samples_per_epoch": 320, "lr": 5e-3, "patience": 10},
        "domain_adaptation": {"enabled": False},
        "cascade": {"enabled": False},
        "view_classifier": {"enabled": False},
        "tuning": {"median_windows": [3, 5]},
    }
    for key, value in sections.items():
        raw[key] = {**raw.get(key, {}), **value}
    return config_from_dict(raw)


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_synth(tmp_path_factory.mktemp("train") / "set", subjects=10, views=1, seconds=3.0, seed=5,
                      frame_size=(256, 192), script=SCRIPT)


def test_balanced_weights_equalise_positives() -> None:
    labels = np.array([[1], [0], [0], [0], [-1]])
    w = balanced_weights(labels)
    assert w[0] == pytest.approx(w[1:4].sum())  # positives drawn as often as negatives


def test_plan_units_cascade_and_layouts(tmp_path: Path) -> None:
    c = tiny_config(tmp_path, cascade={"enabled": True}, domain_adaptation={"enabled": True},
                    view_classifier={"enabled": True})
    names = [u.name for u in plan_units(c, range(9))]
    assert names == ["emonet", "frontal", "all", "view_classifier"]
    per = tiny_config(tmp_path, model={"layout": "per_au_view"}, cascade={"enabled": True})
    units = plan_units(per, [0, 4])
    assert [u.name for u in units] == ["view4_au12", "view4_au4", "view0_au12", "view0_au4"]
    assert units[2].init_from == "view4_au12" and units[0].init_from is None


@pytest.mark.slow
def test_tiny_training_beats_chance_on_held_out_subjects(synth: Path, tmp_path: Path) -> None:
    from aunets.engines.engine import load_engine
    from aunets.models.build import build_engine
    from aunets.models.data import load_dataset
    from aunets.models.evaluate import EvalConfig, evaluate

    out = tmp_path / "run"
    # the real recipe on a small scale: ImageNet-initialised MobileNetV2 (a tiny net from scratch does not
    # generalise to unseen faces from 6 training subjects), 48x96 RGB|flow input, 3 short epochs
    config = tiny_config(synth, model={"pretrained": True, "kwargs": {}},
                         optim={"epochs": 3, "samples_per_epoch": 192, "lr": 1e-3})
    Trainer(config, out, progress=False).run()
    assert (out / "curves.png").is_file() and (out / "config.json").is_file() and (out / "tuning.json").is_file()
    bundle = build_engine(out, tmp_path / "engine")
    engine = load_engine(bundle)
    test = load_dataset(synth).filter(split="test")
    report = evaluate(engine, test, EvalConfig(view_source="truth"), progress=False)
    labels = test.select_aus(AUS).labels()
    p = labels.mean(0)
    chance = float(np.mean(2 * p / (1 + p)))  # the best constant predictor: always "present"
    assert report["mean_f1_none"] > chance + 0.15, (report["mean_f1_none"], chance)


@pytest.mark.slow
def test_interrupted_training_resumes_exactly(synth: Path, tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    config = tiny_config(synth, optim={"epochs": 2, "samples_per_epoch": 64}, tuning={"median_windows": [3]})
    Trainer(config, tmp_path / "a", progress=False).run()
    with pytest.raises(TrainingPaused):
        Trainer(config, tmp_path / "b", progress=False, stop_after_steps=3).run()  # mid-epoch 1
    with pytest.raises(TrainingPaused):
        Trainer(config, tmp_path / "b", progress=False, stop_after_steps=4).run()  # into epoch 2
    Trainer(config, tmp_path / "b", progress=False).run()
    a = load_file(str(tmp_path / "a" / "final" / "detector.safetensors"))
    b = load_file(str(tmp_path / "b" / "final" / "detector.safetensors"))
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_group_shares_give_each_source_its_share() -> None:
    from aunets.models.sampling import group_shares

    groups = np.array([0] * 90 + [1] * 10)
    w = group_shares(groups, [0.4], None)
    assert w.sum() == pytest.approx(1.0)
    assert w[groups == 1].sum() == pytest.approx(0.4) and w[groups == 0].sum() == pytest.approx(0.6)
    inner = np.r_[np.ones(89), 3.0, np.ones(10)]  # the balance inside a source is kept
    w = group_shares(groups, [0.4], inner / inner.sum())
    assert w[89] == pytest.approx(3 * w[0])


@pytest.mark.slow
def test_fine_tuning_adds_intensity_and_an_extra_source(synth: Path, tmp_path: Path) -> None:
    """model.init starts from a trained run (presence logits unchanged at the start), model.intensity adds an
    intensity block learned from the generator's intensities, data.extra joins a CSV manifest with soft labels."""
    import csv

    import torch

    from aunets.engines.engine import load_engine
    from aunets.engines.registry import create_model
    from aunets.models.build import build_engine
    from aunets.models.checkpoint import load_weights
    from aunets.models.data import load_dataset
    from aunets.models.finetune import init_from_engine

    base = tiny_config(synth, optim={"epochs": 1, "samples_per_epoch": 64}, tuning={"median_windows": [3]})
    Trainer(base, tmp_path / "base", progress=False).run()
    # an extra source: some of the synthetic frames as a CSV manifest with one AU unknown but soft-labelled
    frames = load_dataset(synth).select_aus(AUS)
    rows = [r for r in frames.records if r.split in ("train", "val")][::3]
    manifest = tmp_path / "extra.csv"
    with manifest.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "subject", "view", "split", "box_x", "box_y", "box_w", "box_h", "AU12", "AU04",
                    "AU04_soft"])
        for r in rows:
            assert r.box is not None
            w.writerow([r.image, f"x{r.subject}", r.view, r.split, *r.box, r.labels[0], "", 0.8 * r.labels[1]])
    extra = load_dataset(manifest)
    assert extra.records[0].soft is not None and np.isnan(extra.records[0].soft[0])
    assert {r.labels[1] for r in extra.records} == {-1}

    model = create_model("mobilenetv2_horizontal", 2 * len(AUS), pretrained=False, tiny=True).eval()
    source = create_model("mobilenetv2_horizontal", len(AUS), pretrained=False, tiny=True).eval()
    load_weights(tmp_path / "base" / "final" / "detector.safetensors", source)
    init_from_engine(tmp_path / "base" / "final", model, len(AUS))
    x = torch.randn(2, 3, 48, 96)
    with torch.no_grad():
        torch.testing.assert_close(model(x)[:, : len(AUS)], source(x))

    tuned = tiny_config(synth, model={"init": str(tmp_path / "base" / "final"), "intensity": True},
                        data={"extra": [str(manifest)], "extra_share": [0.3]},
                        optim={"epochs": 2, "samples_per_epoch": 128}, tuning={"median_windows": [3]})
    assert [u.name for u in plan_units(tuned, [4])] == ["all"]
    Trainer(tuned, tmp_path / "tuned", progress=False).run()
    engine = load_engine(build_engine(tmp_path / "tuned", tmp_path / "engine"))
    assert engine.has_intensity
    test = [r for r in frames.records if r.split == "test"][:40]
    from aunets.models.data.cache import CacheSpec, build_cache

    cache = build_cache(replace_records(frames, test), tmp_path / "c", CacheSpec(size=48, pad=1.0), progress=False)
    from aunets.engines.preprocess import compose_input

    batch = np.stack([compose_input(*cache.centre(i), engine.manifest.input) for i in range(len(cache))])
    probs, intensity = engine.infer(batch, [4] * len(batch))
    assert intensity is not None and intensity.shape == probs.shape
    assert (intensity >= 0).all() and (intensity <= 5).all()


def replace_records(frames: Any, records: list[Any]) -> Any:
    from dataclasses import replace

    return replace(frames, records=tuple(records))
