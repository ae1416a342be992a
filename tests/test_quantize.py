"""``aunets quantize``: an int8 copy of the default engine, calibrated on a shipped synthetic clip."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from aunets.cli import main
from aunets.core.frame import Frame
from aunets.engines.engine import default_engine_path, load_engine
from aunets.stream.pipeline import Pipeline, PipelineConfig
from tests.conftest import REPO

CALIBRATION = REPO / "media" / "synth_pair.mp4"  # synthetic faces: training-like data, not an evaluation clip
CLIP = REPO / "media" / "pexels_wolfganglanger_expressions.mp4"


@pytest.fixture(scope="module")
def int8_engine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("int8") / "engine"
    assert main(["quantize", str(default_engine_path()), "--calibration", str(CALIBRATION), "--frames", "24",
                 "--out", str(out)]) == 0
    return out


def probabilities(engine_dir: Path, frames: list[np.ndarray]) -> np.ndarray:
    pipeline = Pipeline(PipelineConfig(engine=engine_dir))
    rows = []
    for i, image in enumerate(frames):
        rows += [list(r.probabilities.values()) for r in pipeline.process(Frame(i, 0, 0.0, image)) if r.probabilities]
    return np.asarray(rows, dtype=np.float32)


def test_the_int8_copy_is_an_int8_bundle_that_records_how_it_was_made(int8_engine: Path) -> None:
    onnx = pytest.importorskip("onnx")
    engine = load_engine(int8_engine)  # checks every file's sha256 against the manifest
    m = engine.manifest
    assert m.name.endswith("-int8")
    q = m.provenance["quantization"]
    assert q["calibration_inputs"] == {"detector.onnx": 24, "view_classifier.onnx": 24}
    assert q["config"]["calibration"] == [str(CALIBRATION)]
    for name in ("detector.onnx", "view_classifier.onnx"):
        ops = {n.op_type for n in onnx.load(str(int8_engine / name)).graph.node}
        assert {"QuantizeLinear", "DequantizeLinear"} <= ops, name
        assert (int8_engine / name).stat().st_size < 0.5 * (default_engine_path() / name).stat().st_size
    assert (int8_engine / "detector.safetensors").is_file()  # the float twin stays for the torch/GPU runtimes


def test_the_int8_engine_follows_the_float_engine_on_a_real_clip(int8_engine: Path) -> None:
    cap = cv2.VideoCapture(str(CLIP))
    frames = []
    cap.set(cv2.CAP_PROP_POS_FRAMES, 340)
    while len(frames) < 30:
        ok, frame = cap.read()
        assert ok
        frames.append(frame)
    ref = probabilities(default_engine_path(), frames)
    q = probabilities(int8_engine, frames)
    assert ref.shape == q.shape and len(ref) == 30
    assert float(np.abs(ref - q).mean()) < 0.05
    assert float(np.mean((ref >= 0.5) == (q >= 0.5))) >= 0.9


def test_bad_quantize_inputs_name_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    cases = [([str(tmp_path / "nope")], tmp_path / "o", "does not exist"),
             ([str(tmp_path / "empty")], tmp_path / "o", "no videos or frame folders"),
             ([str(CALIBRATION)], tmp_path / "full", "--force")]
    for calibration, out, message in cases:
        assert main(["quantize", str(default_engine_path()), "--calibration", *calibration, "--out", str(out)]) == 1
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
