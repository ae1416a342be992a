"""``aunets quantize``: an int8 copy of a float bundle, calibrated on a shipped synthetic clip; and the shipped
default engine, which is such a copy, still follows its float twin on a real clip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aunets.cli import main
from aunets.core.frame import Frame
from aunets.engines.engine import default_engine_path, load_engine
from aunets.engines.manifest import load_manifest, portable_paths
from aunets.stream.pipeline import Pipeline, PipelineConfig
from tests.conftest import REPO, build_tiny_engine, clip_frames

CALIBRATION = REPO / "media" / "synth_pair.mp4"  # synthetic faces: training-like data, not an evaluation clip


@pytest.fixture(scope="module")
def float_engine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_engine(tmp_path_factory.mktemp("float") / "engine", size=64)


@pytest.fixture(scope="module")
def int8_engine(float_engine: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("int8") / "engine"
    assert main(["quantize", str(float_engine), "--calibration", str(CALIBRATION), "--frames", "24",
                 "--out", str(out), "--no-progress"]) == 0
    return out


def probabilities(engine_dir: Path, frames: list[np.ndarray], runtime: str = "onnx") -> np.ndarray:
    pipeline = Pipeline(PipelineConfig(engine=engine_dir, runtime=runtime))
    rows = []
    for i, image in enumerate(frames):
        rows += [list(r.probabilities.values()) for r in pipeline.process(Frame(i, 0, 0.0, image)) if r.probabilities]
    return np.asarray(rows, dtype=np.float32)


def test_the_int8_copy_is_an_int8_bundle_that_records_how_it_was_made(float_engine: Path, int8_engine: Path) -> None:
    onnx = pytest.importorskip("onnx")
    engine = load_engine(int8_engine)  # checks every file's sha256 against the manifest
    m = engine.manifest
    assert m.name == "tiny-test-engine-int8"
    q = m.provenance["quantization"]
    assert q["calibration_inputs"] == {"detector.onnx": 24}
    assert q["config"]["calibration"] == portable_paths([str(CALIBRATION)])  # no machine paths in a bundle
    assert q["source_files"] == load_manifest(float_engine).files  # the float bundle it came from, by sha256
    model = onnx.load(str(int8_engine / "detector.onnx"))
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in model.graph.node}
    assert any(t.data_type == onnx.TensorProto.INT8 for t in model.graph.initializer)  # int8 weights
    frames = clip_frames(12, start=30, path=CALIBRATION)
    ref, q8 = probabilities(float_engine, frames), probabilities(int8_engine, frames)
    assert ref.shape == q8.shape and len(ref) == 12
    assert float(np.abs(ref - q8).mean()) < 0.05


@pytest.mark.slow
def test_the_default_engine_is_int8_and_follows_its_float_twin_on_a_real_clip() -> None:
    pytest.importorskip("torch")  # the float twin (detector.safetensors) runs on the torch runtime
    onnx = pytest.importorskip("onnx")
    default = default_engine_path()
    assert "quantization" in load_manifest(default).provenance
    ops = {n.op_type for n in onnx.load(str(default / "detector.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    frames = clip_frames(30, start=340)  # laughing: most AUs change state around here
    float_probs = probabilities(default, frames, runtime="torch")
    int8_probs = probabilities(default, frames)
    assert float_probs.shape == int8_probs.shape and len(float_probs) == 30
    assert float(np.abs(float_probs - int8_probs).mean()) < 0.05
    assert float(np.mean((float_probs >= 0.5) == (int8_probs >= 0.5))) >= 0.9


def test_bad_quantize_inputs_name_the_fix(float_engine: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    cases = [(float_engine, [str(tmp_path / "nope")], tmp_path / "o", "does not exist"),
             (float_engine, [str(tmp_path / "empty")], tmp_path / "o", "no videos or frame folders"),
             (float_engine, [str(CALIBRATION)], tmp_path / "full", "--force"),
             (default_engine_path(), [str(CALIBRATION)], tmp_path / "o", "already int8")]
    for engine, calibration, out, message in cases:
        assert main(["quantize", str(engine), "--calibration", *calibration, "--out", str(out)]) == 1
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
