import json
from pathlib import Path
from typing import Any

import pytest

from aunets.core.errors import EngineError, ManifestError
from aunets.engines.engine import load_engine
from aunets.engines.manifest import load_manifest, portable_paths
from tests.conftest import REPO, absolute_paths


def _edit(bundle: Path, change: Any) -> None:
    path = bundle / "manifest.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def test_tiny_engine_loads_and_predicts(tiny_engine: Path) -> None:
    import numpy as np

    engine = load_engine(tiny_engine)
    assert engine.manifest.input.layout == "rgb|flow horizontal 48x96"
    x = np.random.default_rng(0).normal(size=(3, 3, 48, 96)).astype(np.float32)
    p = engine.predict(x, [4, 0, 8])
    assert p.shape == (3, 12) and ((p > 0) & (p < 1)).all()


def test_view_classifier_only_engine_for_the_gpu_path() -> None:
    import numpy as np

    engine = load_engine(None, detectors=False)  # the embedded default: detectors + view classifier
    size = engine.manifest.input.height
    probs = engine.classify_view(np.zeros((2, 3, size, size), np.float32))
    assert probs is not None and probs.shape == (2, 9)
    with pytest.raises(EngineError, match="detectors=False"):
        engine.predict(np.zeros((1, *engine.manifest.input.tensor_shape), np.float32), [4])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(format_version=99), "format version"),
        (lambda d: d.pop("aus"), "has no 'aus'"),
        (lambda d: d.update(aus=[1, 99]), "does not know"),
        (lambda d: d.update(aus=[1, 1]), "twice"),
        (lambda d: d["input"].update(fusion="diagonal"), "unknown input fusion"),
        (lambda d: d["flow"].update(encoding="hsv"), "flow encoding"),
        (lambda d: d.update(median_window=4), "odd"),
        (lambda d: d.update(default_view=4, detectors={"0": "detector.onnx"}, detector_heads={}), "default_view"),
        (lambda d: d.update(detectors={"12": "detector.onnx"}), "outside the view grid"),
        (lambda d: d.update(thresholds={"1": 1.5}), "threshold"),
        (lambda d: d.update(thresholds={"2": 0.4}, aus=[1]), "does not detect"),
        (lambda d: d.update(files={}), "no sha256"),
        (lambda d: d.update(files={"detector.onnx": "0" * 64}), "does not match"),
        (
            lambda d: d.update(files={"detector.pt": "0"}, detectors={"4": "detector.pt"}, detector_heads={}),
            "never pickles",
        ),
    ],
)
def test_manifest_rejects_each_kind_of_mismatch(tiny_engine: Path, change: Any, message: str) -> None:
    _edit(tiny_engine, change)
    with pytest.raises(ManifestError, match=message):
        load_manifest(tiny_engine)


def test_missing_weight_file_and_bad_json(tiny_engine: Path) -> None:
    (tiny_engine / "detector.onnx").unlink()
    with pytest.raises(ManifestError, match="missing"):
        load_manifest(tiny_engine)
    (tiny_engine / "manifest.json").write_text("{not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        load_manifest(tiny_engine)


def test_not_a_bundle(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="not a directory"):
        load_engine(tmp_path / "nope")
    with pytest.raises(ManifestError, match=r"no manifest\.json"):
        load_engine(tmp_path)


def test_corrupt_onnx_with_matching_hash_is_an_engine_error(tiny_engine: Path) -> None:
    from aunets.engines.manifest import sha256_file

    (tiny_engine / "detector.onnx").write_bytes(b"garbage")
    _edit(tiny_engine, lambda d: d["files"].update({"detector.onnx": sha256_file(tiny_engine / "detector.onnx")}))
    with pytest.raises(EngineError, match="cannot load"):
        load_engine(tiny_engine)


def test_head_mapping_beyond_the_detector_outputs_is_rejected_at_load(tiny_engine: Path) -> None:
    _edit(tiny_engine, lambda d: d.update(detector_heads={"4": 3}))
    with pytest.raises(EngineError, match="too few"):
        load_engine(tiny_engine)


def test_per_view_heads_pick_their_own_block(tmp_path: Path) -> None:
    import numpy as np

    from tests.conftest import build_tiny_engine

    engine = load_engine(build_tiny_engine(tmp_path / "e", heads=3))
    x = np.random.default_rng(1).normal(size=(1, 3, 48, 96)).astype(np.float32)
    p0, p1, p3 = (engine.predict(x, [v])[0] for v in (0, 1, 3))
    np.testing.assert_allclose(p0, p3)  # views 0 and 3 share head 0
    assert not np.allclose(p0, p1)


def test_no_machine_paths_in_the_shipped_bundle() -> None:
    """Provenance says where the data came from relative to the build folder, never a machine's absolute path."""
    bundle = REPO / "aunets" / "engines" / "default"
    assert absolute_paths(bundle) == []


def test_absolute_paths_are_found_and_made_relative(tmp_path: Path) -> None:
    base = tmp_path / "repo"
    tree = {"data": {"path": str(base / "data" / "synth"), "extra": [str(tmp_path / "shared" / "faces"), "rel/x"]},
            "far": "/elsewhere/lab/data/set", "doi": "doi:10.6084/m9.figshare.5047666.v5", "n": 3}
    assert portable_paths(tree, base) == {
        "data": {"path": "data/synth", "extra": ["../shared/faces", "rel/x"]},
        "far": ".../data/set", "doi": "doi:10.6084/m9.figshare.5047666.v5", "n": 3}
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "manifest.json").write_text(json.dumps(tree))
    (tmp_path / "b" / "README.md").write_text("trained on ../shared/faces, see https://example.org/a/b and AU12/14/24")
    found = absolute_paths(tmp_path / "b")
    assert found == [f"manifest.json: {base / 'data' / 'synth'}", f"manifest.json: {tmp_path / 'shared' / 'faces'}",
                     "manifest.json: /elsewhere/lab/data/set"]
