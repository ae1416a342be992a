"""build-engine: a tiny run with every stage (EmoNet, cascade, per-view heads, view classifier) exports to a
bundle that load_engine runs, and its ONNX outputs equal the trained torch models'."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from aunets.engines.manifest import portable_paths
from aunets.models.train import Trainer
from tests.conftest import absolute_paths
from tests.test_data_synthetic import make_synth
from tests.test_train import tiny_config

pytestmark = pytest.mark.slow  # trains a tiny engine and builds its bundle


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_synth(tmp_path_factory.mktemp("build") / "set", subjects=4, views=2, seconds=0.8, seed=9)


def _sample(engine_dir: Path, n: int) -> np.ndarray:
    from aunets.engines.manifest import load_manifest

    shape = load_manifest(engine_dir).input.tensor_shape
    return np.random.default_rng(0).normal(0, 1, size=(n, *shape)).astype(np.float32)


def test_full_run_exports_and_matches_torch(synth: Path, tmp_path: Path) -> None:
    import torch

    from aunets.engines.engine import load_engine
    from aunets.engines.registry import create_model
    from aunets.models.build import build_engine
    from aunets.models.checkpoint import load_weights

    config = tiny_config(
        synth,
        optim={"epochs": 1, "samples_per_epoch": 32},
        domain_adaptation={"enabled": True, "epochs": 1, "samples_per_epoch": 32},
        cascade={"enabled": True, "frontal_epochs": 1},
        view_classifier={"enabled": True, "architecture": "view_mobilenetv2", "pretrained": False,
                         "kwargs": {"tiny": True}, "epochs": 1, "samples_per_epoch": 32},
        tuning={"median_windows": [3]},
    )
    out = tmp_path / "run"
    Trainer(config, out, progress=False).run()
    assert json.loads((out / "history.json").read_text()).keys() == {"emonet", "frontal", "all", "view_classifier"}
    bundle = build_engine(out, tmp_path / "engine")
    for record in ("history.json", "tuning.json", "curves.png"):  # how it was made, beside it
        assert (bundle / "training" / record).read_bytes() == (out / record).read_bytes()
    config_copy = json.loads((bundle / "training" / "config.json").read_text())
    assert config_copy == portable_paths(json.loads((out / "config.json").read_text()))
    assert config_copy["data"]["path"] != json.loads((out / "config.json").read_text())["data"]["path"]  # was absolute
    assert absolute_paths(bundle) == []  # no machine paths in a bundle
    engine = load_engine(bundle)
    m = engine.manifest
    assert m.views == (0, 4) and m.detector_heads == {0: 0, 4: 1}
    assert m.input.fusion == "horizontal" and m.input.height == 48 and engine.has_view_classifier
    assert m.median_window == 3 and set(m.thresholds) == {12, 4}
    x = _sample(bundle, 3)
    spec = json.loads((out / "final" / "engine_spec.json").read_text())
    model = create_model("mobilenetv2_horizontal", 2 * 2, tiny=True)
    load_weights(out / "final" / "detector.safetensors", model)
    with torch.no_grad():
        logits = model.eval()(torch.from_numpy(x)).numpy()
    probs = engine.predict(x, [0, 4, 4])
    expected = 1 / (1 + np.exp(-np.stack([logits[0, 0:2], logits[1, 2:4], logits[2, 2:4]])))
    np.testing.assert_allclose(probs, expected, atol=1e-4)
    assert spec["detector_heads"] == {"0": 0, "4": 1}
    vp = engine.classify_view(x[:, :, :, :48].copy())
    assert vp is not None and vp.shape == (3, 9)


def test_per_au_layout_exports_one_ensemble_per_view(synth: Path, tmp_path: Path) -> None:
    from aunets.engines.engine import load_engine
    from aunets.models.build import build_engine

    config = tiny_config(synth, model={"layout": "per_au_view"}, optim={"epochs": 1, "samples_per_epoch": 16},
                         cascade={"enabled": True}, tuning={"median_windows": [3]})
    out = tmp_path / "run"
    Trainer(config, out, progress=False).run()
    onnx_bundle = build_engine(out, tmp_path / "onnx")
    torch_bundle = build_engine(out, tmp_path / "st", fmt="safetensors")
    a, b = load_engine(onnx_bundle), load_engine(torch_bundle, runtime="torch")
    assert a.manifest.detectors == {0: "view0.onnx", 4: "view4.onnx"}
    assert a.manifest.architecture_kwargs["independent"] is True
    x = _sample(onnx_bundle, 2)
    np.testing.assert_allclose(a.predict(x, [0, 4]), b.predict(x, [0, 4]), atol=1e-4)
